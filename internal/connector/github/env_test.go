package github

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

const redirectURI = "https://gatehouse.example/callback"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture: acme has a team tree platform > infra-team > sre-oncall.
func fixture() fakegithub.Fixture {
	return fakegithub.Fixture{
		Users: []fakegithub.User{
			{ID: 1001, Login: "alice", Name: "Alice Liddell", Emails: []fakegithub.Email{
				{Email: "alice@old.example", Verified: true},
				{Email: "alice@example.com", Primary: true, Verified: true},
				{Email: "alice@corp.example.com", Verified: true},
				{Email: "alice@unverified.example.com"},
			}},
			{ID: 1002, Login: "bob", PublicEmail: "bob@example.com", Emails: []fakegithub.Email{{Email: "bob@example.com", Primary: true, Verified: true}}},
			{ID: 1003, Login: "carol", Name: "Carol", Emails: []fakegithub.Email{{Email: "carol@example.com", Primary: true, Verified: true}}},
			{ID: 1004, Login: "dave", Emails: []fakegithub.Email{{Email: "dave@example.com", Primary: true}}},
		},
		Orgs: []fakegithub.Org{
			{ID: 1, Login: "acme", Members: []string{"alice", "bob", "dave"}},
			{ID: 2, Login: "globex", Members: []string{"alice"}},
		},
		Teams: []fakegithub.Team{
			{ID: 10, Org: "acme", Name: "Platform", Slug: "platform"},
			{ID: 11, Org: "acme", Name: "Infra Team", Slug: "infra-team", Parent: "platform"},
			{ID: 12, Org: "acme", Name: "SRE Oncall", Slug: "sre-oncall", Parent: "infra-team", Members: []string{"alice"}},
			{ID: 13, Org: "acme", Name: "Developers", Slug: "developers", Members: []string{"bob"}},
			{ID: 20, Org: "globex", Name: "Admins", Slug: "admins", Members: []string{"alice"}},
		},
		Apps: []fakegithub.App{
			{ClientID: "oauth-app", ClientSecret: "oauth-secret", CallbackURL: redirectURI},
			{ClientID: "gh-app", ClientSecret: "gh-secret", CallbackURL: redirectURI, GitHubApp: true},
		},
	}
}

type env struct {
	fake *fakegithub.Server
	c    *Connector
	clk  *clock
	reg  *prometheus.Registry
	logs *syncbuf.Buffer
}

type envOpts struct {
	fx         *fakegithub.Fixture
	enterprise bool
	fakeOpts   func(*fakegithub.Options)
	opts       []Option
}

// newEnv starts an HTTPS fake GitHub and a connector pointed at it with
// cfg (clientID/secret/redirectURI default to the OAuth App).
func newEnv(t *testing.T, cfg Config, eo envOpts) *env {
	t.Helper()
	clk := newClock()
	fx := fixture()
	if eo.fx != nil {
		fx = *eo.fx
	}
	fo := fakegithub.Options{Fixture: fx, TLS: true, Enterprise: eo.enterprise, Now: clk.Now}
	if eo.fakeOpts != nil {
		eo.fakeOpts(&fo)
	}
	fake, err := fakegithub.Start(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = "oauth-app", "oauth-secret"
	}
	if cfg.RedirectURI == "" {
		cfg.RedirectURI = redirectURI
	}
	reg := prometheus.NewRegistry()
	opts := []Option{WithClock(clk.Now), WithRegisterer(reg)}
	if eo.enterprise {
		cfg.HostName = fake.Host()
		if cfg.RootCA, err = fake.WriteCAFile(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	} else {
		opts = append(opts, WithHTTPClient(fake.Client()), WithURLs(fake.URL, fake.APIURL))
	}
	opts = append(opts, eo.opts...)
	logs := &syncbuf.Buffer{}
	c, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, c: c, clk: clk, reg: reg, logs: logs}
}

// authorize runs LoginURL and the fake's authorize page as login, and
// returns the callback request and connData.
func (e *env) authorize(t *testing.T, s connector.Scopes, login string) (*http.Request, []byte) {
	t.Helper()
	e.fake.SetLogin(login)
	const state = "state-4711"
	loginURL, connData, err := e.c.LoginURL(context.Background(), s, redirectURI, state)
	if err != nil {
		t.Fatal(err)
	}
	hc := *e.fake.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("state") != state {
		t.Fatalf("authorize redirected to %q", resp.Header.Get("Location"))
	}
	return httptest.NewRequest("GET", loc.String(), nil), connData
}

// login runs the whole flow: LoginURL, the fake's authorize, HandleCallback.
func (e *env) login(t *testing.T, s connector.Scopes, login string) (connector.Identity, error) {
	t.Helper()
	req, connData := e.authorize(t, s, login)
	return e.c.HandleCallback(context.Background(), s, connData, req)
}

func userError(t *testing.T, err error) *connector.UserError {
	t.Helper()
	ue, ok := connector.AsUserError(err)
	if !ok {
		t.Fatalf("want a *connector.UserError, got %T: %v", err, err)
	}
	return ue
}

func teamFixture(orgs, teams int) fakegithub.Fixture {
	fx := fixture()
	for i := range orgs {
		fx.Orgs = append(fx.Orgs, fakegithub.Org{ID: int64(100 + i), Login: fmt.Sprintf("org%03d", i), Members: []string{"carol"}})
	}
	for i := range teams {
		fx.Teams = append(fx.Teams, fakegithub.Team{ID: int64(5000 + i), Org: "org000", Name: fmt.Sprintf("team%03d", i), Members: []string{"carol"}})
	}
	return fx
}
