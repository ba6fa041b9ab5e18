package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/audit/web"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	alice   = web.Viewer{User: "alice", Groups: []string{"exampleorg:dev", "exampleorg:infra-team"}}
	mallory = web.Viewer{User: "mallory", Groups: []string{"exampleorg:dev", "infra-team"}}
)

// fakeSessions is what gatehouse's storage-backed implementation returns.
type fakeSessions map[string][]web.Session

func (f fakeSessions) Sessions(_ context.Context, user string) ([]web.Session, error) {
	return f[user], nil
}

func newStore(t *testing.T, extra ...[]byte) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite3", filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := auditgen.New(1, t0, time.Second)
	var events []event.Event
	for range 600 {
		e, err := event.Decode(g.JSON(), "cp-1")
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	for _, raw := range extra {
		e, err := event.Decode(raw, "cp-1")
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if _, err := db.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	return db
}

func newServer(t *testing.T, db *store.DB, viewer *web.Viewer, groups []string) *httptest.Server {
	t.Helper()
	h, err := web.New(web.Options{
		Events: db,
		Authenticate: func(*http.Request) (web.Viewer, bool) {
			if viewer == nil {
				return web.Viewer{}, false
			}
			return *viewer, true
		},
		ViewerGroups: groups,
		Sessions: fakeSessions{"oidc:alice": {
			{Connector: "github", UpstreamLogin: "alice-gh", ClientID: "kubectl", Time: t0.Add(-time.Hour), LastUsed: t0, SourceIP: "192.0.2.10"},
			{Connector: "github", UpstreamLogin: "alice-gh", ClientID: "kubectl", Time: t0.Add(-48 * time.Hour), LastUsed: t0.Add(-47 * time.Hour), SourceIP: "192.0.2.11", Expired: true},
			{Connector: "local", UpstreamLogin: "alice", ClientID: "kubectl", Time: t0.Add(-72 * time.Hour), LastUsed: t0.Add(-71 * time.Hour), SourceIP: "192.0.2.12", Revoked: true},
		}},
		Now: func() time.Time { return t0.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestAccess(t *testing.T) {
	db := newStore(t)
	infra := []string{"exampleorg:infra-team"}
	tests := []struct {
		name   string
		viewer *web.Viewer
		groups []string
		path   string
		want   int
	}{
		{"no login", nil, infra, "/audit", 401},
		{"no login, detail", nil, infra, "/audit/events/1", 401},
		{"outside viewerGroups", &mallory, infra, "/audit", 403},
		{"outside viewerGroups, detail", &mallory, infra, "/audit/events/1", 403},
		{"no viewerGroups configured: nobody", &alice, nil, "/audit", 403},
		{"member", &alice, infra, "/audit", 200},
		{"member, detail", &alice, infra, "/audit/events/1", 200},
		{"member, unknown event", &alice, infra, "/audit/events/999999", 404},
		{"member, bad id", &alice, infra, "/audit/events/x", 404},
		{"stylesheet is public", nil, infra, "/audit/static/audit.css", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, db, tt.viewer, tt.groups)
			code, body, hdr := get(t, srv.URL+tt.path)
			if code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
			if code == 403 && strings.Contains(body, "<table") {
				t.Error("a refused viewer sees events")
			}
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q", csp)
			}
		})
	}
}

func TestPageEscapesEventData(t *testing.T) {
	evil := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"evil-1","stage":"ResponseComplete","verb":"get",` +
		`"user":{"username":"<script>alert(1)</script>","groups":["system:authenticated"]},"objectRef":{"resource":"pods","name":"\"><img src=x onerror=alert(1)>"},` +
		`"requestReceivedTimestamp":"2026-03-01T12:30:00.000000Z","stageTimestamp":"2026-03-01T12:30:00.000000Z"}`)
	db := newStore(t, evil)
	srv := newServer(t, db, &alice, []string{"exampleorg:infra-team"})
	for _, path := range []string{"/audit?verb=get", "/audit/events/601", "/audit?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E"} {
		code, body, _ := get(t, srv.URL+path)
		if code != 200 {
			t.Fatalf("%s: status %d", path, code)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s: event data reached the page unescaped", path)
		}
	}
}

func TestBadFilterIsExplained(t *testing.T) {
	srv := newServer(t, newStore(t), &alice, []string{"exampleorg:infra-team"})
	for q, msg := range map[string]string{"since=yesterday": "invalid time", "code=abc": "invalid response code", "since=1h&until=2h": "is not before", "before=zz": "invalid cursor"} {
		code, body, _ := get(t, srv.URL+"/audit?"+q)
		if code != 400 || !strings.Contains(body, msg) {
			t.Errorf("%s: status %d, want 400 mentioning %q", q, code, msg)
		}
	}
}

// TestPageInBrowser drives the page in headless Chromium.
func TestPageInBrowser(t *testing.T) {
	ctx := browser.New(t)
	db := newStore(t)
	srv := newServer(t, db, &alice, []string{"exampleorg:infra-team"})
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	cells := func(sel string) []string {
		t.Helper()
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nodes {
			txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.NodeIDs{n.NodeID}))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(txt))
		}
		return out
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/audit"), chromedp.WaitVisible(chromedp.CSS("table.events"))); err != nil {
		t.Fatal(err)
	}
	if rows := cells("tr.event td.user"); len(rows) != 50 {
		t.Fatalf("first page shows %d events, want 50", len(rows))
	}
	bars, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("svg.chart rect"), chromedp.AtLeast(1)))
	if err != nil || len(bars) < 10 {
		t.Fatalf("timeline has %d bars (%v)", len(bars), err)
	}

	// Filter by user and verb through the form.
	if _, err := chromedp.RunResponse(ctx, chromedp.SetValue(chromedp.ID("f-user"), "oidc:alice"), chromedp.SetValue(chromedp.ID("f-verb"), "create"),
		chromedp.Click(chromedp.CSS("form.filters button"))); err != nil {
		t.Fatal(err)
	}
	users, verbs := cells("tr.event td.user"), cells("tr.event td.verb")
	if len(users) == 0 {
		t.Fatal("the filter matched nothing: the test data is wrong")
	}
	for i := range users {
		if users[i] != "oidc:alice" || verbs[i] != "create" {
			t.Errorf("row %d: %s %s, want oidc:alice create", i, users[i], verbs[i])
		}
	}
	// The user's login sessions sit next to their actions.
	if s := cells("tr.session"); len(s) != 3 || !strings.Contains(s[0], "alice-gh") || !strings.Contains(s[0], "github") || !strings.Contains(s[0], "192.0.2.10") ||
		strings.Contains(s[0], "(e") || !strings.Contains(s[1], "(expired)") || !strings.Contains(s[2], "(ended)") {
		t.Errorf("sessions: %q", s)
	}
	// Legend of the chart by verb.
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+"/audit?by=verb&namespace=payments")); err != nil {
		t.Fatal(err)
	}
	legend := strings.Join(cells("ul.legend li"), " ")
	if !strings.Contains(legend, "get") || strings.Contains(legend, "oidc:") {
		t.Errorf("chart by verb has legend %q", legend)
	}
	for _, ns := range cells("tr.event td.namespace") {
		if ns != "payments" {
			t.Errorf("namespace filter shows %q", ns)
		}
	}

	// Detail: request and response objects of a create.
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+"/audit?user=oidc:alice&verb=create")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("tr.event td a"))); err != nil {
		t.Fatal(err)
	}
	req, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("request")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("response")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(req, `"kind": "ConfigMap"`) || !strings.Contains(resp, `"data"`) {
		t.Errorf("detail objects: request %q response %q", req, resp)
	}

	// Paging: the "Older events" link continues where the page ended.
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+"/audit")); err != nil {
		t.Fatal(err)
	}
	first := cells("tr.event td a")
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("a[rel=next]"))); err != nil {
		t.Fatal(err)
	}
	second := cells("tr.event td a")
	if len(second) != 50 || second[0] >= first[len(first)-1] {
		t.Errorf("second page starts at %v after %v", second[0], first[len(first)-1])
	}
}

func TestForbiddenInBrowser(t *testing.T) {
	ctx := browser.New(t)
	srv := newServer(t, newStore(t), &mallory, []string{"exampleorg:infra-team"})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+"/audit"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Fatalf("status %d, want 403", resp.Status)
	}
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || h1 != "Not allowed" {
		t.Errorf("heading %q (%v)", h1, err)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("tr.event"), chromedp.AtLeast(0))); len(n) != 0 {
		t.Error("a refused viewer sees events")
	}
}
