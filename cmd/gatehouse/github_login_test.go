package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"
	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

// githubSetup runs gatehouse from a Dex-format config whose GitHub
// connector points at the fake GitHub (as GitHub Enterprise: hostName and
// rootCA are the only way a Dex config can name another GitHub), with the
// seed article's org and teams.
func githubSetup(t *testing.T, extra string) (*fakegithub.Server, served) {
	t.Helper()
	return githubSetupWith(t, extra, nil)
}

// githubSetupWith is githubSetup with more connectors, written by more
// from the issuer URL (before gatehouse starts).
func githubSetupWith(t *testing.T, extra string, more func(issuer string) string) (*fakegithub.Server, served) {
	t.Helper()
	fx, err := fakegithub.LoadFixture("../../test/fakegithub/testdata/exampleorg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gh, err := fakegithub.Start(fakegithub.Options{Fixture: fx, TLS: true, Enterprise: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	dir := t.TempDir()
	ca, err := gh.WriteCAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"))
	data, _ := os.ReadFile(path)
	cfg := strings.Replace(string(data), "enablePasswordDB: true", `connectors:
- type: github
  id: github
  name: GitHub
  config:
    clientID: gatehouse-oauth-app
    clientSecret: gatehouse-oauth-secret
    redirectURI: `+s.issuer+`/callback
    hostName: `+gh.Host()+`
    rootCA: `+ca+`
    teamNameField: slug
    orgs:
    - name: exampleorg
`+extra+`
`+moreConnectors(more, s.issuer)+`
enablePasswordDB: true`, 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := run(t, path, s)
	t.Cleanup(stop)
	return gh, s
}

func moreConnectors(more func(string) string, issuer string) string {
	if more == nil {
		return ""
	}
	return more(issuer)
}

// loopback is the client's redirect listener.
func loopback(t *testing.T) (string, <-chan url.Values) {
	t.Helper()
	got := make(chan url.Values, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only the authorization response (the browser also asks for
		// /favicon.ico).
		if q := r.URL.Query(); r.URL.Path == "/" && (q.Has("code") || q.Has("error")) {
			select {
			case got <- q:
			default:
			}
		}
		_, _ = w.Write([]byte("<!DOCTYPE html><title>done</title><p id=done>done</p>"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://localhost:" + strings.Split(ln.Addr().String(), ":")[1], got
}

func authStart(s served, redirect string) string {
	return s.issuer + "/auth?" + url.Values{
		"client_id": {"kubernetes"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid profile email groups"}, "state": {"st"}, "nonce": {"nn"},
	}.Encode()
}

// TestGitHubLoginInChromium is the seed article's login, page by page, in
// a real browser: gatehouse sends the user to GitHub, GitHub sends them
// back, and the ID token carries the GitHub login and org:team groups as
// Dex gives them.
func TestGitHubLoginInChromium(t *testing.T) {
	ctx := browser.New(t)
	gh, s := githubSetup(t, "")
	gh.SetLogin("octocat")
	redirect, got := loopback(t)
	step, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// GitHub and the local users are both configured: the choice page
	// comes first.
	if err := chromedp.Do(step,
		chromedp.Navigate(authStart(s, redirect)),
		chromedp.Click(chromedp.CSS(`a[data-connector="github"]`)),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		loc, _ := chromedp.Run(step, chromedp.Location())
		t.Fatalf("login stopped at %s: %v", loc, err)
	}
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no redirect to the client")
	}
	tok := passwordGrant(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect}})
	if tok["status"] != 200 {
		t.Fatalf("exchange: %v", tok)
	}
	claims := jwtClaims(t, tok["id_token"].(string))
	for k, want := range map[string]any{"preferred_username": "octocat", "name": "The Octocat", "email": "octocat@example.com", "email_verified": true, "aud": "kubernetes", "nonce": "nn"} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	var groups []string
	for _, g := range claims["groups"].([]any) {
		groups = append(groups, g.(string))
	}
	if !slices.Contains(groups, "exampleorg:infra-team") {
		t.Errorf("groups = %v, want exampleorg:infra-team", groups)
	}
}

// TestGitHubRefusalsInChromium: each way GitHub refuses a person ends the
// login at once. A browser login goes back to the client's redirect URI
// with the error and a one-line reason (RFC 6749 4.1.2.1), so kubectl's
// plugin stops waiting; a device login, whose client has no redirect,
// shows the page that explains, and its device code ends with
// access_denied and the same reason.
func TestGitHubRefusalsInChromium(t *testing.T) {
	ctx := browser.New(t)
	gh, s := githubSetup(t, "    showRequiredGroups: true")
	redirect, got := loopback(t)
	for _, tc := range []struct {
		name, login string
		setup       func()
		code, desc  string
		page        []string
	}{
		{"outside the org", "outsider", nil, "access_denied", "membership in exampleorg required; signed in to GitHub as outsider", []string{"exampleorg", "outsider"}},
		{"cancelled at GitHub", fakegithub.Deny, nil, "access_denied", "authorization cancelled at GitHub", []string{"cancelled"}},
		{"rate limited", "hubot", func() { _ = gh.SetRateLimitRemaining("hubot", 0) }, "temporarily_unavailable", "GitHub rate limit reached", []string{"rate limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh.SetLogin(tc.login)
			if tc.setup != nil {
				tc.setup()
			}
			step, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			// connector_id skips the choice page.
			if err := chromedp.Do(step, chromedp.Navigate(authStart(s, redirect)+"&connector_id=github"), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
				loc, _ := chromedp.Run(step, chromedp.Location())
				t.Fatalf("the login did not end at the client (at %s): %v", loc, err)
			}
			var q url.Values
			select {
			case q = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no redirect to the client")
			}
			if q.Get("error") != tc.code || !strings.Contains(q.Get("error_description"), tc.desc) || q.Get("state") != "st" || q.Get("iss") != s.issuer {
				t.Errorf("client got %v, want error=%s with %q", q, tc.code, tc.desc)
			}

			// The device flow: the page explains, the device hears access_denied.
			if tc.setup != nil {
				tc.setup()
			}
			da := deviceCode(t, s)
			if err := chromedp.Do(step,
				chromedp.Navigate(da.VerificationURIComplete),
				chromedp.Click(chromedp.ID("submit-code")),
				chromedp.Click(chromedp.CSS(`a[data-connector="github"]`)),
				chromedp.WaitVisible(chromedp.ID("error-message")),
			); err != nil {
				loc, _ := chromedp.Run(step, chromedp.Location())
				t.Fatalf("no error page for the device login (at %s): %v", loc, err)
			}
			text, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("main")))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.page {
				if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
					t.Errorf("page %q lacks %q", text, w)
				}
			}
			tok := passwordGrant(t, s, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}})
			if tok["status"] != 400 || tok["error"] != "access_denied" || !strings.Contains(fmt.Sprint(tok["error_description"]), tc.desc) {
				t.Errorf("device poll: %v, want access_denied with %q", tok, tc.desc)
			}
		})
	}
}

type deviceAuth struct{ DeviceCode, VerificationURIComplete string }

func deviceCode(t *testing.T, s served) deviceAuth {
	t.Helper()
	m := postAsClient(t, s, "/device/code", url.Values{"scope": {"openid groups"}})
	da := deviceAuth{DeviceCode: fmt.Sprint(m["device_code"]), VerificationURIComplete: fmt.Sprint(m["verification_uri_complete"])}
	if m["status"] != 200 || m["device_code"] == nil {
		t.Fatalf("device authorization: %v", m)
	}
	return da
}

func jwtClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	return jwtPart(t, jwt, 1)
}

// jwtPart decodes part i of a compact JWS (0: header, 1: claims).
func jwtPart(t *testing.T, jwt string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %s", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
