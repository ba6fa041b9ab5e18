package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/prometheus/client_golang/prometheus"
)

func TestAuditOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Parse([]byte(`
issuer: https://login.example.com
storage: {type: sqlite3, config: {file: ` + filepath.Join(dir, "gatehouse.db") + `}}
web: {http: 127.0.0.1:5556}
audit:
  enabled: true
  webhook: {bearerTokens: ["t1"]}
  retention: {maxAge: 24h, maxEvents: 1000}
  viewerGroups: ["exampleorg:infra-team"]
  forward: [{name: falco, url: "https://falco:8765/k8s-audit"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	o, err := auditOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	if o.StorageType != "sqlite3" || o.StorageDSN != filepath.Join(dir, "audit.db") || o.WebhookPath != "/audit/webhook" ||
		o.MaxAge != 24*time.Hour || o.MaxEvents != 1000 || len(o.BearerTokens) != 1 || len(o.Forward) != 1 ||
		o.Forward[0].QueueDir != filepath.Join(dir, "forward", "falco") || o.Forward[0].MaxQueueBytes == 0 {
		t.Errorf("options: %+v", o)
	}
}

func seedStore(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "audit.db")
	db, err := store.Open(context.Background(), "sqlite3", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := auditgen.New(1, time.Now().Add(-time.Hour), time.Second)
	var events []event.Event
	for range 300 {
		e, err := event.Decode(g.JSON(), "cp-1")
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if _, err := db.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	return file
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestAuditQueryCommand(t *testing.T) {
	file := seedStore(t)
	out, _, err := runCLI(t, "audit", "query", "--store", file, "--user", "oidc:alice", "--verb", "create", "--since", "2h", "-o", "jsonl", "--limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("no events: the test data has none for the filter")
	}
	for _, l := range lines {
		var e struct {
			Verb string
			User struct{ Username string }
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.User.Username != "oidc:alice" || e.Verb != "create" {
			t.Errorf("line %q: %+v %v", l, e, err)
		}
	}
	out, _, err = runCLI(t, "audit", "query", "--store", file, "--code", "403", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var arr []map[string]any
	if err := json.Unmarshal([]byte(out), &arr); err != nil || len(arr) == 0 {
		t.Fatalf("-o json is not a JSON array of events: %v", err)
	}
	out, stderr, err := runCLI(t, "audit", "query", "--store", file, "--limit", "5")
	if err != nil || !strings.HasPrefix(out, "TIME") || strings.Count(out, "\n") != 6 || !strings.Contains(stderr, "--before") {
		t.Errorf("table: %q %q %v", out, stderr, err)
	}
	for _, bad := range [][]string{
		{"--store", file, "--since", "yesterday"},
		{"--store", file, "--code", "abc"},
		{"--store", file, "-o", "yaml"},
		{"--store", filepath.Join(t.TempDir(), "missing.db")},
		{},
	} {
		if _, _, err := runCLI(t, append([]string{"audit", "query"}, bad...)...); err == nil {
			t.Errorf("audit query %v: want an error", bad)
		}
	}
}

func TestAuditSessionsFromStorage(t *testing.T) {
	st := memory.New()
	ctx := context.Background()
	login := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if err := st.CreateRefreshFamily(ctx, storage.RefreshFamily{ID: "f1", ClientID: "kubectl", ConnectorID: "github",
		Claims: storage.Claims{UserID: "1234", Username: "Alice", PreferredUsername: "alice"}, AuthTime: login, CreatedAt: login, LastUsed: login, ClientIP: "192.0.2.7"}); err != nil {
		t.Fatal(err)
	}
	s := auditSessions{Storage: st, Resolve: func(_ context.Context, u string) (string, string, bool) {
		return "github", "1234", u == "oidc:alice"
	}}
	got, err := s.Sessions(ctx, "oidc:alice")
	if err != nil || len(got) != 1 || got[0].UpstreamLogin != "alice" || got[0].SourceIP != "192.0.2.7" || !got[0].Time.Equal(login) {
		t.Fatalf("sessions: %+v %v", got, err)
	}
	if got, _ := s.Sessions(ctx, "oidc:bob"); len(got) != 0 {
		t.Errorf("unknown user has sessions: %+v", got)
	}
}

func TestServeAuditMountsSinkAndPage(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Parse([]byte(`
issuer: https://login.example.com
storage: {type: sqlite3, config: {file: ` + filepath.Join(dir, "gatehouse.db") + `}}
web: {http: 127.0.0.1:5556}
audit:
  enabled: true
  webhook: {bearerTokens: ["t1"]}
  viewerGroups: ["infra"]
`))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mux := http.NewServeMux()
	svc, err := serveAudit(ctx, c, mux, memory.New(), prometheus.NewRegistry(), slog.Default(), auditPage{
		Authenticate: func(*http.Request) (audit.Viewer, bool) {
			return audit.Viewer{User: "alice", Groups: []string{"infra"}}, true
		},
		Resolve: func(context.Context, string) (string, string, bool) { return "", "", false },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); svc.Close() }()
	body := event.EncodeList(auditgen.New(1, time.Now(), time.Millisecond).Batch(3))
	req := httptest.NewRequest(http.MethodPost, "/audit/webhook", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer t1")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/audit?user=oidc:alice", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Logins of oidc:alice") {
		t.Fatalf("page: %d", w.Code)
	}
}
