// Package fakegithub is an in-process fake of GitHub's OAuth web flow and
// the parts of its REST API that an identity provider uses, driven by a
// Fixture. It follows GitHub's documentation: pagination with per_page and
// Link headers, token checks with GitHub's JSON errors, X-RateLimit-*
// headers on every API response, primary and secondary rate limits, OAuth
// Apps and GitHub Apps with expiring user tokens, and GitHub Enterprise
// Server paths (REST under /api/v3, OAuth at the host root).
//
// GitHub has no login page here: the authorize endpoint approves the user
// chosen by the test (Server.SetLogin, Options.Login, or the cookie named
// LoginCookie), or shows a tiny page listing the fixture's users.
//
// Deviations from GitHub are deliberate simplifications: every API
// endpoint needs a token, one host serves both OAuth and REST, and a
// missing OAuth scope answers 403 with a message naming the scope.
package fakegithub

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// LoginCookie names the cookie that, when set on a browser visiting the
// authorize endpoint, chooses which fixture user is logged in to GitHub.
const LoginCookie = "fakegithub_login"

// Deny, as the logged-in user (SetLogin, Options.Login or LoginCookie),
// makes the authorize endpoint answer as when the user clicks Cancel on
// GitHub: a redirect with error=access_denied.
const Deny = "-deny"

// Options configures a fake server.
type Options struct {
	Fixture Fixture
	// TLS serves HTTPS with a self-signed certificate (see CAPEM, Client).
	TLS bool
	// Enterprise serves the REST API under /api/v3 as GitHub Enterprise
	// Server does (and not at the root); OAuth stays at the host root.
	Enterprise bool
	// Login is the user the authorize endpoint approves when the request
	// names none. Empty shows a page listing the fixture's users.
	Login string
	// RateLimit is the primary rate limit per user and hour (default 5000).
	RateLimit int
	// RateLimitStatus is the status of an exhausted primary rate limit:
	// 403 (default) or 429, both documented by GitHub.
	RateLimitStatus int
	// Now is the clock for token expiry and rate-limit windows
	// (default time.Now). Tests share one with the code they test.
	Now func() time.Time
}

// Server is a running fake GitHub.
type Server struct {
	// URL is the host root: OAuth lives at URL+"/login/oauth/...".
	URL string
	// APIURL is the REST base: URL, or URL+"/api/v3" with Enterprise.
	APIURL string

	srv  *httptest.Server
	opts Options

	mu        sync.Mutex
	fx        Fixture
	login     string
	codes     map[string]*authCode
	tokens    map[string]*token
	refreshes map[string]*token
	rates     map[int64]*rateState
	secondary *secondaryLimit
	counts    map[string]int
}

// New starts an HTTPS fake with the given fixture and stops it when t
// ends. It fails t if the fixture is inconsistent.
func New(t testing.TB, fx Fixture) *Server {
	t.Helper()
	s, err := Start(Options{Fixture: fx, TLS: true})
	if err != nil {
		t.Fatalf("fakegithub: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake; the caller must Close it.
func Start(opts Options) (*Server, error) {
	fx := opts.Fixture.clone()
	if err := fx.validate(); err != nil {
		return nil, err
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 5000
	}
	if opts.RateLimitStatus == 0 {
		opts.RateLimitStatus = http.StatusForbidden
	}
	if opts.RateLimitStatus != http.StatusForbidden && opts.RateLimitStatus != http.StatusTooManyRequests {
		return nil, fmt.Errorf("fakegithub: RateLimitStatus must be 403 or 429, not %d", opts.RateLimitStatus)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		fx:        fx,
		login:     opts.Login,
		codes:     map[string]*authCode{},
		tokens:    map[string]*token{},
		refreshes: map[string]*token{},
		rates:     map[int64]*rateState{},
		counts:    map[string]int{},
	}
	mux := http.NewServeMux()
	s.routes(mux)
	if opts.TLS {
		s.srv = httptest.NewTLSServer(mux)
	} else {
		s.srv = httptest.NewServer(mux)
	}
	s.URL = s.srv.URL
	s.APIURL = s.URL
	if opts.Enterprise {
		s.APIURL = s.URL + "/api/v3"
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Host is the host:port of the server, what GitHub Enterprise
// configuration calls the host name.
func (s *Server) Host() string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "http://")
}

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// CertPool returns a pool holding the server's certificate (nil without TLS).
func (s *Server) CertPool() *x509.CertPool {
	if s.srv.Certificate() == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CAPEM returns the server's self-signed certificate in PEM, the CA a
// client must trust (nil without TLS).
func (s *Server) CAPEM() []byte {
	c := s.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// WriteCAFile writes CAPEM to a file in dir and returns its path, for
// configurations that take a file (rootCA).
func (s *Server) WriteCAFile(dir string) (string, error) {
	p := filepath.Join(dir, "fakegithub-ca.pem")
	if err := os.WriteFile(p, s.CAPEM(), 0o600); err != nil {
		return "", fmt.Errorf("fakegithub: write CA: %w", err)
	}
	return p, nil
}

// SetLogin chooses the user the authorize endpoint approves from now on
// ("" shows the chooser page).
func (s *Server) SetLogin(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.login = login
}

// Requests returns how many requests reached an endpoint, named by its
// pattern without the Enterprise prefix, such as "GET /user/teams" or
// "POST /login/oauth/access_token".
func (s *Server) Requests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// APIRequests returns the number of REST requests (not OAuth ones).
func (s *Server) APIRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.counts {
		if !strings.Contains(k, "/login/oauth/") {
			n += v
		}
	}
	return n
}

// RequestCounts returns a copy of all counters, for failure messages.
func (s *Server) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// ResetCounts zeroes the request counters.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
}

// AddTeamMember adds login to a team (and, as GitHub does, to its org).
func (s *Server) AddTeamMember(org, slug, login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.team(org, slug)
	if t == nil {
		return fmt.Errorf("fakegithub: no team %s/%s", org, slug)
	}
	if o := s.org(org); !isMember(o, login) {
		o.Members = append(o.Members, login)
	}
	if !contains(t.Members, login) {
		t.Members = append(t.Members, login)
	}
	return nil
}

// RemoveTeamMember removes login from a team.
func (s *Server) RemoveTeamMember(org, slug, login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.team(org, slug)
	if t == nil {
		return fmt.Errorf("fakegithub: no team %s/%s", org, slug)
	}
	t.Members = remove(t.Members, login)
	return nil
}

// RemoveOrgMember removes login from an org and all its teams.
func (s *Server) RemoveOrgMember(org, login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.org(org)
	if o == nil {
		return fmt.Errorf("fakegithub: no org %s", org)
	}
	o.Members = remove(o.Members, login)
	o.Admins = remove(o.Admins, login)
	o.PublicMembers = remove(o.PublicMembers, login)
	for i := range s.fx.Teams {
		if strings.EqualFold(s.fx.Teams[i].Org, org) {
			s.fx.Teams[i].Members = remove(s.fx.Teams[i].Members, login)
		}
	}
	return nil
}

// RevokeTokens revokes every access and refresh token of login, as when
// the user revokes the app's authorization in their GitHub settings.
func (s *Server) RevokeTokens(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if strings.EqualFold(t.login, login) {
			t.revoked = true
		}
	}
	for _, t := range s.refreshes {
		if strings.EqualFold(t.login, login) {
			t.revoked = true
		}
	}
}

// SetRateLimitRemaining sets how many core API requests login has left
// in the current window.
func (s *Server) SetRateLimitRemaining(login string, remaining int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(login)
	if u == nil {
		return fmt.Errorf("fakegithub: no user %s", login)
	}
	r := s.rate(u.ID)
	r.used = max(s.opts.RateLimit-remaining, 0)
	return nil
}

// SetSecondaryRateLimit makes every API request answer status (403 or
// 429) with Retry-After: retryAfter, GitHub's secondary rate limit, until
// called again with retryAfter 0.
func (s *Server) SetSecondaryRateLimit(status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if retryAfter <= 0 {
		s.secondary = nil
		return
	}
	s.secondary = &secondaryLimit{status: status, retryAfter: retryAfter}
}

// Tokens returns the number of live (issued, not revoked) access tokens
// of login, for tests that check what was issued.
func (s *Server) Tokens(login string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	now := s.opts.Now()
	for _, t := range s.tokens {
		if strings.EqualFold(t.login, login) && t.usable(now) {
			n++
		}
	}
	return n
}

func remove(list []string, login string) []string {
	out := list[:0]
	for _, m := range list {
		if !strings.EqualFold(m, login) {
			out = append(out, m)
		}
	}
	return out
}

// The lookups below need s.mu held.

func (s *Server) user(login string) *User {
	for i := range s.fx.Users {
		if strings.EqualFold(s.fx.Users[i].Login, login) {
			return &s.fx.Users[i]
		}
	}
	return nil
}

func (s *Server) org(login string) *Org {
	for i := range s.fx.Orgs {
		if strings.EqualFold(s.fx.Orgs[i].Login, login) {
			return &s.fx.Orgs[i]
		}
	}
	return nil
}

func (s *Server) team(org, slug string) *Team {
	for i := range s.fx.Teams {
		if strings.EqualFold(s.fx.Teams[i].Org, org) && strings.EqualFold(s.fx.Teams[i].Slug, slug) {
			return &s.fx.Teams[i]
		}
	}
	return nil
}

func (s *Server) app(clientID string) *App {
	for i := range s.fx.Apps {
		if s.fx.Apps[i].ClientID == clientID {
			return &s.fx.Apps[i]
		}
	}
	return nil
}

// userNames lists the fixture's logins, sorted, for the chooser page.
func (s *Server) userNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []string
	for _, u := range s.fx.Users {
		l = append(l, u.Login)
	}
	sort.Strings(l)
	return l
}

// count wraps h to count requests under name.
func (s *Server) count(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[name]++
		s.mu.Unlock()
		h(w, r)
	}
}

func (s *Server) routes(mux *http.ServeMux) {
	for _, ep := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /login/oauth/authorize", s.authorize},
		{"POST /login/oauth/access_token", s.accessToken},
	} {
		mux.HandleFunc(ep.pattern, s.count(ep.pattern, ep.h))
	}
	mux.HandleFunc("GET /fakegithub/login", s.chooseLogin)

	prefix := ""
	if s.opts.Enterprise {
		prefix = "/api/v3"
	}
	for _, ep := range []struct {
		pattern string
		scopes  []string // any of these; nil means none needed
		h       func(http.ResponseWriter, *http.Request, *User)
	}{
		{"GET /user", nil, s.getUser},
		{"GET /user/emails", []string{"user:email", "user"}, s.listEmails},
		{"GET /user/orgs", []string{"read:org", "user", "admin:org", "write:org"}, s.listUserOrgs},
		{"GET /user/teams", []string{"read:org", "user", "repo", "admin:org", "write:org"}, s.listUserTeams},
		{"GET /user/memberships/orgs/{org}", []string{"read:org", "admin:org", "write:org"}, s.getMembership},
		{"GET /orgs/{org}/members/{username}", nil, s.checkMember},
		{"GET /orgs/{org}/public_members/{username}", nil, s.checkPublicMember},
		{"GET /orgs/{org}/teams", []string{"read:org", "admin:org", "write:org"}, s.listOrgTeams},
		{"GET /orgs/{org}/teams/{slug}", []string{"read:org", "admin:org", "write:org"}, s.getTeam},
	} {
		method, path, _ := strings.Cut(ep.pattern, " ")
		mux.HandleFunc(method+" "+prefix+path, s.count(ep.pattern, s.api(ep.scopes, ep.h)))
	}
	mux.HandleFunc("GET "+prefix+"/rate_limit", s.count("GET /rate_limit", s.rateLimitStatus))
}
