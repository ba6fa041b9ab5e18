package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// Logins through a real gatehouse issuer (in-process), by gatehouse and,
// with KUBELOGIN_BIN, by kubelogin: each reads what the other cached.

// browserEnv is the test binary's browser stand-in (see TestMain): run as
// the --browser-command, it logs the issuer's user in at the URL in its
// last argument, following the plugin's loopback redirects over HTTP or
// HTTPS (trusting GATEHOUSE_TEST_LOOPBACK_CA), and appends each loopback
// page it got to GATEHOUSE_TEST_BROWSER_LOG.
const browserEnv = "GATEHOUSE_TEST_BROWSER"

func helperBrowser(target string) int {
	if err := browse(target); err != nil {
		fmt.Fprintln(os.Stderr, "test browser:", err)
		return 1
	}
	return 0
}

func browse(target string) error {
	pool := x509.NewCertPool()
	for _, f := range []string{os.Getenv("GATEHOUSE_TEST_CA"), os.Getenv("GATEHOUSE_TEST_LOOPBACK_CA")} {
		if b, err := os.ReadFile(f); err == nil {
			pool.AppendCertsFromPEM(b)
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	s := &issuertest.Server{URL: os.Getenv("GATEHOUSE_TEST_ISSUER"), Username: os.Getenv("GATEHOUSE_TEST_USER"), Password: os.Getenv("GATEHOUSE_TEST_PASS"), HTTPClient: hc}
	issuerURL, _ := url.Parse(s.URL)
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	next := target
	for step := 0; step < 6 && next != ""; step++ {
		u, err := url.Parse(next)
		if err != nil {
			return err
		}
		if u.Host == issuerURL.Host {
			resp, _, err := s.LoginPage(s.Browser(), next)
			if err != nil {
				return err
			}
			loc, err := resp.Location()
			if err != nil {
				return err
			}
			next = loc.String()
			continue
		}
		// The plugin's loopback listener: kubelogin's index page (a
		// redirect to the issuer) or the callback.
		resp, err := noFollow.Get(next)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		next = resp.Header.Get("Location")
		if next == "" {
			f, err := os.OpenFile(os.Getenv("GATEHOUSE_TEST_BROWSER_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "%d %s\n", resp.StatusCode, strings.ReplaceAll(string(body), "\n", " "))
			return f.Close()
		}
	}
	return nil
}

// browserCommand writes a --browser-command script running this test
// binary as the browser.
func browserCommand(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "browser.sh")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("#!/bin/sh\nexec %q \"$1\"\n", self)), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func loginEnv(t *testing.T, srv *issuertest.Server, browserLog, loopbackCA string) []string {
	return append(isolated(t), browserEnv+"=1", "GATEHOUSE_TEST_ISSUER="+srv.URL, "GATEHOUSE_TEST_CA="+srv.CAFile,
		"GATEHOUSE_TEST_USER="+srv.Username, "GATEHOUSE_TEST_PASS="+srv.Password,
		"GATEHOUSE_TEST_BROWSER_LOG="+browserLog, "GATEHOUSE_TEST_LOOPBACK_CA="+loopbackCA)
}

// entry reads the one cache entry in dir.
func entry(t *testing.T, dir string) (name string, e struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}) {
	t.Helper()
	entries, _ := cacheNames(t, dir)
	if len(entries) != 1 {
		t.Fatalf("cache entries %v, want one", entries)
	}
	b, err := os.ReadFile(filepath.Join(dir, entries[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.IDToken == "" {
		t.Fatalf("entry %s: %s %v", entries[0], b, err)
	}
	return entries[0], e
}

func printedToken(t *testing.T, r result) string {
	t.Helper()
	var ec execCredential
	if err := json.Unmarshal([]byte(r.stdout), &ec); err != nil || ec.Status.Token == "" {
		t.Fatalf("not an ExecCredential: exit %d, %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	return ec.Status.Token
}

// TestKubeloginPasswordLogins: each tool logs in with the password grant
// and the other uses its entry as it is, and refreshes with its refresh
// token; -v1 on a cache hit logs what kubelogin logs.
func TestKubeloginPasswordLogins(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	srv := issuertest.Start(t, issuertest.Options{})
	env := loginEnv(t, srv, filepath.Join(t.TempDir(), "browser.log"), "")
	args := func(dir string, extra ...string) []string {
		return append([]string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID,
			"--oidc-client-secret=" + srv.ClientSecret, "--oidc-extra-scope=email,offline_access", "--certificate-authority=" + srv.CAFile,
			"--username=" + srv.Username, "--password=" + srv.Password, "--token-cache-dir=" + dir}, extra...)
	}
	gate := func(a ...string) result { _, r := runAs(t, bin, "kubectl-oidc_login", "", env, a...); return r }

	gDir := t.TempDir()
	gTok := printedToken(t, gate(args(gDir)...))
	gName, gEntry := entry(t, gDir)
	if gEntry.IDToken != gTok || gEntry.RefreshToken == "" {
		t.Fatalf("gatehouse's entry %+v", gEntry)
	}
	// A cache hit at -v1 says what kubelogin says (less its two lines
	// about the lock, which gatehouse does not take to read).
	r := gate(args(gDir, "-v1", "--skip_headers")...)
	wantLog := []string{
		"WARNING: log may contain your secrets such as token or password",
		"credential plugin is called with apiVersion: client.authentication.k8s.io/v1",
		"finding a token cache",
		"checking expiration of the existing token",
		"you already have a valid token until ",
	}
	if printedToken(t, r) != gTok || !logLines(r.stderr, wantLog) {
		t.Errorf("-v1 cache hit logged %q, want %q", r.stderr, wantLog)
	}
	if kubelogin == "" {
		return
	}
	// kubelogin reads gatehouse's entry, and logs the same at -v1.
	r = runKubelogin(t, kubelogin, env, args(gDir, "-v1", "--skip_headers")...)
	if printedToken(t, r) != gTok {
		t.Error("kubelogin did not use gatehouse's entry")
	}
	kubeloginLog := withoutLockLines(r.stderr)
	gatehouseLog := gate(args(gDir, "-v1", "--skip_headers")...).stderr
	if kubeloginLog != gatehouseLog {
		t.Errorf("-v1 cache hit: gatehouse logs\n%s\nkubelogin logs (lock lines removed)\n%s", gatehouseLog, kubeloginLog)
	}

	// gatehouse reads kubelogin's entry; both names are one.
	kDir := t.TempDir()
	kTok := printedToken(t, runKubelogin(t, kubelogin, env, args(kDir)...))
	kName, kEntry := entry(t, kDir)
	if kName != gName {
		t.Fatalf("kubelogin's entry is %s, gatehouse's %s", kName, gName)
	}
	if got := printedToken(t, gate(args(kDir)...)); got != kTok {
		t.Error("gatehouse did not use kubelogin's entry")
	}
	// Expired ID tokens: each refreshes with the refresh token the other
	// cached (kubelogin's entry, refreshed by gatehouse, then by kubelogin).
	for _, tool := range []string{"gatehouse", "kubelogin"} {
		_, e := entry(t, kDir)
		expired := tokenExpiring(time.Now().Add(-time.Minute))
		b, _ := json.Marshal(map[string]string{"id_token": expired, "refresh_token": e.RefreshToken})
		if err := os.WriteFile(filepath.Join(kDir, kName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		var r result
		if tool == "gatehouse" {
			r = gate(args(kDir, "--password=wrong")...) // a login would fail: only the refresh works
		} else {
			r = runKubelogin(t, kubelogin, env, args(kDir, "--password=wrong")...)
		}
		tok := printedToken(t, r)
		_, after := entry(t, kDir)
		if tok == expired || after.IDToken != tok || after.RefreshToken == e.RefreshToken || after.RefreshToken == "" {
			t.Errorf("%s did not refresh with the other's refresh token: %+v", tool, after)
		}
	}
	_ = kEntry
}

func logLines(stderr string, want []string) bool {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != len(want) {
		return false
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			return false
		}
	}
	return true
}

func withoutLockLines(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.Contains(l, "the lock of token cache") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestKubeloginLoopbackTLS: --local-server-cert/--local-server-key and
// --open-url-after-authentication, in the browser flow of both tools.
func TestKubeloginLoopbackTLS(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := issuertest.Start(t, issuertest.Options{ExtraClients: []issuer.Client{
		{ID: "tls-loopback", Secret: "tls-secret", RedirectURIs: []string{fmt.Sprintf("https://localhost:%d", port)}}}})
	bundle, err := tlsutil.NewBundle([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := bundle.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	script := browserCommand(t)
	const after = "https://dashboard.example.com/welcome"
	names := map[string]string{}
	for _, tool := range []string{"gatehouse", "kubelogin"} {
		if tool == "kubelogin" && kubelogin == "" {
			continue
		}
		t.Run(tool, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "browser.log")
			env := loginEnv(t, srv, log, paths.CACert)
			dir := t.TempDir()
			a := []string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=tls-loopback", "--oidc-client-secret=tls-secret",
				"--certificate-authority=" + srv.CAFile, "--token-cache-dir=" + dir, fmt.Sprintf("--listen-address=127.0.0.1:%d", port),
				"--browser-command=" + script, "--local-server-cert=" + paths.ServerCert, "--local-server-key=" + paths.ServerKey,
				"--open-url-after-authentication=" + after, "--authentication-timeout-sec=60"}
			var r result
			if tool == "gatehouse" {
				_, r = runAs(t, bin, "kubectl-oidc_login", "", env, a...)
			} else {
				r = runKubelogin(t, kubelogin, env, a...)
			}
			printedToken(t, r)
			names[tool], _ = entry(t, dir)
			page, _ := os.ReadFile(log)
			if !strings.HasPrefix(string(page), "200 ") || !strings.Contains(string(page), `http-equiv="refresh" content="0;URL=`+after+`"`) {
				t.Errorf("the loopback page (over HTTPS) does not send the browser to %s: %s", after, page)
			}
		})
	}
	if kubelogin != "" && names["gatehouse"] != names["kubelogin"] {
		t.Errorf("cache entry %s, kubelogin's %s", names["gatehouse"], names["kubelogin"])
	}
}

// findKubectl is a real kubectl: $GATEHOUSE_TEST_KUBECTL, the end-to-end
// suite's build in $GATEHOUSE_E2E_CACHE, or kubectl on PATH. Without one
// the test skips, unless GATEHOUSE_REQUIRE_KUBECTL is set (CI).
func findKubectl(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GATEHOUSE_TEST_KUBECTL"); p != "" {
		return p
	}
	if c := os.Getenv("GATEHOUSE_E2E_CACHE"); c != "" {
		if m, _ := filepath.Glob(filepath.Join(c, "kubernetes-*", "kubectl")); len(m) > 0 {
			return m[len(m)-1]
		}
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	if os.Getenv("GATEHOUSE_REQUIRE_KUBECTL") != "" {
		t.Fatal("no kubectl: set GATEHOUSE_TEST_KUBECTL or GATEHOUSE_E2E_CACHE (.ci/run builds it)")
	}
	t.Skip("no kubectl (set GATEHOUSE_TEST_KUBECTL, or GATEHOUSE_E2E_CACHE after `cd test/e2e && go run ./cmd/e2e-binaries`)")
	return ""
}
