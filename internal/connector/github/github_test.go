package github

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

var (
	noScopes     = connector.Scopes{}
	groupsScope  = connector.Scopes{Groups: true}
	offlineScope = connector.Scopes{Groups: true, OfflineAccess: true}
)

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		login  string
		want   connector.Identity
		reason string // UserError reason expected instead
		calls  map[string]int
	}{
		{name: "private email from /user/emails, name as Username", login: "alice",
			want:  connector.Identity{UserID: "1001", Username: "Alice Liddell", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true},
			calls: map[string]int{"GET /user": 1, "GET /user/emails": 1}},
		{name: "public email, login as Username when no name", login: "bob",
			want:  connector.Identity{UserID: "1002", Username: "bob", PreferredUsername: "bob", Email: "bob@example.com", EmailVerified: true},
			calls: map[string]int{"GET /user": 1, "GET /user/emails": 0}},
		{name: "useLoginAsID", cfg: Config{UseLoginAsID: true}, login: "alice",
			want: connector.Identity{UserID: "alice", Username: "Alice Liddell", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true}},
		{name: "preferredEmailDomain with wildcard skips unverified", cfg: Config{PreferredEmailDomain: "*.example.com"}, login: "alice",
			want: connector.Identity{UserID: "1001", Username: "Alice Liddell", PreferredUsername: "alice", Email: "alice@corp.example.com", EmailVerified: true}},
		{name: "preferredEmailDomain without match falls back to primary", cfg: Config{PreferredEmailDomain: "nowhere.org"}, login: "alice",
			want: connector.Identity{UserID: "1001", Username: "Alice Liddell", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true}},
		{name: "preferredEmailDomain overrides public email", cfg: Config{PreferredEmailDomain: "nowhere.org"}, login: "bob",
			want:  connector.Identity{UserID: "1002", Username: "bob", PreferredUsername: "bob", Email: "bob@example.com", EmailVerified: true},
			calls: map[string]int{"GET /user/emails": 1}},
		{name: "no verified email", login: "dave", reason: "no_verified_email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, envOpts{})
			id, err := e.login(t, noScopes, tc.login)
			if tc.reason != "" {
				if ue := userError(t, err); ue.Reason != tc.reason || ue.Status != http.StatusForbidden {
					t.Fatalf("got %+v", ue)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(id, tc.want) {
				t.Fatalf("identity\n got %+v\nwant %+v", id, tc.want)
			}
			for ep, n := range tc.calls {
				if got := e.fake.Requests(ep); got != n {
					t.Errorf("%s: %d requests, want %d", ep, got, n)
				}
			}
		})
	}
}

func TestGroups(t *testing.T) {
	acme := []Org{{Name: "acme"}}
	for _, tc := range []struct {
		name   string
		cfg    Config
		scopes *connector.Scopes // default groupsScope
		login  string
		want   []string
		reason string
	}{
		{name: "org without teams", cfg: Config{Orgs: acme}, login: "alice", want: []string{"acme:SRE Oncall"}},
		{name: "org without teams, other user", cfg: Config{Orgs: acme}, login: "bob", want: []string{"acme:Developers"}},
		{name: "groups even without the groups scope when orgs restrict", cfg: Config{Orgs: acme}, scopes: &noScopes, login: "bob", want: []string{"acme:Developers"}},
		{name: "outside every org", cfg: Config{Orgs: acme}, login: "carol", reason: "not_in_org"},
		{name: "team filter admits", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"Developers"}}}}, login: "bob", want: []string{"acme:Developers"}},
		{name: "team filter denies", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"Developers"}}}}, login: "alice", reason: "not_in_team"},
		{name: "two orgs", cfg: Config{Orgs: []Org{{Name: "acme"}, {Name: "globex"}}}, login: "alice", want: []string{"acme:SRE Oncall", "globex:Admins"}},
		{name: "second org open", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"Developers"}}, {Name: "globex"}}}, login: "alice", want: []string{"globex:Admins"}},
		{name: "org name case-insensitive", cfg: Config{Orgs: []Org{{Name: "ACME"}}}, login: "alice", want: []string{"ACME:SRE Oncall"}},
		{name: "teamNameField slug", cfg: Config{Orgs: acme, TeamNameField: "slug"}, login: "alice", want: []string{"acme:sre-oncall"}},
		{name: "teamNameField both", cfg: Config{Orgs: acme, TeamNameField: "both"}, login: "alice", want: []string{"acme:SRE Oncall", "acme:sre-oncall"}},
		{name: "teamNameField both filtered by slug", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"sre-oncall"}}}, TeamNameField: "both"}, login: "alice", want: []string{"acme:sre-oncall"}},
		{name: "includeParentTeams", cfg: Config{Orgs: acme, IncludeParentTeams: true}, login: "alice", want: []string{"acme:SRE Oncall", "acme:Infra Team", "acme:Platform"}},
		{name: "includeParentTeams slug", cfg: Config{Orgs: acme, IncludeParentTeams: true, TeamNameField: "slug"}, login: "alice", want: []string{"acme:sre-oncall", "acme:infra-team", "acme:platform"}},
		{name: "parent team admits a child team's member", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"Platform"}}}, IncludeParentTeams: true}, login: "alice", want: []string{"acme:Platform"}},
		{name: "parent team without includeParentTeams", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"Platform"}}}}, login: "alice", reason: "not_in_team"},
		{name: "legacy org: bare team names", cfg: Config{Org: "acme"}, login: "alice", want: []string{"SRE Oncall"}},
		{name: "legacy org checks membership", cfg: Config{Org: "acme"}, login: "carol", reason: "not_in_org"},
		{name: "loadAllGroups", cfg: Config{LoadAllGroups: true}, login: "alice", want: []string{"acme", "acme:SRE Oncall", "globex", "globex:Admins"}},
		{name: "loadAllGroups with parents", cfg: Config{LoadAllGroups: true, IncludeParentTeams: true}, login: "alice", want: []string{"acme", "acme:SRE Oncall", "acme:Infra Team", "acme:Platform", "globex", "globex:Admins"}},
		{name: "loadAllGroups needs the groups scope", cfg: Config{LoadAllGroups: true}, scopes: &noScopes, login: "alice", want: nil},
		{name: "groups scope without orgs or loadAllGroups", cfg: Config{}, login: "alice", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scopes := groupsScope
			if tc.scopes != nil {
				scopes = *tc.scopes
			}
			e := newEnv(t, tc.cfg, envOpts{})
			id, err := e.login(t, scopes, tc.login)
			if tc.reason != "" {
				ue := userError(t, err)
				if ue.Reason != tc.reason || ue.Status != http.StatusForbidden {
					t.Fatalf("got %+v", ue)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 && len(id.Groups) == 0 {
				return
			}
			if !reflect.DeepEqual(id.Groups, tc.want) {
				t.Fatalf("groups %q, want %q (requests %v)", id.Groups, tc.want, e.fake.RequestCounts())
			}
		})
	}
}

func TestParentTeamsCost(t *testing.T) {
	e := newEnv(t, Config{Orgs: []Org{{Name: "acme"}}, IncludeParentTeams: true}, envOpts{})
	if _, err := e.login(t, groupsScope, "alice"); err != nil {
		t.Fatal(err)
	}
	// sre-oncall's parent (infra-team) and grandparent (platform) are
	// looked up once each; the user's own teams come from /user/teams.
	if n := e.fake.Requests("GET /orgs/{org}/teams/{slug}"); n != 2 {
		t.Fatalf("%d team lookups, want 2", n)
	}
}

func TestDenialMessage(t *testing.T) {
	cfg := Config{Orgs: []Org{{Name: "acme", Teams: []string{"Developers", "Platform"}}, {Name: "initech"}}}
	for _, show := range []bool{true, false} {
		cfg.ShowRequiredGroups = show
		e := newEnv(t, cfg, envOpts{})
		_, err := e.login(t, groupsScope, "alice")
		ue := userError(t, err)
		if ue.Reason != "not_in_team" || !strings.Contains(ue.Message, "alice") {
			t.Fatalf("show=%v: %+v", show, ue)
		}
		for _, name := range []string{"acme", "Developers", "Platform", "initech"} {
			if strings.Contains(ue.Message, name) != show {
				t.Errorf("show=%v: message %q, mentions %s: %v", show, ue.Message, name, !show)
			}
			if strings.Contains(ue.Description, name) != show {
				t.Errorf("show=%v: description %q, mentions %s: %v", show, ue.Description, name, !show)
			}
		}
		// The one line the client application gets.
		want := "not in an organization or team allowed to log in; signed in to GitHub as alice"
		if show {
			want = "membership in acme/Developers or acme/Platform or initech required; signed in to GitHub as alice"
		}
		if ue.Description != want {
			t.Errorf("show=%v: description %q, want %q", show, ue.Description, want)
		}
	}
}

func TestLoginURL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		scopes connector.Scopes
		want   string
	}{
		{"email only", Config{}, noScopes, "user:email"},
		{"groups scope", Config{}, groupsScope, "user:email read:org"},
		{"orgs", Config{Orgs: []Org{{Name: "acme"}}}, noScopes, "user:email read:org"},
		{"legacy org", Config{Org: "acme"}, noScopes, "user:email read:org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, envOpts{})
			u, connData, err := e.c.LoginURL(context.Background(), tc.scopes, redirectURI, "st")
			if err != nil {
				t.Fatal(err)
			}
			p, _ := url.Parse(u)
			q := p.Query()
			if q.Get("scope") != tc.want || q.Get("client_id") != "oauth-app" || q.Get("redirect_uri") != redirectURI ||
				q.Get("state") != "st" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(connData) == 0 {
				t.Fatalf("login URL %s", u)
			}
			if !strings.HasPrefix(u, e.fake.URL+"/login/oauth/authorize?") {
				t.Fatalf("login URL %s not at the fake", u)
			}
		})
	}
	e := newEnv(t, Config{}, envOpts{})
	if _, _, err := e.c.LoginURL(context.Background(), noScopes, "https://evil.example/callback", "st"); err == nil {
		t.Fatal("a callback URL other than redirectURI was accepted")
	}
}

func TestCallbackAttacks(t *testing.T) {
	t.Run("code replay", func(t *testing.T) {
		e := newEnv(t, Config{}, envOpts{})
		req, connData := e.authorize(t, noScopes, "alice")
		if _, err := e.c.HandleCallback(context.Background(), noScopes, connData, req); err != nil {
			t.Fatal(err)
		}
		_, err := e.c.HandleCallback(context.Background(), noScopes, connData, req)
		if ue := userError(t, err); ue.Reason != "bad_verification_code" || ue.Status != http.StatusBadRequest {
			t.Fatalf("replayed code: %+v", ue)
		}
	})
	t.Run("stolen code without the PKCE verifier", func(t *testing.T) {
		e := newEnv(t, Config{}, envOpts{})
		req, _ := e.authorize(t, noScopes, "alice")
		_, otherVerifier, _ := e.c.LoginURL(context.Background(), noScopes, redirectURI, "x")
		if _, err := e.c.HandleCallback(context.Background(), noScopes, otherVerifier, req); err == nil {
			t.Fatal("code redeemed with another login's verifier")
		}
	})
	t.Run("user cancels on GitHub", func(t *testing.T) {
		e := newEnv(t, Config{}, envOpts{})
		req, connData := e.authorize(t, noScopes, fakegithub.Deny)
		_, err := e.c.HandleCallback(context.Background(), noScopes, connData, req)
		if ue := userError(t, err); ue.Reason != "access_denied" || ue.Description != "authorization cancelled at GitHub" {
			t.Fatalf("%+v", ue)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		e := newEnv(t, Config{ClientID: "oauth-app", ClientSecret: "wrong"}, envOpts{})
		_, err := e.login(t, noScopes, "alice")
		if err == nil || !strings.Contains(err.Error(), "clientSecret") {
			t.Fatalf("err %v", err)
		}
		if _, ok := connector.AsUserError(err); ok {
			t.Fatal("an operator error shown as a user error")
		}
	})
}

// TestMembershipRedirectStaysOnHost: GitHub redirects a membership check
// to /public_members on its own host; a redirect elsewhere must not carry
// the user's token, and does not count as membership.
func TestMembershipRedirectStaysOnHost(t *testing.T) {
	var leaked atomic.Int32
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer evil.Close()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/user":
			_ = json.NewEncoder(w).Encode(map[string]any{"login": "alice", "id": 1001, "email": "alice@example.com"})
		case "/orgs/acme/members/alice":
			http.Redirect(w, r, evil.URL+"/orgs/acme/public_members/alice", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()

	clk := newClock()
	fake, err := fakegithub.Start(fakegithub.Options{Fixture: fixture(), TLS: true, Now: clk.Now, Login: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	c, err := New(Config{ClientID: "oauth-app", ClientSecret: "oauth-secret", RedirectURI: redirectURI, Orgs: []Org{{Name: "acme"}}},
		nil, WithHTTPClient(fake.Client()), WithURLs(fake.URL, api.URL), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fake: fake, c: c, clk: clk}
	_, err = e.login(t, groupsScope, "alice")
	if ue := userError(t, err); ue.Reason != "not_in_org" {
		t.Fatalf("%+v", ue)
	}
	if leaked.Load() != 0 {
		t.Fatal("followed a redirect to another host")
	}
}

func TestPagination(t *testing.T) {
	fx := teamFixture(150, 250)
	e := newEnv(t, Config{LoadAllGroups: true}, envOpts{fx: &fx})
	id, err := e.login(t, groupsScope, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Groups) != 400 || id.Groups[0] != "org000" || id.Groups[1] != "org000:team000" || id.Groups[250] != "org000:team249" || id.Groups[399] != "org149" {
		t.Fatalf("%d groups: %q...", len(id.Groups), id.Groups[:min(3, len(id.Groups))])
	}
	// per_page=100: 150 orgs in 2 pages, 250 teams in 3.
	if o, tm := e.fake.Requests("GET /user/orgs"), e.fake.Requests("GET /user/teams"); o != 2 || tm != 3 {
		t.Fatalf("orgs pages %d, teams pages %d", o, tm)
	}

	// Many configured orgs: one membership check each, teams listed once.
	var orgs []Org
	for i := range 10 {
		orgs = append(orgs, Org{Name: fmt.Sprintf("org%03d", i)})
	}
	orgs[0].Teams = []string{"team249"}
	e = newEnv(t, Config{Orgs: orgs}, envOpts{fx: &fx})
	id, err = e.login(t, groupsScope, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(id.Groups, []string{"org000:team249"}) {
		t.Fatalf("groups %q", id.Groups)
	}
	if m, tm := e.fake.Requests("GET /orgs/{org}/members/{username}"), e.fake.Requests("GET /user/teams"); m != 10 || tm != 3 {
		t.Fatalf("membership checks %d, teams pages %d", m, tm)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_github_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRateLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		remaining int           // primary budget left before the login
		secondary time.Duration // secondary limit's Retry-After
		wantRetry time.Duration
		kind      string
	}{
		{name: "primary exhausted, 403", status: 403, remaining: 0, wantRetry: time.Hour, kind: "primary"},
		{name: "primary exhausted, 429", status: 429, remaining: 0, wantRetry: time.Hour, kind: "primary"},
		{name: "primary exhausted mid-login", status: 403, remaining: 3, wantRetry: time.Hour, kind: "primary"},
		{name: "secondary, 403 Retry-After", status: 403, secondary: 2 * time.Minute, wantRetry: 2 * time.Minute, kind: "secondary"},
		{name: "secondary, 429 Retry-After", status: 429, secondary: 45 * time.Second, wantRetry: 45 * time.Second, kind: "secondary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Orgs: []Org{{Name: "acme"}, {Name: "globex"}}}, envOpts{fakeOpts: func(o *fakegithub.Options) {
				o.RateLimitStatus = tc.status
			}})
			if tc.secondary > 0 {
				e.fake.SetSecondaryRateLimit(tc.status, tc.secondary)
			} else if err := e.fake.SetRateLimitRemaining("alice", tc.remaining); err != nil {
				t.Fatal(err)
			}
			_, err := e.login(t, groupsScope, "alice")
			ue := userError(t, err)
			if ue.Status != http.StatusTooManyRequests || ue.Reason != "rate_limited" || ue.RetryAfter != tc.wantRetry || ue.Message == "" {
				t.Fatalf("got %+v", ue)
			}
			if tc.kind == "primary" && !strings.Contains(ue.Message, "10:00 UTC") {
				t.Errorf("message does not say when the limit resets: %q", ue.Message)
			}
			if got := counter(t, e.reg, tc.kind); got != 1 {
				t.Errorf("gatehouse_github_rate_limited_total{kind=%q} = %v", tc.kind, got)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "rate limited") || !strings.Contains(logs, "reset=") {
				t.Errorf("no warning logged: %s", logs)
			}
		})
	}
}

func TestGitHubUnreachableDoesNotHang(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stuck.Close()
	defer close(release)
	clk := newClock()
	fake, err := fakegithub.Start(fakegithub.Options{Fixture: fixture(), TLS: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	c, err := New(Config{ClientID: "oauth-app", ClientSecret: "oauth-secret", RedirectURI: redirectURI}, nil,
		WithHTTPClient(fake.Client()), WithURLs(fake.URL, stuck.URL), WithClock(clk.Now), WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fake: fake, c: c, clk: clk}
	_, err = e.login(t, noScopes, "alice")
	if ue := userError(t, err); ue.Reason != "github_unavailable" {
		t.Fatalf("%+v", ue)
	}
}

func TestRefreshInterval(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		reason   string   // after removal from the team, once the interval passed
		want     []string // groups then
		interval time.Duration
	}{
		{name: "open org: loses the team group", cfg: Config{Orgs: []Org{{Name: "acme"}}}, want: []string{}, interval: DefaultGroupsRefreshInterval},
		{name: "team required: refused", cfg: Config{Orgs: []Org{{Name: "acme", Teams: []string{"SRE Oncall"}}}}, reason: "not_in_team", interval: DefaultGroupsRefreshInterval},
		{name: "custom interval", cfg: Config{Orgs: []Org{{Name: "acme"}}, GroupsRefreshInterval: "1h"}, want: []string{}, interval: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, envOpts{})
			ctx := context.Background()
			id, err := e.login(t, offlineScope, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(id.Groups, []string{"acme:SRE Oncall"}) {
				t.Fatalf("groups %q", id.Groups)
			}
			e.fake.ResetCounts()
			if err := e.fake.RemoveTeamMember("acme", "sre-oncall", "alice"); err != nil {
				t.Fatal(err)
			}
			// Within the interval: unchanged, and no call to GitHub.
			e.clk.Advance(tc.interval - time.Second)
			again, err := e.c.Refresh(ctx, offlineScope, id)
			if err != nil || !reflect.DeepEqual(again, id) || e.fake.APIRequests() != 0 {
				t.Fatalf("within the interval: %v, %d API requests, changed %v", err, e.fake.APIRequests(), !reflect.DeepEqual(again, id))
			}
			// Once it has passed: fetched again.
			e.clk.Advance(time.Second)
			again, err = e.c.Refresh(ctx, offlineScope, id)
			if tc.reason != "" {
				if ue := userError(t, err); ue.Reason != tc.reason {
					t.Fatalf("%+v", ue)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again.Groups, tc.want) || again.UserID != id.UserID || again.Email != id.Email {
				t.Fatalf("after refresh %+v", again)
			}
			used := e.fake.APIRequests()
			if used == 0 {
				t.Fatal("refresh did not ask GitHub")
			}
			// The fetch time was kept: the next refresh is free again.
			e.clk.Advance(tc.interval / 2)
			if _, err := e.c.Refresh(ctx, offlineScope, again); err != nil || e.fake.APIRequests() != used {
				t.Fatalf("second refresh: %v, %d requests", err, e.fake.APIRequests()-used)
			}
		})
	}
}

func TestRefreshEveryTime(t *testing.T) {
	e := newEnv(t, Config{Orgs: []Org{{Name: "acme"}}, GroupsRefreshInterval: "0s"}, envOpts{})
	id, err := e.login(t, offlineScope, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCounts()
	for range 3 {
		if id, err = e.c.Refresh(context.Background(), offlineScope, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.Requests("GET /user"); n != 3 {
		t.Fatalf("%d /user requests for 3 refreshes", n)
	}
}

func TestRefreshRevokedToken(t *testing.T) {
	for _, tc := range []struct {
		name, clientID, secret string
		advance                time.Duration
	}{
		{"OAuth App token", "oauth-app", "oauth-secret", DefaultGroupsRefreshInterval},
		{"GitHub App token and its refresh token", "gh-app", "gh-secret", 9 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{ClientID: tc.clientID, ClientSecret: tc.secret, Orgs: []Org{{Name: "acme"}}}, envOpts{})
			id, err := e.login(t, offlineScope, "alice")
			if err != nil {
				t.Fatal(err)
			}
			e.fake.RevokeTokens("alice")
			e.clk.Advance(tc.advance)
			_, err = e.c.Refresh(context.Background(), offlineScope, id)
			ue := userError(t, err)
			if ue.Status != http.StatusUnauthorized || ue.Reason != "token_revoked" || !strings.Contains(ue.Message, "Log in again") {
				t.Fatalf("%+v", ue)
			}
		})
	}
}

func TestRefreshWithoutConnectorData(t *testing.T) {
	e := newEnv(t, Config{}, envOpts{})
	id, err := e.login(t, noScopes, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if id.ConnectorData != nil {
		t.Fatal("kept a token without offline access")
	}
	if _, err := e.c.Refresh(context.Background(), noScopes, id); err == nil {
		t.Fatal("refreshed without a token")
	}
}

func TestGitHubAppExpiringTokens(t *testing.T) {
	e := newEnv(t, Config{ClientID: "gh-app", ClientSecret: "gh-secret", Orgs: []Org{{Name: "acme"}}}, envOpts{})
	ctx := context.Background()
	id, err := e.login(t, offlineScope, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var before connectorData
	if err := json.Unmarshal(id.ConnectorData, &before); err != nil || before.RefreshToken == "" || !before.Expiry.Equal(e.clk.Now().Add(8*time.Hour)) {
		t.Fatalf("connector data %s (%v)", id.ConnectorData, err)
	}
	// The access token has expired at GitHub: Refresh renews it first.
	e.clk.Advance(8 * time.Hour)
	id, err = e.c.Refresh(ctx, offlineScope, id)
	if err != nil {
		t.Fatal(err)
	}
	var after connectorData
	_ = json.Unmarshal(id.ConnectorData, &after)
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken || !after.Expiry.After(before.Expiry) {
		t.Fatalf("tokens not renewed: %s", id.ConnectorData)
	}
	if n := e.fake.Requests("POST /login/oauth/access_token"); n != 2 {
		t.Fatalf("%d token requests, want exchange + refresh", n)
	}
	if !reflect.DeepEqual(id.Groups, []string{"acme:SRE Oncall"}) {
		t.Fatalf("groups %q", id.Groups)
	}
	// Months later the refresh token has expired too: log in again.
	e.clk.Advance(200 * 24 * time.Hour)
	_, err = e.c.Refresh(ctx, offlineScope, id)
	if ue := userError(t, err); ue.Reason != "token_revoked" {
		t.Fatalf("%+v", ue)
	}
}

func TestEnterprise(t *testing.T) {
	e := newEnv(t, Config{Orgs: []Org{{Name: "acme"}}}, envOpts{enterprise: true})
	id, err := e.login(t, groupsScope, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if id.PreferredUsername != "alice" || !reflect.DeepEqual(id.Groups, []string{"acme:SRE Oncall"}) {
		t.Fatalf("%+v", id)
	}
	if e.fake.Requests("GET /user") != 1 || !strings.HasSuffix(e.fake.APIURL, "/api/v3") {
		t.Fatalf("requests %v", e.fake.RequestCounts())
	}
	// Enterprise Server has no email verification: dave's unverified
	// primary address counts, as in Dex.
	id, err = e.login(t, groupsScope, "dave")
	if err != nil || id.Email != "dave@example.com" {
		t.Fatalf("%+v %v", id, err)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{ClientID: "id", ClientSecret: "secret", RedirectURI: redirectURI}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		key  string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no clientID", func(c *Config) { c.ClientID = "" }, "clientID"},
		{"no clientSecret", func(c *Config) { c.ClientSecret = "" }, "clientSecret"},
		{"no redirectURI", func(c *Config) { c.RedirectURI = "" }, "redirectURI"},
		{"relative redirectURI", func(c *Config) { c.RedirectURI = "/callback" }, "redirectURI"},
		{"org and orgs", func(c *Config) { c.Org = "a"; c.Orgs = []Org{{Name: "b"}} }, "org"},
		{"org without name", func(c *Config) { c.Orgs = []Org{{Name: "a"}, {}} }, "orgs[1].name"},
		{"hostName with scheme", func(c *Config) { c.HostName = "https://ghe.example" }, "hostName"},
		{"rootCA without hostName", func(c *Config) { c.RootCA = notPEM }, "rootCA"},
		{"rootCA not PEM", func(c *Config) { c.HostName = "ghe.example"; c.RootCA = notPEM }, "rootCA"},
		{"rootCA missing", func(c *Config) { c.HostName = "ghe.example"; c.RootCA = filepath.Join(dir, "nope") }, "rootCA"},
		{"teamNameField", func(c *Config) { c.TeamNameField = "id" }, "teamNameField"},
		{"preferredEmailDomain", func(c *Config) { c.PreferredEmailDomain = "example.*" }, "preferredEmailDomain"},
		{"groupsRefreshInterval", func(c *Config) { c.GroupsRefreshInterval = "soon" }, "groupsRefreshInterval"},
		{"negative groupsRefreshInterval", func(c *Config) { c.GroupsRefreshInterval = "-1m" }, "groupsRefreshInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := New(cfg, slog.New(slog.DiscardHandler))
			switch {
			case tc.key == "" && err != nil:
				t.Fatal(err)
			case tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key+":")):
				t.Fatalf("error %v does not name %s", err, tc.key)
			}
		})
	}
}

func TestConfigJSONKeys(t *testing.T) {
	raw := `{"clientID":"a","clientSecret":"b","redirectURI":"https://x/callback","org":"o","orgs":[{"name":"n","teams":["t"]}],
"hostName":"h","rootCA":"r","teamNameField":"slug","loadAllGroups":true,"useLoginAsID":true,"preferredEmailDomain":"d",
"includeParentTeams":true,"groupsRefreshInterval":"1m","showRequiredGroups":true}`
	c, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ClientID: "a", ClientSecret: "b", RedirectURI: "https://x/callback", Org: "o", Orgs: []Org{{Name: "n", Teams: []string{"t"}}},
		HostName: "h", RootCA: "r", TeamNameField: "slug", LoadAllGroups: true, UseLoginAsID: true, PreferredEmailDomain: "d",
		IncludeParentTeams: true, GroupsRefreshInterval: "1m", ShowRequiredGroups: true}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("%+v", c)
	}
	if _, err := Decode([]byte(`{"clientID":"a","teamNameFeild":"slug"}`)); err == nil || !strings.Contains(err.Error(), "teamNameFeild") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{ClientID: "id", ClientSecret: "secret", RedirectURI: redirectURI}
	for range 2 {
		if _, err := New(cfg, nil, WithRegisterer(reg)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeedScenario is the seed article's setup: the fixture the
// end-to-end suite uses, with groups by slug.
func TestSeedScenario(t *testing.T) {
	fx, err := fakegithub.LoadFixture(filepath.Join("..", "..", "..", "test", "fakegithub", "testdata", "exampleorg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Config{ClientID: "gatehouse-oauth-app", ClientSecret: "gatehouse-oauth-secret",
		Orgs: []Org{{Name: "exampleorg"}}, TeamNameField: "slug"}, envOpts{fx: &fx})
	id, err := e.login(t, groupsScope, "octocat")
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Identity{UserID: "583231", Username: "The Octocat", PreferredUsername: "octocat",
		Email: "octocat@example.com", EmailVerified: true, Groups: []string{"exampleorg:infra-team"}}
	if !reflect.DeepEqual(id, want) {
		t.Fatalf("got %+v", id)
	}
	_, err = e.login(t, groupsScope, "outsider")
	if ue := userError(t, err); ue.Reason != "not_in_org" {
		t.Fatalf("%+v", ue)
	}
}
