package ship_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/ship"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/natefinch/lumberjack.v2"
)

const token = "ship-token"

type sinkServer struct {
	db  *store.DB
	m   *metrics.Metrics
	url string
}

func newSinkServer(t *testing.T) *sinkServer {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite3", filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := metrics.New(nil)
	h, err := sink.New(sink.Options{Store: db, BearerTokens: []string{token}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &sinkServer{db: db, m: m, url: srv.URL + "/audit/webhook?source=node-1"}
}

func (s *sinkServer) count(t *testing.T) int64 {
	n, err := s.db.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeLog writes n events through lumberjack, as kube-apiserver does
// (--audit-log-maxsize 1, --audit-log-compress), pausing every `pause`
// events so the shipper sees rotations while it runs. It returns the
// auditIDs written.
func writeLog(t *testing.T, lj *lumberjack.Logger, seed uint64, n, pause int) []string {
	g := auditgen.New(seed, time.Now(), time.Millisecond)
	var ids []string
	for i := range n {
		e := g.Event()
		ids = append(ids, string(e.AuditID))
		b := g2json(t, e)
		if _, err := lj.Write(append(b, '\n')); err != nil {
			t.Error(err)
			return ids
		}
		if pause > 0 && i%pause == pause-1 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return ids
}

func checkAll(t *testing.T, s *sinkServer, want []string) {
	t.Helper()
	got, err := s.db.AuditIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range want {
		if got[id+"/ResponseComplete"] == 0 {
			missing++
		}
	}
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups++
		}
	}
	if missing > 0 || dups > 0 || len(got) != len(want) {
		t.Fatalf("stored %d events for %d written: %d missing, %d stored twice", len(got), len(want), missing, dups)
	}
}

func waitCount(t *testing.T, s *sinkServer, n int64, errc <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.count(t) < n {
		select {
		case err := <-errc:
			t.Fatalf("shipper stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d events arrived", s.count(t), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFollowsRotations(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			s := newSinkServer(t)
			dir := t.TempDir()
			lj := &lumberjack.Logger{Filename: filepath.Join(dir, "audit.log"), MaxSize: 1, Compress: compress}
			defer lj.Close()
			// Some events before the shipper starts, already rotated.
			ids := writeLog(t, lj, 1, 1500, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				errc <- ship.Run(ctx, ship.Options{File: lj.Filename, StateDir: t.TempDir(), URL: s.url, Token: token,
					PollInterval: 5 * time.Millisecond, FlushInterval: 20 * time.Millisecond})
			}()
			ids = append(ids, writeLog(t, lj, 2, 3000, 200)...)
			waitCount(t, s, int64(len(ids)), errc)
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			checkAll(t, s, ids)
			backups, _ := filepath.Glob(filepath.Join(dir, "audit-*.log*"))
			if len(backups) < 3 {
				t.Fatalf("only %d rotations: the test did not exercise rotation", len(backups))
			}
			if compress {
				gz, _ := filepath.Glob(filepath.Join(dir, "audit-*.log.gz"))
				if len(gz) == 0 {
					t.Fatal("no compressed backups: the test did not exercise them")
				}
			}
		})
	}
}

// TestShipChild is the shipper run as a separate process by
// TestKill9Resume; it does nothing unless started that way.
func TestShipChild(t *testing.T) {
	file := os.Getenv("GATEHOUSE_SHIP_CHILD_FILE")
	if file == "" {
		t.Skip("run by TestKill9Resume")
	}
	err := ship.Run(context.Background(), ship.Options{File: file, StateDir: os.Getenv("GATEHOUSE_SHIP_CHILD_STATE"),
		URL: os.Getenv("GATEHOUSE_SHIP_CHILD_URL"), Token: token, PollInterval: 5 * time.Millisecond, FlushInterval: 20 * time.Millisecond})
	t.Fatalf("shipper returned: %v", err)
}

func TestKill9Resume(t *testing.T) {
	s := newSinkServer(t)
	dir, state := t.TempDir(), t.TempDir()
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "audit.log"), MaxSize: 1, Compress: true}
	defer lj.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestShipChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GATEHOUSE_SHIP_CHILD_FILE="+lj.Filename, "GATEHOUSE_SHIP_CHILD_STATE="+state, "GATEHOUSE_SHIP_CHILD_URL="+s.url)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		got := writeLog(t, lj, 3, 8000, 100)
		mu.Lock()
		ids = got
		mu.Unlock()
	})
	kills := 0
	for _, at := range []int64{1000, 3000, 5000} {
		cmd := start()
		waitCount(t, s, at, nil)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		kills++
	}
	wg.Wait()
	cmd := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitCount(t, s, 8000, nil)
	time.Sleep(100 * time.Millisecond) // anything more would be a duplicate or a stray
	mu.Lock()
	defer mu.Unlock()
	checkAll(t, s, ids)
	// The position is saved after each acknowledged batch, so a kill
	// resends at most the batch in flight.
	dups := testutil.ToFloat64(s.m.Duplicates)
	t.Logf("%d kills, %d events, %v resent and dropped by the sink as duplicates", kills, len(ids), dups)
	if dups > float64(kills*400) {
		t.Errorf("%v events resent after %d kills: more than one batch per kill", dups, kills)
	}
}

func TestCorruptStateIsAClearError(t *testing.T) {
	s := newSinkServer(t)
	dir, state := t.TempDir(), t.TempDir()
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "audit.log"), MaxSize: 1}
	defer lj.Close()
	writeLog(t, lj, 4, 10, 0)
	tests := map[string]string{
		"garbage":      "\x00\x01not json",
		"truncated":    `{"state":{"dev":1,"ino":2,"firstLineHash":"ab`,
		"bad checksum": `{"state":{"dev":1,"ino":2,"firstLineHash":"ab","offset":100,"name":"x"},"crc32":12345}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(state, "audit-ship.state"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			err := ship.Run(context.Background(), ship.Options{File: lj.Filename, StateDir: state, URL: s.url, Token: token})
			if !errors.Is(err, ship.ErrCorruptState) {
				t.Fatalf("err = %v, want ErrCorruptState", err)
			}
			if s.count(t) != 0 {
				t.Error("shipped with a corrupt state")
			}
		})
	}
}

func TestVanishedFileRestartsSafely(t *testing.T) {
	s := newSinkServer(t)
	state := t.TempDir()
	run := func(file string, want int64) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			errc <- ship.Run(ctx, ship.Options{File: file, StateDir: state, URL: s.url, Token: token, PollInterval: 5 * time.Millisecond, FlushInterval: 10 * time.Millisecond})
		}()
		waitCount(t, s, want, errc)
		// The sink counts a batch before its answer reaches the shipper,
		// which saves the position only then; stopping in between would
		// (rightly) resend the batch next time, so wait for the save.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(state, "audit-ship.state")); err == nil {
				break
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A position saved for one log...
	a := &lumberjack.Logger{Filename: filepath.Join(t.TempDir(), "audit.log"), MaxSize: 1}
	defer a.Close()
	ids := writeLog(t, a, 5, 300, 0)
	run(a.Filename, 300)
	if _, err := os.Stat(filepath.Join(state, "audit-ship.state")); err != nil {
		t.Fatalf("no state saved: %v", err)
	}
	// ...names no file of another (the log was replaced): the shipper
	// starts again from the oldest file instead of failing or skipping.
	b := &lumberjack.Logger{Filename: filepath.Join(t.TempDir(), "audit.log"), MaxSize: 1}
	defer b.Close()
	ids = append(ids, writeLog(t, b, 6, 1200, 0)...)
	run(b.Filename, int64(len(ids)))
	checkAll(t, s, ids)
}

func TestRefusedTokenStops(t *testing.T) {
	s := newSinkServer(t)
	dir := t.TempDir()
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "audit.log"), MaxSize: 1}
	defer lj.Close()
	writeLog(t, lj, 7, 5, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := ship.Run(ctx, ship.Options{File: lj.Filename, StateDir: t.TempDir(), URL: s.url, Token: "wrong", FlushInterval: time.Millisecond, PollInterval: time.Millisecond})
	if !errors.Is(err, ship.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
}
