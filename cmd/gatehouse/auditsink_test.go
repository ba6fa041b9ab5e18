package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

const sinkTestToken = "sink-test-token-0123456789abcdef"

// startAuditSink runs `gatehouse audit sink` on cfg until the test ends and
// returns its listening addresses.
func startAuditSink(t *testing.T, cfg *config.Config) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() { done <- runAuditSink(ctx, cfg, io.Discard, func(a map[string]string) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("audit sink: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("audit sink exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("audit sink never listened")
	}
	return nil
}

func postBatch(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+sinkTestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAuditSinkProcessStandsAlone: `gatehouse audit sink` takes batches,
// exposes its metrics and serves nothing of the issuer, and it does not
// depend on gatehouse's own storage: here that storage is a PostgreSQL
// server that does not exist.
func TestAuditSinkProcessStandsAlone(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Parse([]byte(`
issuer: https://login.example.com/dex
storage: {type: postgres, config: {host: 127.0.0.1, port: 1, database: nowhere, ssl: {mode: disable}}}
web: {http: ` + freeAddr(t) + `}
telemetry: {http: ` + freeAddr(t) + `}
audit:
  enabled: true
  storage: {type: sqlite3, config: {file: ` + filepath.Join(dir, "audit.db") + `}}
  webhook: {bearerTokens: ["` + sinkTestToken + `"], separate: true, maxInFlightBytes: 100000000}
`))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	addrs := startAuditSink(t, c)
	base := "http://" + addrs["http"]
	if code, msg := postBatch(t, base+"/audit/webhook", event.EncodeList(auditgen.New(1, time.Now(), time.Millisecond).Batch(7))); code != 200 || !strings.Contains(msg, `"stored":7`) {
		t.Fatalf("webhook: %d %s", code, msg)
	}
	for _, p := range []string{"/dex/.well-known/openid-configuration", "/audit", "/dex/token"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the sink: %d, want 404 (the sink serves only the webhook)", p, resp.StatusCode)
		}
	}
	resp, err := http.Get("http://" + addrs["telemetry"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gatehouse_audit_events_stored_total 7", "gatehouse_audit_inflight_bytes 0", "process_resident_memory_bytes"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAuditSinkCommandNeedsAudit(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte("issuer: https://login.example.com/dex\nstorage: {type: memory}\nweb: {http: 127.0.0.1:0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"audit", "sink"}, {"audit", "sink", "--config", f}} {
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), "audit") {
			t.Errorf("%v: err = %v, want one naming what to set", args, err)
		}
	}
}

// TestSeparateSinkAndPage: with audit.webhook.separate, serve mounts no
// webhook. On PostgreSQL its page shows what the sink process stored; on
// SQLite it does not open the sink's file and says where the trail is.
func TestSeparateSinkAndPage(t *testing.T) {
	tests := []struct {
		name, storage string
		page          func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{"postgres", "", func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Code != 200 || !strings.Contains(w.Body.String(), "oidc:alice") {
				t.Errorf("page: %d, want the events the sink stored", w.Code)
			}
		}},
		{"sqlite", "sqlite", func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "gatehouse audit query") {
				t.Errorf("page: %d %q, want where the trail is", w.Code, w.Body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			auditStorage := "{type: sqlite3, config: {file: " + filepath.Join(dir, "sink", "audit.db") + "}}"
			if tt.storage == "" {
				auditStorage = "{type: postgres, config: {dsn: '" + pgtest.DSN(t) + "'}}"
			}
			c, err := config.Parse([]byte(`
issuer: https://login.example.com/dex
storage: {type: memory}
web: {http: 127.0.0.1:0}
audit:
  enabled: true
  storage: ` + auditStorage + `
  webhook: {bearerTokens: ["` + sinkTestToken + `"], separate: true}
  viewerGroups: [infra]
`))
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyDefaults()
			if tt.storage == "" { // the sink's process, beside serve on the same database
				addrs := startAuditSink(t, c)
				g := auditgen.New(2, time.Now(), time.Millisecond)
				if code, msg := postBatch(t, "http://"+addrs["http"]+"/audit/webhook", event.EncodeList(g.Batch(200))); code != 200 {
					t.Fatalf("sink: %d %s", code, msg)
				}
			} else if err := os.MkdirAll(filepath.Join(dir, "sink"), 0o700); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			mux := http.NewServeMux()
			svc, err := serveAudit(ctx, c, mux, memory.New(), prometheus.NewRegistry(), slog.Default(), auditPage{
				Authenticate: func(*http.Request) (audit.Viewer, bool) {
					return audit.Viewer{User: "alice", Groups: []string{"infra"}}, true
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); svc.Close() }()
			req := httptest.NewRequest(http.MethodPost, "/audit/webhook", bytes.NewReader(event.EncodeList(auditgen.New(3, time.Now(), 0).Batch(1))))
			req.Header.Set("Authorization", "Bearer "+sinkTestToken)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			if w.Code == http.StatusOK {
				t.Errorf("serve took a webhook batch although the sink is separate")
			}
			w = httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/audit", nil))
			tt.page(t, w)
			if tt.storage != "" {
				if _, err := os.Stat(filepath.Join(dir, "sink", "audit.db")); !os.IsNotExist(err) {
					t.Errorf("serve created the sink's SQLite file (%v)", err)
				}
				return
			}
			db, err := store.OpenDSN(ctx, c.Audit.Storage.Postgres.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if n, _ := db.Count(ctx); n != 200 {
				t.Errorf("store holds %d events, want the sink's 200", n)
			}
		})
	}
}
