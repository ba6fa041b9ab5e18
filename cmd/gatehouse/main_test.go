package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"net/url"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// TestMain lets a test run gatehouse serve in a child process (the test
// binary itself), so that it can be killed with SIGKILL.
func TestMain(m *testing.M) {
	// GATEHOUSE_TEST_MAIN_ARGS runs the command line itself (main, as the
	// binary would), given as a JSON list with argv[0] first.
	if raw := os.Getenv("GATEHOUSE_TEST_MAIN_ARGS"); raw != "" {
		var argv []string
		if err := json.Unmarshal([]byte(raw), &argv); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Args = argv
		main()
		os.Exit(0)
	}
	if path := os.Getenv("GATEHOUSE_TEST_SERVE_CONFIG"); path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, cfg, os.Stderr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, path string, s served) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_SERVE_CONFIG="+path)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := s.client.Get(s.issuer + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("child gatehouse never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKill9LosesNothing issues sessions and rotates them in a child
// gatehouse on SQLite, kills it with SIGKILL right after the last answer,
// restarts it, and checks that every session answered to survives with
// its latest token, and the signing keys with it.
func TestKill9LosesNothing(t *testing.T) {
	dir := t.TempDir()
	path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"))
	child := startChild(t, path, s)
	var latest []string
	for i := 0; i < 8; i++ { // under the per-user login rate limit
		tok := passwordGrant(t, s, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid offline_access"}})
		if tok["status"] != 200 {
			t.Fatalf("password grant: %v", tok)
		}
		rt := tok["refresh_token"].(string)
		for j := 0; j < i%4; j++ {
			r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			if r["status"] != 200 {
				t.Fatalf("refresh: %v", r)
			}
			rt = r["refresh_token"].(string)
		}
		latest = append(latest, rt)
	}
	keys := get(t, s, "/keys")
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	startChild(t, path, s)
	if after := get(t, s, "/keys"); after != keys {
		t.Fatal("signing keys changed after kill -9")
	}
	for i, rt := range latest {
		if r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); r["status"] != 200 {
			t.Fatalf("session %d lost after kill -9: %v", i, r)
		}
	}
}
