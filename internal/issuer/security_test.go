package issuer_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// noFollow is a browser that stops at every redirect.
func noFollow(s *issuertest.Server) *http.Client {
	b := s.Browser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return b
}

func TestNoOpenRedirect(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	// The client "kubernetes" registers http://localhost:8000 and
	// http://localhost:18000: each variant below is refused (RFC 9700
	// 4.1.3), with the page and no redirect.
	for _, redirect := range []string{
		"https://evil.example/cb", "//evil.example/cb", `/\evil.example`, "http://localhost:8000.evil.example",
		"http://localhost:8000@evil.example", "HTTP://LOCALHOST:8000", "http://localhost:8000/", "http://localhost:8000/x",
		"http://localhost:8000#frag", "javascript:alert(1)", "http://evil.example:8000", "https://localhost:8000",
		"HTTP://localhost:8000", "Http://localhost:18000", "http://LOCALHOST:8000", "http://localhost.:8000",
		"http://localhost:8000/.", "http://localhost:8000/a/..", "http://%6cocalhost:8000", "http://localhost:8000/%2e",
		"http://user@localhost:8000", "http://localhost:8000#", "http://localhost:8000?x=1", "http://localhost:08000",
		"http://127.0.0.1:8000", "http://[::1]:8000", "http://[0:0:0:0:0:0:0:1]:8000", "http://[::ffff:127.0.0.1]:8000",
	} {
		t.Run(redirect, func(t *testing.T) {
			params := codeParams(s, p, "openid")
			params["redirect_uri"] = redirect
			resp, err := noFollow(s).Get(authURL(s, params))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Fatalf("redirected to %q for an unregistered redirect_uri", loc)
			}
			if resp.StatusCode != 400 || !strings.Contains(string(body), "Unregistered redirect URI") {
				t.Fatalf("status %d, body %.200s", resp.StatusCode, body)
			}
		})
	}
}

func TestLoopbackPortRule(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	for _, tc := range []struct {
		redirect string
		ok       bool
	}{
		{"http://localhost:8000", true},
		{"http://localhost:18000", true},
		{"http://localhost:39123", true}, // RFC 8252 7.3: any port for a registered loopback redirect
		{"http://localhost:39123/other", false},
		{"http://127.0.0.1:8000", false}, // a different host than registered
	} {
		params := codeParams(s, p, "openid")
		params["redirect_uri"] = tc.redirect
		resp, err := noFollow(s).Get(authURL(s, params))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusFound; got != tc.ok {
			t.Errorf("%s: accepted=%v, want %v (status %d)", tc.redirect, got, tc.ok, resp.StatusCode)
		}
	}
}

// TestTokenRedirectURIMustBeIdentical: the token endpoint compares
// redirect_uri with the authorization request's byte for byte (RFC 6749
// 4.1.3). A code issued to a loopback redirect on a run-time port is
// redeemed only with that exact URI, not the registered one nor any
// variant.
func TestTokenRedirectURIMustBeIdentical(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	params := codeParams(s, p, "openid")
	params["redirect_uri"] = "http://localhost:39123"
	code := loginForCode(t, s, params).Get("code")
	for _, redirect := range []string{
		"http://localhost:8000", "http://localhost:39124", "http://localhost:39123/", "HTTP://localhost:39123",
		"http://LOCALHOST:39123", "http://127.0.0.1:39123", "http://localhost:39123?", "http://localhost:39123#", "",
	} {
		tr := postToken(t, s, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {p.verifier},
		}, s.ClientID, s.ClientSecret)
		if tr.status != 400 || tr.Error != "invalid_grant" {
			t.Errorf("redirect_uri %q: %d %s, want invalid_grant", redirect, tr.status, tr.Error)
		}
	}
	tr := postToken(t, s, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:39123"}, "code_verifier": {p.verifier},
	}, s.ClientID, s.ClientSecret)
	if tr.status != 200 || tr.IDToken == "" {
		t.Fatalf("the identical redirect_uri: %d %s", tr.status, tr.Error)
	}
}

// TestDeviceCallbackIsNotAClientRedirect: the device flow's callback is
// the issuer's own; an authorization request naming it, even from a
// client that registered it, is refused, so it cannot complete someone
// else's device login.
func TestDeviceCallbackIsNotAClientRedirect(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{ClientsFor: func(issuerURL string) []issuer.Client {
		return []issuer.Client{{ID: "sneaky", Secret: "sneaky-secret", RedirectURIs: []string{issuerURL + "/device/callback"}}}
	}})
	resp, err := noFollow(s).Get(authURL(s, map[string]string{
		"client_id": "sneaky", "redirect_uri": s.URL + "/device/callback", "response_type": "code", "scope": "openid", "state": "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("device callback accepted as a client redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestUnknownClientGetsPageNotRedirect(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	resp, err := noFollow(s).Get(s.URL + "/auth?client_id=nobody&redirect_uri=https://evil.example&response_type=code&scope=openid")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("unknown client: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestErrorPagesEscapeInput(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	params := codeParams(s, p, "openid")
	params["connector_id"] = `<script>alert("x")</script>`
	resp, err := noFollow(s).Get(authURL(s, params))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if strings.Contains(string(body), "<script>") {
		t.Fatalf("error page echoes unescaped input:\n%s", body)
	}
	if !strings.Contains(string(body), "&lt;script&gt;") {
		t.Fatalf("expected the escaped value on the page:\n%s", body)
	}
}

func TestPageSecurityHeadersAndCookies(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	resp, err := noFollow(s).Get(authURL(s, codeParams(s, p, "openid")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", h.Get("X-Content-Type-Options"))
	}
	if !strings.HasPrefix(h.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("HSTS = %q", h.Get("Strict-Transport-Security"))
	}
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("no browser-binding cookie set at /auth")
	}
	for _, c := range cookies {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("cookie %s: Secure=%v HttpOnly=%v SameSite=%v", c.Name, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
}

var reqField = regexp.MustCompile(`name="req" value="([^"]+)"`)
var hmacField = regexp.MustCompile(`name="hmac" value="([^"]+)"`)

// TestFormsAreBoundToRequestAndBrowser attacks the password form: a post
// from another browser (no binding cookie: login CSRF) and a post with
// a forged or foreign HMAC (dexidp/dex CVE-2022-39222) are refused.
func TestFormsAreBoundToRequestAndBrowser(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{ShowApproval: true})
	p := newPKCE()
	victim := s.Browser()
	resp, err := victim.Get(authURL(s, codeParams(s, p, "openid")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	reqID := reqField.FindStringSubmatch(string(body))
	mac := hmacField.FindStringSubmatch(string(body))
	if reqID == nil || mac == nil {
		t.Fatalf("no password form: %s", body)
	}
	post := func(b *http.Client, form url.Values) int {
		resp, err := b.PostForm(s.URL+"/auth/local/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := url.Values{"req": {reqID[1]}, "hmac": {mac[1]}, "login": {s.Username}, "password": {s.Password}}
	// Another browser (the attacker's page auto-submitting a form).
	if code := post(s.Browser(), good); code != 403 {
		t.Fatalf("form accepted without the browser binding: %d", code)
	}
	forged := url.Values{"req": {reqID[1]}, "hmac": {"AAAA"}, "login": {s.Username}, "password": {s.Password}}
	if code := post(victim, forged); code != 403 {
		t.Fatalf("form accepted with a forged HMAC: %d", code)
	}
	// The approval form's HMAC is not the password form's.
	resp, err = victim.PostForm(s.URL+"/approval", url.Values{"req": {reqID[1]}, "hmac": {mac[1]}, "approval": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("approval accepted before login / with the password form's HMAC: %d", resp.StatusCode)
	}
	// The genuine form in the genuine browser works.
	resp, err = victim.PostForm(s.URL+"/auth/local/login", good)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `name="approval"`) {
		t.Fatalf("genuine login: %d %.300s", resp.StatusCode, body)
	}
}

// stubPassword is a second password connector for restriction tests.
type stubPassword struct{}

func (stubPassword) Prompt() string { return "Username" }
func (stubPassword) Login(_ context.Context, _ connector.Scopes, u, p string) (connector.Identity, bool, error) {
	return connector.Identity{UserID: "ext-" + u, Username: u, Email: u + "@ext.example", EmailVerified: true}, p == "ext-pass", nil
}

// TestClientConnectorAndGrantRestrictions checks that a client limited to
// some connectors and grants cannot use others, on any path
// (GHSA-7qjx-gp9h-65qj).
func TestClientConnectorAndGrantRestrictions(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	lc, err := local.New([]local.User{{Email: "a@example.com", Hash: hash, Username: "a", UserID: "a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := issuertest.Start(t, issuertest.Options{
		Connectors: []issuer.Connector{{ID: local.ID, Type: "local", Name: "Email", Impl: lc}, {ID: "ext", Type: "stub", Name: "External", Impl: stubPassword{}}},
		ExtraClients: []issuer.Client{{
			ID: "restricted", Secret: "restricted-secret", RedirectURIs: []string{"http://localhost:8000"},
			AllowedConnectors: []string{"ext"}, AllowedGrantTypes: []string{"authorization_code"},
		}},
	})
	p := newPKCE()
	params := codeParams(s, p, "openid")
	params["client_id"] = "restricted"
	params["connector_id"] = local.ID
	resp, err := noFollow(s).Get(authURL(s, params))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("restricted client reached a forbidden connector via connector_id: %d", resp.StatusCode)
	}
	// Directly at the connector URL with a request of the restricted client.
	delete(params, "connector_id")
	b := noFollow(s)
	resp, err = b.Get(authURL(s, params))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location") // the only allowed connector: straight there
	if !strings.Contains(loc, "/auth/ext?") {
		t.Fatalf("restricted client not sent to its only connector: %d %q", resp.StatusCode, loc)
	}
	forbidden := strings.Replace(loc, "/auth/ext?", "/auth/local?", 1)
	resp, err = b.Get(s.URL[:strings.Index(s.URL, "/dex")] + forbidden)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("restricted client used a forbidden connector by URL: %d", resp.StatusCode)
	}
	// Dex's direct link to the forbidden connector, with the client's
	// authorization request instead of gatehouse's req.
	resp, err = b.Get(s.URL + "/auth/local?" + url.Values{
		"client_id": {"restricted"}, "redirect_uri": {"http://localhost:8000"}, "response_type": {"code"}, "scope": {"openid"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("restricted client used a forbidden connector by a direct link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Grants the client is not allowed.
	tr := postToken(t, s, url.Values{"grant_type": {"password"}, "username": {"a@example.com"}, "password": {"pw"}, "scope": {"openid"}}, "restricted", "restricted-secret")
	if tr.status != 400 || tr.Error != "unauthorized_client" {
		t.Fatalf("restricted client used the password grant: %d %s", tr.status, tr.Error)
	}
	dc, err := s.HTTPClient.PostForm(s.URL+"/device/code", url.Values{"client_id": {"restricted"}, "client_secret": {"restricted-secret"}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	dc.Body.Close()
	if dc.StatusCode != 400 {
		t.Fatalf("restricted client used the device grant: %d", dc.StatusCode)
	}
}

// TestDexDirectConnectorLink: an authorization request sent straight to
// a connector's path (/auth/local?client_id=..., as Dex allows) logs in
// at that connector, after every check /auth makes.
func TestDexDirectConnectorLink(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	direct := func(params map[string]string, connector string) string {
		v := url.Values{}
		for k, val := range params {
			v.Set(k, val)
		}
		return s.URL + "/auth/" + connector + "?" + v.Encode()
	}

	t.Run("logs in at the connector", func(t *testing.T) {
		resp, page, err := s.LoginPage(s.Browser(), direct(codeParams(s, p, "openid email"), "local"))
		if err != nil {
			t.Fatalf("login: %v\n%.300s", err, page)
		}
		loc, err := resp.Location()
		if err != nil || loc.Host != "localhost:8000" || loc.Query().Get("state") != "state-123" || loc.Query().Get("iss") != s.URL {
			t.Fatalf("no code at the client: %d %v", resp.StatusCode, loc)
		}
		tr := exchange(t, s, loc.Query().Get("code"), p.verifier)
		if tr.status != 200 || claimsOf(t, s, tr.IDToken)["email"] != s.Username {
			t.Fatalf("exchange: %d %s", tr.status, tr.Error)
		}
	})

	// Each refusal is the one /auth gives: a page until the client and
	// redirect URI are known, an error at the client after.
	for _, tc := range []struct {
		name      string
		change    map[string]string
		connector string
		status    int    // a page
		error     string // or an error at the client
	}{
		{name: "unknown client", change: map[string]string{"client_id": "nobody"}, connector: "local", status: 400},
		{name: "unregistered redirect URI", change: map[string]string{"redirect_uri": "https://evil.example/cb"}, connector: "local", status: 400},
		{name: "redirect URI variant", change: map[string]string{"redirect_uri": "HTTP://localhost:8000"}, connector: "local", status: 400},
		{name: "unknown connector", connector: "nope", status: 400},
		{name: "connector_id disagrees", change: map[string]string{"connector_id": "other"}, connector: "local", error: "invalid_request"},
		{name: "no openid scope", change: map[string]string{"scope": "email"}, connector: "local", error: "invalid_scope"},
		{name: "public client without PKCE", change: map[string]string{"client_id": s.PublicClientID, "code_challenge": "", "code_challenge_method": ""}, connector: "local", error: "invalid_request"},
		{name: "implicit flow", change: map[string]string{"response_type": "token"}, connector: "local", error: "unsupported_response_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := codeParams(s, p, "openid")
			for k, v := range tc.change {
				if v == "" {
					delete(params, k)
				} else {
					params[k] = v
				}
			}
			resp, err := noFollow(s).Get(direct(params, tc.connector))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			if tc.status != 0 {
				if resp.StatusCode != tc.status || loc != nil {
					t.Fatalf("status %d, Location %v; want a %d page", resp.StatusCode, loc, tc.status)
				}
				return
			}
			if loc == nil || loc.Host != "localhost:8000" || loc.Query().Get("error") != tc.error || loc.Query().Get("state") != "state-123" {
				t.Fatalf("status %d, Location %v; want error=%s at the client", resp.StatusCode, loc, tc.error)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	resp, err := s.HTTPClient.Get(s.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`"issuer":"` + s.URL + `"`, `"token_endpoint":"` + s.URL + `/token"`, `"jwks_uri":"` + s.URL + `/keys"`,
		`"device_authorization_endpoint":"` + s.URL + `/device/code"`, `"revocation_endpoint":"` + s.URL + `/token/revoke"`,
		`"code_challenge_methods_supported":["S256"]`, `"authorization_response_iss_parameter_supported":true`,
		`"id_token_signing_alg_values_supported":["RS256"]`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("discovery lacks %s", want)
		}
	}
}

// TestLastConnectorChoiceIsRemembered checks the choice page marks and
// lists first the connector this browser used last.
func TestLastConnectorChoiceIsRemembered(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	lc, err := local.New([]local.User{{Email: "a@example.com", Hash: hash, Username: "a", UserID: "a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := issuertest.Start(t, issuertest.Options{Connectors: []issuer.Connector{
		{ID: local.ID, Type: "local", Name: "Email", Impl: lc}, {ID: "ext", Type: "stub", Name: "External", Impl: stubPassword{}},
	}})
	b := noFollow(s)
	p := newPKCE()
	page := func() string {
		resp, err := b.Get(authURL(s, codeParams(s, p, "openid")))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body)
	}
	first := page()
	if strings.Contains(first, "last-used") {
		t.Fatal("a connector is marked last used before any choice")
	}
	link := regexp.MustCompile(`href="([^"]*/auth/ext\?[^"]*)"`).FindStringSubmatch(first)
	if link == nil {
		t.Fatalf("no link to the ext connector: %s", first)
	}
	resp, err := b.Get(s.URL[:strings.Index(s.URL, "/dex")] + strings.ReplaceAll(link[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	second := page()
	ext, loc := strings.Index(second, `data-connector="ext"`), strings.Index(second, `data-connector="local"`)
	if !strings.Contains(second, "last-used") || ext < 0 || loc < 0 || ext > loc {
		t.Fatalf("the last choice (ext) is not marked and listed first:\n%s", second)
	}
}
