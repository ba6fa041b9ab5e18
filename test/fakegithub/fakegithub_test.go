package fakegithub

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const callback = "https://issuer.example/callback"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func fixture() Fixture {
	f := Fixture{
		Users: []User{
			{ID: 1, Login: "alice", Name: "Alice", Emails: []Email{{Email: "alice@example.com", Primary: true, Verified: true}}},
			{ID: 2, Login: "bob"},
		},
		Orgs: []Org{{ID: 10, Login: "acme", Members: []string{"alice"}, PublicMembers: []string{"alice"}}},
		Teams: []Team{
			{ID: 100, Org: "acme", Name: "Platform"},
			{ID: 101, Org: "acme", Name: "Infra Team", Parent: "platform", Members: []string{"alice"}},
		},
		Apps: []App{
			{ClientID: "oauth", ClientSecret: "s3cret", CallbackURL: callback},
			{ClientID: "app", ClientSecret: "s3cret", CallbackURL: callback, GitHubApp: true, AccessTokenTTL: Duration(time.Hour)},
		},
	}
	for i := range 120 {
		f.Teams = append(f.Teams, Team{ID: int64(1000 + i), Org: "acme", Name: fmt.Sprintf("t%03d", i), Members: []string{"alice"}})
	}
	return f
}

func start(t *testing.T, opts Options) (*Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	if opts.Fixture.Users == nil {
		opts.Fixture = fixture()
	}
	opts.TLS, opts.Now = true, clk.Now
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, clk
}

func noRedirect(s *Server) *http.Client {
	c := *s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// authorize runs the web flow for login and returns the code.
func authorize(t *testing.T, s *Server, clientID, login, extra string) string {
	t.Helper()
	s.SetLogin(login)
	u := s.URL + "/login/oauth/authorize?" + url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "state": {"st"}, "scope": {"user:email read:org"}}.Encode() + extra
	resp, err := noRedirect(s).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if got := loc.Query().Get("state"); got != "st" {
		t.Fatalf("state %q", got)
	}
	return loc.Query().Get("code")
}

func exchange(t *testing.T, s *Server, form url.Values, accept string) (map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
	} else {
		v, _ := url.ParseQuery(string(b))
		for k := range v {
			out[k] = v.Get(k)
		}
	}
	return out, resp.Header
}

func get(t *testing.T, s *Server, path, tok string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.APIURL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", tok)
	}
	resp, err := noRedirect(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func oauthToken(t *testing.T, s *Server) string {
	code := authorize(t, s, "oauth", "alice", "")
	out, _ := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {code}}, "application/json")
	tok, _ := out["access_token"].(string)
	if tok == "" {
		t.Fatalf("no token: %v", out)
	}
	return tok
}

func TestTokenEndpoint(t *testing.T) {
	s, _ := start(t, Options{})
	code := authorize(t, s, "oauth", "alice", "")

	// Wrong secret: GitHub's error shape, status 200.
	out, _ := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"nope"}, "code": {code}}, "application/json")
	if out["error"] != "incorrect_client_credentials" {
		t.Fatalf("wrong secret: %v", out)
	}
	// Form response by default.
	out, h := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {code}}, "")
	if !strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") || !strings.HasPrefix(out["access_token"].(string), "gho_") || out["scope"] != "user:email,read:org" {
		t.Fatalf("form response: %v %v", h, out)
	}
	// A code works once.
	out, _ = exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {code}}, "application/json")
	if out["error"] != "bad_verification_code" {
		t.Fatalf("reused code: %v", out)
	}
	// A code is bound to its client.
	code = authorize(t, s, "oauth", "alice", "")
	out, _ = exchange(t, s, url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}, "code": {code}}, "application/json")
	if out["error"] != "bad_verification_code" {
		t.Fatalf("code of another client: %v", out)
	}
}

func TestPKCE(t *testing.T) {
	s, _ := start(t, Options{})
	verifier := "a-verifier-that-is-long-enough-0123456789abcdef"
	sum := sha256.Sum256([]byte(verifier))
	extra := "&code_challenge=" + base64.RawURLEncoding.EncodeToString(sum[:]) + "&code_challenge_method=S256"
	for _, tc := range []struct {
		verifier string
		ok       bool
	}{{"wrong", false}, {"", false}, {verifier, true}} {
		code := authorize(t, s, "oauth", "alice", extra)
		out, _ := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {code}, "code_verifier": {tc.verifier}}, "application/json")
		if _, got := out["access_token"]; got != tc.ok {
			t.Errorf("verifier %q: %v", tc.verifier, out)
		}
	}
}

func TestRedirectURIMismatch(t *testing.T) {
	s, _ := start(t, Options{})
	u := s.URL + "/login/oauth/authorize?" + url.Values{"client_id": {"oauth"}, "redirect_uri": {"https://evil.example/callback"}, "state": {"st"}}.Encode()
	resp, err := noRedirect(s).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Host != "issuer.example" || loc.Query().Get("error") != "redirect_uri_mismatch" {
		t.Fatalf("redirect to %s", loc)
	}
}

func TestGitHubAppTokens(t *testing.T) {
	s, clk := start(t, Options{})
	code := authorize(t, s, "app", "alice", "")
	out, _ := exchange(t, s, url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}, "code": {code}}, "application/json")
	at, rt := out["access_token"].(string), out["refresh_token"].(string)
	if !strings.HasPrefix(at, "ghu_") || !strings.HasPrefix(rt, "ghr_") || out["expires_in"] != float64(3600) || out["refresh_token_expires_in"] != float64(15897600) {
		t.Fatalf("app token: %v", out)
	}
	if r, _ := get(t, s, "/user", "Bearer "+at); r.StatusCode != 200 {
		t.Fatalf("fresh token: %d", r.StatusCode)
	}
	clk.Advance(time.Hour)
	if r, _ := get(t, s, "/user", "Bearer "+at); r.StatusCode != 401 {
		t.Fatalf("expired token: %d", r.StatusCode)
	}
	out, _ = exchange(t, s, url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}, "grant_type": {"refresh_token"}, "refresh_token": {rt}}, "application/json")
	at2, _ := out["access_token"].(string)
	if r, _ := get(t, s, "/user", "token "+at2); r.StatusCode != 200 {
		t.Fatalf("refreshed token: %d %v", r.StatusCode, out)
	}
	// The refresh token was single-use.
	out, _ = exchange(t, s, url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}, "grant_type": {"refresh_token"}, "refresh_token": {rt}}, "application/json")
	if out["error"] != "bad_refresh_token" {
		t.Fatalf("reused refresh token: %v", out)
	}
}

func TestAuthErrors(t *testing.T) {
	s, _ := start(t, Options{})
	tok := oauthToken(t, s)
	for _, tc := range []struct{ auth, msg string }{
		{"", "Requires authentication"},
		{"Bearer nope", "Bad credentials"},
		{"Basic " + tok, "Requires authentication"},
	} {
		r, b := get(t, s, "/user", tc.auth)
		var body map[string]string
		_ = json.Unmarshal(b, &body)
		if r.StatusCode != 401 || body["message"] != tc.msg || body["documentation_url"] == "" {
			t.Errorf("%q: %d %s", tc.auth, r.StatusCode, b)
		}
	}
	s.RevokeTokens("alice")
	if r, _ := get(t, s, "/user", "Bearer "+tok); r.StatusCode != 401 {
		t.Errorf("revoked token: %d", r.StatusCode)
	}
}

func TestPagination(t *testing.T) {
	s, _ := start(t, Options{})
	tok := "Bearer " + oauthToken(t, s)
	for _, tc := range []struct {
		query      string
		n          int
		next, last int // 0: absent
	}{
		{"", 30, 2, 5},               // 121 teams, default 30
		{"?per_page=100", 100, 2, 2}, // max
		{"?per_page=500", 100, 2, 2}, // capped at 100
		{"?per_page=100&page=2", 21, 0, 0},
		{"?per_page=50&page=9", 0, 0, 0},
	} {
		r, b := get(t, s, "/user/teams"+tc.query, tok)
		var teams []map[string]any
		if err := json.Unmarshal(b, &teams); err != nil || len(teams) != tc.n {
			t.Errorf("%s: %d teams, err %v", tc.query, len(teams), err)
		}
		link := r.Header.Get("Link")
		for rel, want := range map[string]int{"next": tc.next, "last": tc.last} {
			if got := linkPage(link, rel); got != want {
				t.Errorf("%s: rel=%s page %d, want %d (Link %q)", tc.query, rel, got, want, link)
			}
		}
	}
	if n := s.Requests("GET /user/teams"); n != 5 {
		t.Errorf("counted %d requests", n)
	}
}

func linkPage(link, rel string) int {
	for _, part := range strings.Split(link, ",") {
		if strings.Contains(part, `rel="`+rel+`"`) {
			u := part[strings.Index(part, "<")+1 : strings.Index(part, ">")]
			pu, _ := url.Parse(u)
			n, _ := strconv.Atoi(pu.Query().Get("page"))
			return n
		}
	}
	return 0
}

func TestRateLimits(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			s, _ := start(t, Options{RateLimit: 3, RateLimitStatus: status})
			tok := "Bearer " + oauthToken(t, s)
			for i := 1; i <= 3; i++ {
				r, _ := get(t, s, "/user", tok)
				if r.StatusCode != 200 || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(3-i) || r.Header.Get("X-RateLimit-Used") != strconv.Itoa(i) ||
					r.Header.Get("X-RateLimit-Limit") != "3" || r.Header.Get("X-RateLimit-Resource") != "core" || r.Header.Get("X-RateLimit-Reset") == "" {
					t.Fatalf("request %d: %d %v", i, r.StatusCode, r.Header)
				}
			}
			r, b := get(t, s, "/user", tok)
			if r.StatusCode != status || r.Header.Get("X-RateLimit-Remaining") != "0" || !strings.Contains(string(b), "API rate limit exceeded for user ID 1") {
				t.Fatalf("exhausted: %d %s", r.StatusCode, b)
			}
			s.SetSecondaryRateLimit(status, 90*time.Second)
			r, b = get(t, s, "/user", tok)
			if r.StatusCode != status || r.Header.Get("Retry-After") != "90" || !strings.Contains(string(b), "secondary rate limit") {
				t.Fatalf("secondary: %d %v %s", r.StatusCode, r.Header, b)
			}
		})
	}
}

func TestMembershipAndEnterprise(t *testing.T) {
	s, _ := start(t, Options{Enterprise: true})
	if !strings.HasSuffix(s.APIURL, "/api/v3") {
		t.Fatalf("APIURL %s", s.APIURL)
	}
	alice := "Bearer " + oauthToken(t, s)
	code := authorize(t, s, "oauth", "bob", "")
	out, _ := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {code}}, "application/json")
	bob := "Bearer " + out["access_token"].(string)

	for _, tc := range []struct {
		path, tok string
		status    int
	}{
		{"/orgs/acme/members/alice", alice, 204},
		{"/orgs/acme/members/bob", alice, 404},
		{"/orgs/acme/members/alice", bob, 302}, // bob is no member: redirect to the public check
		{"/orgs/acme/public_members/alice", bob, 204},
		{"/orgs/nope/members/alice", alice, 404},
		{"/user/memberships/orgs/acme", alice, 200},
		{"/user/memberships/orgs/acme", bob, 404},
		{"/orgs/acme/teams/infra-team", alice, 200},
		{"/orgs/acme/teams/infra-team", bob, 404},
	} {
		if r, _ := get(t, s, tc.path, tc.tok); r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, r.StatusCode, tc.status)
		}
	}
	_, b := get(t, s, "/orgs/acme/teams/infra-team", alice)
	var team struct {
		Parent struct{ Slug string } `json:"parent"`
	}
	_ = json.Unmarshal(b, &team)
	if team.Parent.Slug != "platform" {
		t.Errorf("parent: %s", b)
	}
	// Enterprise: nothing at the root.
	req, _ := http.NewRequest("GET", s.URL+"/user", nil)
	req.Header.Set("Authorization", alice)
	if r, err := s.Client().Do(req); err != nil || r.StatusCode != 404 {
		t.Errorf("root API on Enterprise: %v %v", r, err)
	}
}

func TestScopes(t *testing.T) {
	s, _ := start(t, Options{})
	s.SetLogin("alice")
	u := s.URL + "/login/oauth/authorize?" + url.Values{"client_id": {"oauth"}, "redirect_uri": {callback}, "scope": {"user:email"}}.Encode()
	resp, err := noRedirect(s).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	out, _ := exchange(t, s, url.Values{"client_id": {"oauth"}, "client_secret": {"s3cret"}, "code": {loc.Query().Get("code")}}, "application/json")
	tok := "Bearer " + out["access_token"].(string)
	if r, _ := get(t, s, "/user/emails", tok); r.StatusCode != 200 {
		t.Errorf("emails with user:email: %d", r.StatusCode)
	}
	if r, _ := get(t, s, "/user/teams", tok); r.StatusCode != 404 || r.Header.Get("X-Accepted-OAuth-Scopes") == "" {
		t.Errorf("teams without read:org: %d", r.StatusCode)
	}
}

func TestLoadFixture(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.yaml")
	yaml := `users:
- {id: 1, login: alice, emails: [{email: a@example.com, primary: true, verified: true}]}
orgs:
- {id: 2, login: acme, members: [alice]}
teams:
- {id: 3, org: acme, name: Infra Team, members: [alice]}
apps:
- {clientID: c, clientSecret: s, githubApp: true, accessTokenTTL: 8h}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFixture(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.validate(); err != nil || f.Teams[0].Slug != "infra-team" || time.Duration(f.Apps[0].AccessTokenTTL) != 8*time.Hour {
		t.Fatalf("%+v %v", f, err)
	}
	// Inconsistent fixtures are refused.
	bad := f.clone()
	bad.Teams[0].Members = []string{"mallory"}
	if _, err := Start(Options{Fixture: bad}); err == nil {
		t.Fatal("team member outside the org accepted")
	}
}

func TestExampleFixture(t *testing.T) {
	f, err := LoadFixture(filepath.Join("testdata", "exampleorg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Options{Fixture: f})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestChooserPage(t *testing.T) {
	s, _ := start(t, Options{})
	jar := &cookieJar{}
	c := noRedirect(s)
	c.Jar = jar
	u := s.URL + "/login/oauth/authorize?" + url.Values{"client_id": {"oauth"}, "redirect_uri": {callback}, "state": {"x"}}.Encode()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `id="login-bob"`) {
		t.Fatalf("chooser: %d %s", resp.StatusCode, b)
	}
	resp, err = c.Get(s.URL + "/fakegithub/login?" + url.Values{"as": {"bob"}, "return": {strings.TrimPrefix(u, s.URL)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(s.URL + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("after choosing: %d %v", resp.StatusCode, resp.Header)
	}
}

type cookieJar struct {
	mu sync.Mutex
	c  []*http.Cookie
}

func (j *cookieJar) SetCookies(_ *url.URL, c []*http.Cookie) {
	j.mu.Lock()
	j.c = append(j.c, c...)
	j.mu.Unlock()
}
func (j *cookieJar) Cookies(*url.URL) []*http.Cookie { j.mu.Lock(); defer j.mu.Unlock(); return j.c }
