package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"
)

// upstreamGatehouse is a second gatehouse used as the upstream OpenID
// Connect provider of an oidc connector: a local user alice and a client
// for the downstream issuer. Its issuer path differs from the
// downstream's so that the two issuers' cookies (scoped to the path) do
// not meet in one browser.
type upstreamGatehouse struct {
	issuer, caFile, configFile string
	telemetry                  string
}

func newUpstream(t *testing.T, downstreamCallback string) upstreamGatehouse {
	t.Helper()
	dir := t.TempDir()
	_, paths := testTLS(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	web, tel := freeAddr(t), freeAddr(t)
	u := upstreamGatehouse{issuer: "https://" + web + "/upstream", caFile: paths.CACert, configFile: filepath.Join(dir, "config.yaml"), telemetry: tel}
	cfg := fmt.Sprintf(`issuer: %s
storage: {type: memory}
web: {https: %q, tlsCert: %s, tlsKey: %s}
telemetry: {http: %q}
oauth2: {skipApprovalScreen: true}
staticClients:
- {id: downstream, name: Downstream, secret: downstream-secret, redirectURIs: [%s]}
enablePasswordDB: true
staticPasswords:
- {email: alice@example.com, hash: %q, username: alice, preferredUsername: alice, userID: alice-1}
`, u.issuer, web, paths.ServerCert, paths.ServerKey, tel, downstreamCallback, string(hash))
	if err := os.WriteFile(u.configFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return u
}

// waitReady waits for a serve started in the background to be ready.
func waitReady(t *testing.T, telemetry string, done <-chan error) {
	t.Helper()
	pollReady(t, telemetry, func() string {
		select {
		case err := <-done:
			return fmt.Sprintf("serve exited: %v", err)
		default:
			return ""
		}
	})
}

// pollReady waits for /healthz/ready on telemetry; stopped says (without
// blocking) why the server is gone, or "" while it runs.
func pollReady(t *testing.T, telemetry string, stopped func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + telemetry + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if why := stopped(); why != "" {
			t.Fatal(why)
		}
		if time.Now().After(deadline) {
			t.Fatal("serve never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// health reads /healthz's connector details.
func health(t *testing.T, telemetry string) map[string]retry.Status {
	t.Helper()
	resp, err := http.Get("http://" + telemetry + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	var body struct {
		Status     string
		Connectors []retry.Status
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string]retry.Status{}
	for _, c := range body.Connectors {
		out[c.ID] = c
	}
	return out
}

func metric(t *testing.T, telemetry, line string) bool {
	t.Helper()
	resp, err := http.Get("http://" + telemetry + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), line)
}

// TestUnreachableUpstream starts gatehouse with GitHub (the fake GitHub),
// local users and an oidc connector whose provider is not running: the
// issuer starts, /healthz, the metrics and the login page mark the oidc
// connector unavailable, GitHub and local logins work in the browser,
// picking the oidc connector explains the outage; once the provider runs,
// the same click logs in through it.
func TestUnreachableUpstream(t *testing.T) {
	ctx := browser.New(t)
	var up upstreamGatehouse
	gh, s := githubSetupWith(t, "", func(issuer string) string {
		up = newUpstream(t, issuer+"/callback")
		return fmt.Sprintf(`- type: oidc
  id: keycloak
  name: Keycloak
  config:
    issuer: %s
    clientID: downstream
    clientSecret: downstream-secret
    redirectURI: %s/callback
    rootCAs: [%s]
    scopes: [profile, email]
`, up.issuer, issuer, up.caFile)
	})
	gh.SetLogin("octocat")

	st := health(t, s.telemetry)
	if st["keycloak"].Available || st["keycloak"].Error == "" || !st["github"].Available || !st["local"].Available {
		t.Fatalf("health while the provider is down: %+v", st)
	}
	if !metric(t, s.telemetry, `gatehouse_connector_up{connector="keycloak",type="oidc"} 0`) || !metric(t, s.telemetry, `gatehouse_connector_up{connector="github",type="github"} 1`) {
		t.Error("gatehouse_connector_up does not say keycloak 0, github 1")
	}

	redirect, got := loopback(t)
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }
	expectCode := func(t *testing.T) {
		t.Helper()
		select {
		case q := <-got:
			tok := passwordGrant(t, s, map[string][]string{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect}})
			if tok["status"] != 200 {
				t.Fatalf("exchange: %v", tok)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no redirect to the client")
		}
	}

	t.Run("choice page marks it", func(t *testing.T) {
		c, cancel := step()
		defer cancel()
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.WaitVisible(chromedp.CSS(`a[data-connector="keycloak"][data-unavailable="true"]`))); err != nil {
			t.Fatalf("keycloak not marked unavailable: %v", err)
		}
		n, err := chromedp.Run(c, chromedp.Evaluate[int](`document.querySelectorAll('a[data-unavailable]').length`))
		if err != nil || n != 1 {
			t.Fatalf("%d connectors marked unavailable (%v), want 1", n, err)
		}
	})
	t.Run("GitHub works", func(t *testing.T) {
		c, cancel := step()
		defer cancel()
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.Click(chromedp.CSS(`a[data-connector="github"]`)), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatalf("GitHub login: %v", err)
		}
		expectCode(t)
	})
	t.Run("local works", func(t *testing.T) {
		c, cancel := step()
		defer cancel()
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.Click(chromedp.CSS(`a[data-connector="local"]`)),
			chromedp.SendKeys(chromedp.ID("login"), "admin@example.com"), chromedp.SendKeys(chromedp.ID("password"), "password"),
			chromedp.Click(chromedp.ID("submit-login")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatalf("local login: %v", err)
		}
		expectCode(t)
	})
	t.Run("the unavailable one explains", func(t *testing.T) {
		c, cancel := step()
		defer cancel()
		// The login ends at the application, which learns why (RFC 6749
		// 4.1.2.1): the provider is temporarily unavailable.
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.Click(chromedp.CSS(`a[data-connector="keycloak"]`)), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatalf("the login did not end at the application: %v", err)
		}
		select {
		case q := <-got:
			if q.Get("error") != "temporarily_unavailable" || !strings.Contains(q.Get("error_description"), "Keycloak cannot be reached") || q.Get("state") != "st" {
				t.Fatalf("the application got %v", q)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no redirect to the client")
		}
	})

	// The provider comes up.
	cfg, err := config.Load(up.configFile)
	if err != nil {
		t.Fatal(err)
	}
	upCtx, stopUp := context.WithCancel(context.Background())
	upDone := make(chan error, 1)
	go func() { upDone <- serve(upCtx, cfg, io.Discard, nil) }()
	t.Cleanup(func() { stopUp(); <-upDone })
	waitReady(t, up.telemetry, upDone)

	t.Run("usable once the provider runs", func(t *testing.T) {
		c, cancel := step()
		defer cancel()
		// The click makes an attempt on the spot (as Dex opens a
		// connector when a user picks it), so no waiting for the backoff.
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.Click(chromedp.CSS(`a[data-connector="keycloak"]`)),
			chromedp.SendKeys(chromedp.ID("login"), "alice@example.com"), chromedp.SendKeys(chromedp.ID("password"), "alice-password"),
			chromedp.Click(chromedp.ID("submit-login")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			loc, _ := chromedp.Run(c, chromedp.Location())
			t.Fatalf("login through the provider stopped at %s: %v", loc, err)
		}
		expectCode(t)
		if st := health(t, s.telemetry); !st["keycloak"].Available || st["keycloak"].Error != "" {
			t.Errorf("health after the provider came up: %+v", st["keycloak"])
		}
		if !metric(t, s.telemetry, `gatehouse_connector_up{connector="keycloak",type="oidc"} 1`) {
			t.Error("gatehouse_connector_up keycloak is not 1")
		}
		if err := chromedp.Do(c, chromedp.Navigate(authStart(s, redirect)), chromedp.WaitVisible(chromedp.CSS(`a[data-connector="keycloak"]`))); err != nil {
			t.Fatal(err)
		}
		if n, _ := chromedp.Run(c, chromedp.Evaluate[int](`document.querySelectorAll('a[data-unavailable]').length`)); n != 0 {
			t.Errorf("%d connectors still marked unavailable", n)
		}
	})
}
