package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"
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
	for _, f := range []storage.RefreshFamily{
		{ID: "f1", ClientID: "kubectl", ConnectorID: "github", Claims: storage.Claims{UserID: "1234", Username: "Alice", PreferredUsername: "alice", Email: "alice@example.com"},
			AuthTime: login, CreatedAt: login, LastUsed: login, ClientIP: "192.0.2.7"},
		{ID: "f2", ClientID: "kubectl", ConnectorID: "github", Claims: storage.Claims{UserID: "1235", PreferredUsername: "alice2", Email: "alice2@example.com"},
			AuthTime: login, CreatedAt: login, LastUsed: login, ClientIP: "192.0.2.8"},
	} {
		if err := st.CreateRefreshFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, claim, prefix, user string
		want                      []string // upstream logins
	}{
		{"preferred_username with prefix", "preferred_username", "oidc:", "oidc:alice", []string{"alice"}},
		{"another user", "preferred_username", "oidc:", "oidc:alice2", []string{"alice2"}},
		{"no prefix match", "preferred_username", "oidc:", "alice", nil},
		{"prefix of a name", "preferred_username", "oidc:", "oidc:ali", nil},
		{"service account", "preferred_username", "oidc:", "system:serviceaccount:kube-system:default", nil},
		{"just the prefix", "preferred_username", "oidc:", "oidc:", nil},
		{"email, no prefix", "email", "", "alice@example.com", []string{"alice"}},
		{"sub", "sub", "oidc:", "oidc:" + issuerSubject(t, "1234", "github"), []string{"alice"}},
		{"sub of another connector", "sub", "oidc:", "oidc:" + issuerSubject(t, "1234", "ldap"), nil},
		{"not a subject", "sub", "oidc:", "oidc:%%%", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := auditSessions{Storage: st, Claim: tc.claim, Prefix: tc.prefix}
			got, err := s.Sessions(ctx, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			var logins []string
			for _, g := range got {
				logins = append(logins, g.UpstreamLogin)
			}
			if !slices.Equal(logins, tc.want) {
				t.Fatalf("sessions of %q: %v, want %v", tc.user, logins, tc.want)
			}
			if len(got) == 1 && (got[0].Connector != "github" || got[0].ClientID != "kubectl" || !got[0].Time.Equal(login) || got[0].SourceIP == "") {
				t.Errorf("session: %+v", got[0])
			}
		})
	}
}

// TestAuditSessionsMarksEnded marks the sessions that can no longer be
// used (logged out or revoked, or past the refresh tokens' idle or
// absolute lifetime) and lists the newest maxSessions of a user.
func TestAuditSessionsMarksEnded(t *testing.T) {
	st := memory.New()
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	fam := func(id string, created, lastUsed time.Time, revoked bool) storage.RefreshFamily {
		return storage.RefreshFamily{ID: id, ClientID: "kubectl", ConnectorID: "github", Claims: storage.Claims{UserID: "1234", PreferredUsername: "alice"},
			AuthTime: created, CreatedAt: created, LastUsed: lastUsed, ClientIP: "192.0.2.7", Revoked: revoked}
	}
	for _, f := range []storage.RefreshFamily{
		fam("live", now.Add(-time.Hour), now.Add(-time.Minute), false),
		fam("revoked", now.Add(-2*time.Hour), now.Add(-time.Minute), true),
		fam("idle", now.Add(-3*time.Hour), now.Add(-25*time.Hour), false),
		fam("old", now.Add(-800*time.Hour), now.Add(-time.Minute), false),
	} {
		if err := st.CreateRefreshFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	type mark struct{ revoked, expired bool }
	for _, tc := range []struct {
		name           string
		idle, absolute time.Duration
		want           []mark // newest first: live, revoked, idle, old
	}{
		{"no expiry", 0, 0, []mark{{}, {revoked: true}, {}, {}}},
		{"idle limit", 24 * time.Hour, 0, []mark{{}, {revoked: true}, {expired: true}, {}}},
		{"absolute limit", 0, 720 * time.Hour, []mark{{}, {revoked: true}, {}, {expired: true}}},
		{"both", 24 * time.Hour, 720 * time.Hour, []mark{{}, {revoked: true}, {expired: true}, {expired: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := auditSessions{Storage: st, Claim: "preferred_username", Prefix: "oidc:", IdleLimit: tc.idle, AbsoluteLimit: tc.absolute, Now: func() time.Time { return now }}
			got, err := s.Sessions(ctx, "oidc:alice")
			if err != nil {
				t.Fatal(err)
			}
			var marks []mark
			for _, g := range got {
				marks = append(marks, mark{g.Revoked, g.Expired})
			}
			if !slices.Equal(marks, tc.want) {
				t.Fatalf("marks %v, want %v", marks, tc.want)
			}
		})
	}

	// Many logins: the newest maxSessions are listed.
	for i := range maxSessions + 5 {
		created := now.Add(time.Duration(i) * time.Second)
		if err := st.CreateRefreshFamily(ctx, fam(fmt.Sprintf("many-%03d", i), created, created, false)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := auditSessions{Storage: st, Claim: "preferred_username", Prefix: "oidc:"}.Sessions(ctx, "oidc:alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxSessions || !got[0].Time.Equal(now.Add((maxSessions+4)*time.Second)) {
		t.Fatalf("%d sessions, first at %v", len(got), got[0].Time)
	}
}

// issuerSubject is the sub claim gatehouse issues for a user of a
// connector, read from a real ID token of the in-process issuer would be
// circular here; DecodeSubject's inverse is checked in internal/issuer.
func issuerSubject(t *testing.T, userID, connID string) string {
	t.Helper()
	// protobuf: field 1 (user id) and field 2 (connector id), length-delimited.
	b := []byte{0x0a, byte(len(userID))}
	b = append(b, userID...)
	b = append(b, 0x12, byte(len(connID)))
	b = append(b, connID...)
	sub := base64.RawURLEncoding.EncodeToString(b)
	if u, c, err := issuer.DecodeSubject(sub); err != nil || u != userID || c != connID {
		t.Fatalf("DecodeSubject(%q) = %q, %q, %v", sub, u, c, err)
	}
	return sub
}

// TestAuditPageShowsLoginSessions logs a user in twice through a real
// gatehouse (password grant, as two machines would), sends that user's
// kube-apiserver events to the sink, and opens the /audit page for the
// user in Chromium: both sessions are listed next to the events, and
// another user's are not.
func TestAuditPageShowsLoginSessions(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "gatehouse.db")
	path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+dbFile)
	stop := run(t, path, s)
	for range 2 {
		tok := passwordGrant(t, s, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid offline_access profile email"}})
		if tok["status"] != 200 || tok["refresh_token"] == nil {
			t.Fatalf("password grant: %v", tok)
		}
	}
	stop()

	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Local users have no preferred_username (as in Dex), so a cluster
	// whose users log in with passwords names them by email.
	prefix := "oidc:"
	c.Audit = config.Audit{Enabled: true, Webhook: config.AuditWebhook{BearerTokens: []string{"0123456789abcdef0123"}}, ViewerGroups: []string{"infra"},
		Users: config.AuditUsers{Claim: "email", Prefix: &prefix}}
	c.ApplyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, sqlite.Config{File: dbFile})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mux := http.NewServeMux()
	svc, err := serveAudit(ctx, c, mux, st, prometheus.NewRegistry(), slog.Default(), auditPage{
		Authenticate: func(*http.Request) (audit.Viewer, bool) {
			return audit.Viewer{User: "viewer", Groups: []string{"infra"}}, true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); svc.Close() }()
	srv := httptest.NewServer(mux)
	defer srv.Close()

	now := time.Now().UTC()
	var items []json.RawMessage
	for i, u := range []string{"oidc:admin@example.com", "oidc:admin@example.com", "oidc:admin2@example.com"} {
		items = append(items, json.RawMessage(fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"00000000-0000-4000-8000-00000000000%d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"list","user":{"username":%q,"groups":["oidc:exampleorg:infra-team","system:authenticated"]},"sourceIPs":["10.0.0.9"],"userAgent":"kubectl/v1.37.2","objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":%q,"stageTimestamp":%q}`,
			i, u, now.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), now.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano))))
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/audit/webhook", bytes.NewReader(event.EncodeList(items)))
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}

	bctx := browser.New(t)
	for _, tc := range []struct {
		user     string
		sessions int
		events   int
	}{
		{"oidc:admin@example.com", 2, 2},
		{"oidc:admin2@example.com", 0, 1},
		{"admin@example.com", 0, 0},
		{"oidc:ADMIN@example.com", 0, 0},
	} {
		t.Run(tc.user, func(t *testing.T) {
			if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/audit?user="+url.QueryEscape(tc.user)), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
				t.Fatal(err)
			}
			sessions, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll("tr.session"), chromedp.AtLeast(0)))
			if err != nil {
				t.Fatal(err)
			}
			if len(sessions) != tc.sessions {
				t.Fatalf("%d session rows, want %d", len(sessions), tc.sessions)
			}
			if tc.sessions > 0 {
				text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("tr.session")))
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{"local", "admin", "kubernetes", "127.0.0.1"} /* upstream login: the local user's name */ {
					if !strings.Contains(text, want) {
						t.Errorf("session row %q lacks %q", text, want)
					}
				}
			}
			rows, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll("tr.event"), chromedp.AtLeast(0)))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.events {
				t.Errorf("%d event rows, want %d", len(rows), tc.events)
			}
		})
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
