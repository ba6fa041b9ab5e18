package issuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// upstream is a callback connector whose "provider" sends the browser
// straight back to the issuer's callback; HandleCallback then answers
// with the error its outcome names, as GitHub's and the OIDC connector do.
type upstream struct{ outcomes map[string]error }

func (u upstream) LoginURL(_ context.Context, _ connector.Scopes, callbackURL, state string) (string, []byte, error) {
	return callbackURL + "?" + url.Values{"state": {state}, "outcome": {"pending"}}.Encode(), nil, nil
}

func (u upstream) HandleCallback(_ context.Context, _ connector.Scopes, _ []byte, r *http.Request) (connector.Identity, error) {
	err, ok := u.outcomes[r.URL.Query().Get("outcome")]
	if !ok {
		return connector.Identity{}, errors.New("test upstream: no outcome")
	}
	return connector.Identity{}, err
}

// refusals are what connectors answer when they refuse or fail, with what
// the client must receive.
var refusals = []struct {
	name     string
	err      error
	code     string // error= at the client
	desc     string // error_description at the client (substring)
	status   int    // the page's status when the client cannot be told
	pageText string
}{
	{
		name: "not in the org",
		err: &connector.UserError{Status: http.StatusForbidden, Reason: "not_in_org", Title: "Not a member of an allowed organization",
			Message: "You are signed in to GitHub as mallory, which is not in an organization allowed to log in here.", Description: "membership in exampleorg required; signed in to GitHub as mallory"},
		code: "access_denied", desc: "membership in exampleorg required; signed in to GitHub as mallory", status: 403, pageText: "signed in to GitHub as mallory",
	},
	{
		name: "cancelled upstream",
		err: &connector.UserError{Status: http.StatusForbidden, Reason: "access_denied", Title: "GitHub authorization cancelled",
			Message: "You did not authorize this app on GitHub.", Description: "authorization cancelled at GitHub"},
		code: "access_denied", desc: "authorization cancelled at GitHub", status: 403, pageText: "did not authorize",
	},
	{
		name: "no description: the title",
		err:  &connector.UserError{Status: http.StatusForbidden, Reason: "x", Title: "Email address not verified", Message: "Verify it."},
		code: "access_denied", desc: "Email address not verified", status: 403, pageText: "Verify it.",
	},
	{
		name: "rate limited upstream",
		err: &connector.UserError{Status: http.StatusTooManyRequests, Reason: "rate_limited", Title: "GitHub rate limit reached",
			Message: "Try again in 3 minutes.", Description: "GitHub rate limit reached; try again in about 3 minutes", RetryAfter: 3 * time.Minute},
		code: "temporarily_unavailable", desc: "try again in about 3 minutes", status: 429, pageText: "Try again in 3 minutes.",
	},
	{
		name: "upstream failed",
		err:  errors.New("github: exchange code: token gho_SECRET123 rejected by https://internal.example/api"),
		code: "server_error", desc: "logging in with Upstream failed; tell your administrator request ID", status: 502, pageText: "request ID",
	},
	{
		name: "non-ASCII reason",
		err: &connector.UserError{Status: http.StatusForbidden, Reason: "email_not_verified", Title: "Email address not verified",
			Message: "Verify it.", Description: "email address \"zoë@example.com\" is not verified\\"},
		code: "access_denied", desc: "email address 'zo?@example.com' is not verified/", status: 403, pageText: "Verify it.",
	},
}

var webClient = issuer.Client{
	ID: "web", Secret: "web-secret", Name: "Web", RedirectURIs: []string{"https://app.example.com/cb?tenant=a&iss=forged", "urn:ietf:wg:oauth:2.0:oob"},
}

func refusingIssuer(t *testing.T, opts ...issuertest.Options) *issuertest.Server {
	outcomes := map[string]error{}
	for _, r := range refusals {
		outcomes[r.name] = r.err
	}
	o := issuertest.Options{ExtraClients: []issuer.Client{webClient}}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Connectors = []issuer.Connector{{ID: "upstream", Type: "github", Name: "Upstream", Impl: upstream{outcomes}}}
	return issuertest.Start(t, o)
}

// startRefusedLogin starts a login of client (through /auth) and follows
// it to the upstream, whose reply is outcome. It returns the last response
// and its body.
func startRefusedLogin(t *testing.T, s *issuertest.Server, params map[string]string, outcome string) (*http.Response, string) {
	t.Helper()
	b := s.Browser()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != mustHost(s.URL) {
			return http.ErrUseLastResponse
		}
		if req.URL.Path == mustPath(s.URL)+"/callback" {
			q := req.URL.Query()
			q.Set("outcome", outcome)
			req.URL.RawQuery = q.Encode()
		}
		return nil
	}
	resp, err := b.Get(authURL(s, params))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func mustHost(raw string) string { u, _ := url.Parse(raw); return u.Host }
func mustPath(raw string) string { u, _ := url.Parse(raw); return u.Path }

// TestRefusedLoginEndsAtTheClient: a login the connector refuses ends at
// once with error=access_denied (or the code its cause implies) and a
// reason at the client's redirect URI, keeping state and adding iss
// (RFC 6749 4.1.2.1, RFC 9207), instead of leaving the client to time out.
// Nothing internal (an upstream token, an internal URL) reaches the client.
func TestRefusedLoginEndsAtTheClient(t *testing.T) {
	s := refusingIssuer(t)
	p := newPKCE()
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := startRefusedLogin(t, s, codeParams(s, p, "openid groups"), tc.name)
			loc, err := resp.Location()
			if err != nil || resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, no redirect to the client: %.300s", resp.StatusCode, body)
			}
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != "http://localhost:8000" {
				t.Fatalf("redirected to %s", loc)
			}
			q := loc.Query()
			if q.Get("error") != tc.code || !strings.Contains(q.Get("error_description"), tc.desc) {
				t.Errorf("error=%q error_description=%q, want %q and %q", q.Get("error"), q.Get("error_description"), tc.code, tc.desc)
			}
			if q.Get("state") != "state-123" || q.Get("iss") != s.URL || q.Has("code") {
				t.Errorf("state=%q iss=%q code=%q", q.Get("state"), q.Get("iss"), q.Get("code"))
			}
			if d := q.Get("error_description"); strings.Contains(d, "gho_") || strings.Contains(d, "internal.example") {
				t.Errorf("error_description leaks internal detail: %q", d)
			}
			for _, c := range q.Get("error_description") {
				if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
					t.Errorf("error_description has %q, outside RFC 6749's character set", c)
				}
			}
		})
	}
	t.Run("the auth request is consumed", func(t *testing.T) {
		b := s.Browser()
		resp, err := b.Get(authURL(s, codeParams(s, p, "openid")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("error") == "" {
			t.Fatalf("no refusal: %d", resp.StatusCode)
		}
		// The upstream's callback again (a reload): the login is over.
		cb := resp.Request.URL.String()
		if resp.Request.URL.Path != mustPath(s.URL)+"/callback" {
			t.Fatalf("last request %s, want the callback", cb)
		}
		again, err := b.Get(cb)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(again.Body)
		again.Body.Close()
		if again.StatusCode != 400 || !strings.Contains(string(body), "Login expired") {
			t.Fatalf("second callback: %d %.200s", again.StatusCode, body)
		}
	})
}

// TestRefusedLoginKeepsRegisteredQuery: the registered redirect URI's own
// query is kept as written, and a parameter of the response's name in it
// (iss here) is replaced by gatehouse's, so the client reads the real one.
func TestRefusedLoginKeepsRegisteredQuery(t *testing.T) {
	s := refusingIssuer(t)
	params := map[string]string{
		"client_id": "web", "redirect_uri": "https://app.example.com/cb?tenant=a&iss=forged", "response_type": "code",
		"scope": "openid", "state": "web-state",
	}
	resp, body := startRefusedLogin(t, s, params, "not in the org")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "https://app.example.com/cb?tenant=a&") || strings.Contains(loc, "forged") {
		t.Fatalf("redirect %q (status %d, %.200s)", loc, resp.StatusCode, body)
	}
	u, _ := url.Parse(loc)
	if q := u.Query(); q.Get("iss") != s.URL || q.Get("state") != "web-state" || q.Get("error") != "access_denied" {
		t.Fatalf("query %v", q)
	}
}

// TestRefusedLoginPageWhenClientCannotBeTold: the out-of-band client has
// no redirect to send the error to; the browser gets the connector's page.
func TestRefusedLoginPageWhenClientCannotBeTold(t *testing.T) {
	s := refusingIssuer(t)
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]string{
				"client_id": "web", "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "response_type": "code", "scope": "openid", "state": "st",
			}
			resp, body := startRefusedLogin(t, s, params, tc.name)
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != "" || !strings.Contains(body, tc.pageText) {
				t.Fatalf("status %d, Location %q, page %.400s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if strings.Contains(body, "gho_SECRET") {
				t.Fatal("page shows the connector's internal error")
			}
			if tc.status == 429 && resp.Header.Get("Retry-After") != "180" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		})
	}
}

// TestRefusedLoginPageWhenClientIsGone: a login started for a client
// that is no longer registered when the connector refuses (the issuer
// restarted with another staticClients) cannot trust the stored redirect
// URI: the browser gets the page, and nothing is sent to the URI.
func TestRefusedLoginPageWhenClientIsGone(t *testing.T) {
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	before := refusingIssuer(t, issuertest.Options{Storage: store, ExtraClients: []issuer.Client{webClient}})
	after := refusingIssuer(t, issuertest.Options{Storage: store})
	b := before.Browser()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == mustPath(before.URL)+"/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := b.Get(authURL(before, map[string]string{
		"client_id": "web", "redirect_uri": "https://app.example.com/cb?tenant=a&iss=forged", "response_type": "code", "scope": "openid", "state": "st",
	}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := resp.Location()
	if err != nil {
		t.Fatalf("no redirect to the callback: %d", resp.StatusCode)
	}
	// The same browser (cookies are per host, not per port) comes back
	// to the restarted issuer.
	cb.Host = mustHost(after.URL)
	q := cb.Query()
	q.Set("outcome", "not in the org")
	cb.RawQuery = q.Encode()
	b.Transport = after.HTTPClient.Transport // its own CA
	resp, err = b.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "signed in to GitHub as mallory") {
		t.Fatalf("status %d, Location %q, page %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestRefusedDeviceLogin: a device login the connector refuses shows the
// page in the browser and ends the device code with access_denied and the
// reason at the token endpoint (RFC 8628 3.5), instead of pending until
// it expires.
func TestRefusedDeviceLogin(t *testing.T) {
	s := refusingIssuer(t)
	resp, err := s.HTTPClient.PostForm(s.URL+"/device/code", url.Values{"client_id": {s.PublicClientID}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&da)
	resp.Body.Close()
	b := s.Browser()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == mustPath(s.URL)+"/callback" {
			q := req.URL.Query()
			q.Set("outcome", "not in the org")
			req.URL.RawQuery = q.Encode()
		}
		return nil
	}
	page, err := b.PostForm(s.URL+"/device", url.Values{"user_code": {da.UserCode}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 403 || !strings.Contains(string(body), "signed in to GitHub as mallory") {
		t.Fatalf("device login page: %d %.300s", page.StatusCode, body)
	}
	tr := postToken(t, s, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {s.PublicClientID}})
	if tr.status != 400 || tr.Error != "access_denied" || tr.Description != "membership in exampleorg required; signed in to GitHub as mallory" {
		t.Fatalf("poll after the refusal: %d %s %q", tr.status, tr.Error, tr.Description)
	}
}
