package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/sqlite"
)

// The crash test re-runs this test binary as a child that writes in a
// loop; these variables tell it so.
const (
	crashFileEnv   = "GATEHOUSE_SQLITE_CRASH_FILE"
	crashPrefixEnv = "GATEHOUSE_SQLITE_CRASH_PREFIX"
)

// TestCrash kills (SIGKILL) a process that is writing refresh families,
// rotating them and replacing the key set, in the middle of its stream of
// commits, three times over. After each kill the database must pass
// PRAGMA integrity_check, and everything the child reported as committed
// must be there: synchronous=NORMAL in WAL mode loses nothing to a
// process crash.
func TestCrash(t *testing.T) {
	if file := os.Getenv(crashFileEnv); file != "" {
		crashChild(file, os.Getenv(crashPrefixEnv))
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	file := filepath.Join(t.TempDir(), "crash.db")
	families := map[string]int64{} // committed ID -> committed generation
	var keysVersion int64
	for round := range 3 {
		prefix := fmt.Sprintf("r%d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashFileEnv+"="+file, crashPrefixEnv+"="+prefix)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a number of commits that differs by round, so the
		// kill lands at different points of the stream.
		killAfter := 150 + 97*round
		lines, killed := 0, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			kind, rest, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue // test framework output
			}
			switch kind {
			case "family":
				id, gen, _ := strings.Cut(rest, " ")
				g, err := strconv.ParseInt(gen, 10, 64)
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				families[id] = max(families[id], g)
			case "keys":
				v, err := strconv.ParseInt(rest, 10, 64)
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				keysVersion = max(keysVersion, v)
			case "error":
				t.Fatalf("child: %s", rest)
			default:
				continue
			}
			lines++
			if lines == killAfter && !killed {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatalf("kill child: %v", err)
				}
				killed = true
				// Keep reading: lines written before the kill are commits.
			}
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child was not killed mid-stream (killed=%v, %d commits seen): %v", round, killed, lines, err)
		}
		checkIntegrity(t, file)

		s := open(t, file)
		for id, gen := range families {
			f, err := s.GetRefreshFamily(t.Context(), id)
			if err != nil {
				t.Fatalf("round %d: committed family %s: %v", round, id, err)
			}
			if f.Generation < gen || string(f.CurrentHash) != fmt.Sprintf("hash-%s-%d", id, f.Generation) {
				t.Fatalf("round %d: family %s at generation %d with hash %q, committed generation %d", round, id, f.Generation, f.CurrentHash, gen)
			}
		}
		k, err := s.GetKeys(t.Context())
		if err != nil {
			t.Fatalf("round %d: keys: %v", round, err)
		}
		if k.Version < keysVersion || string(k.SigningKey) != fmt.Sprintf("signing-%d", k.Version) || len(k.VerificationKeys) != 2 {
			t.Fatalf("round %d: key set version %d (%q, %d public keys), committed version %d", round, k.Version, k.SigningKey, len(k.VerificationKeys), keysVersion)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d reported commits; %d families and key version %d intact", round, lines, len(families), keysVersion)
	}
}

func checkIntegrity(t *testing.T, file string) {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
}

// crashChild writes until it is killed (or a minute passes): one
// goroutine creates refresh families, one rotates them, one replaces the
// key set. Each commit is reported on stdout only after it returned.
func crashChild(file, prefix string) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{File: file})
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(1)
	}
	var mu sync.Mutex // one line at a time on stdout
	report := func(format string, args ...any) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	fail := func(err error) {
		report("error %v", err)
		os.Exit(1)
	}
	deadline := time.Now().Add(time.Minute)
	created := make(chan string, 1024)
	var wg sync.WaitGroup
	wg.Go(func() { // create
		defer close(created)
		for i := 0; time.Now().Before(deadline); i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			f := storage.RefreshFamily{
				ID: id, ClientID: "kubernetes", ConnectorID: "local", Scopes: []string{"openid", "offline_access"},
				Claims:     storage.Claims{UserID: "crash", Groups: []string{"a", "b"}},
				Generation: 1, CurrentHash: []byte(fmt.Sprintf("hash-%s-1", id)), RotationKey: make([]byte, 32),
				CreatedAt: time.Now(), LastUsed: time.Now(),
			}
			if err := s.CreateRefreshFamily(ctx, f); err != nil {
				fail(err)
			}
			report("family %s 1", id)
			select {
			case created <- id:
			default:
			}
		}
	})
	wg.Go(func() { // rotate
		for id := range created {
			var gen int64
			err := s.UpdateRefreshFamily(ctx, id, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
				f.Generation++
				f.PreviousHash, f.CurrentHash = f.CurrentHash, []byte(fmt.Sprintf("hash-%s-%d", id, f.Generation))
				f.RotatedAt, f.LastUsed = time.Now(), time.Now()
				gen = f.Generation
				return f, nil
			})
			if err != nil {
				fail(err)
			}
			report("family %s %d", id, gen)
		}
	})
	wg.Go(func() { // keys
		for time.Now().Before(deadline) {
			k, err := s.GetKeys(ctx)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				fail(err)
			}
			next := storage.Keys{
				SigningKey: []byte(fmt.Sprintf("signing-%d", k.Version+1)),
				VerificationKeys: []storage.VerificationKey{
					{PublicKey: []byte("pub-a"), Expiry: time.Now()}, {PublicKey: []byte("pub-b"), Expiry: time.Now()},
				},
				NextRotation: time.Now(),
			}
			if err := s.UpdateKeys(ctx, k.Version, next); err != nil {
				fail(err)
			}
			report("keys %d", k.Version+1)
		}
	})
	wg.Wait()
	os.Exit(0)
}
