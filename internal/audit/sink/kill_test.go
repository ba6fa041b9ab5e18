package sink_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/ship"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"gopkg.in/natefinch/lumberjack.v2"
)

// TestSinkChild is the sink run as its own process by TestSinkKill9; it
// does nothing unless started that way.
func TestSinkChild(t *testing.T) {
	dbFile, addr := os.Getenv("GATEHOUSE_SINK_CHILD_DB"), os.Getenv("GATEHOUSE_SINK_CHILD_ADDR")
	if dbFile == "" {
		t.Skip("run by TestSinkKill9")
	}
	db, err := store.Open(context.Background(), "sqlite3", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sink.New(sink.Options{Store: db, BearerTokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(http.Serve(ln, h))
}

// TestSinkKill9 kills the sink with SIGKILL while a kube-apiserver-like
// sender (retrying until it gets a 2xx, as the webhook backend does) and
// the shipper send to it, restarts it, and counts the store by auditID.
func TestSinkKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "audit.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr + "/audit/webhook"

	var child *exec.Cmd
	start := func() {
		child = exec.Command(os.Args[0], "-test.run=^TestSinkChild$", "-test.count=1")
		child.Env = append(os.Environ(), "GATEHOUSE_SINK_CHILD_DB="+dbFile, "GATEHOUSE_SINK_CHILD_ADDR="+addr)
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	start()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked atomic.Int64
	var wg sync.WaitGroup

	// The "kube-apiserver": 60 batches of 200, each retried until acknowledged.
	var sent []string
	g := auditgen.New(11, time.Now(), time.Millisecond)
	var batches [][]byte
	for range 60 {
		items := g.Batch(200)
		for _, it := range items {
			e, _ := event.Decode(it, "")
			sent = append(sent, e.AuditID)
		}
		batches = append(batches, event.EncodeList(items))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	wg.Go(func() {
		for _, b := range batches {
			for {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				time.Sleep(20 * time.Millisecond) // connection refused while the sink is down
			}
			acked.Add(1)
		}
	})

	// The shipper, for a node with a static audit log.
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "log", "audit.log"), MaxSize: 1, Compress: true}
	defer lj.Close()
	var logged []string
	wg.Go(func() {
		lg := auditgen.New(12, time.Now(), time.Millisecond)
		for i := range 6000 {
			b := lg.JSON()
			e, _ := event.Decode(b, "")
			logged = append(logged, e.AuditID)
			lj.Write(append(b, '\n'))
			if i%300 == 299 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	shipDone := make(chan error, 1)
	go func() {
		// Started before the log exists, as on a node whose apiserver is not up yet.
		shipDone <- ship.Run(ctx, ship.Options{File: lj.Filename, StateDir: filepath.Join(dir, "state"), URL: url + "?source=node-1", Token: token,
			PollInterval: 5 * time.Millisecond, FlushInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	}()

	// Kill the sink three times mid-stream.
	kills := 0
	for _, at := range []int64{10, 25, 40} {
		for acked.Load() < at {
			time.Sleep(2 * time.Millisecond)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		kills++
		time.Sleep(50 * time.Millisecond)
		start()
	}
	wg.Wait()

	// Wait until the shipper's events are all in, through the running sink.
	want := int64(len(sent) + len(logged))
	deadline := time.Now().Add(60 * time.Second)
	var ids map[string]int
	for {
		db, err := store.Open(context.Background(), "sqlite3", dbFile)
		if err != nil {
			t.Fatal(err)
		}
		ids, err = db.AuditIDs(context.Background())
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(ids)) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-shipDone; err != nil {
		t.Errorf("shipper: %v", err)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	missing, dups := 0, 0
	for _, id := range append(append([]string{}, sent...), logged...) {
		switch ids[id+"/ResponseComplete"] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("%d kills; %d events sent directly, %d shipped; %d stored, %d missing, %d stored twice", kills, len(sent), len(logged), len(ids), missing, dups)
	if missing != 0 || dups != 0 || int64(len(ids)) != want {
		t.Fatal(fmt.Errorf("loss or duplication after kill -9"))
	}
}
