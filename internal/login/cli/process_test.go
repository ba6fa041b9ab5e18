package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"
)

// TestMain doubles as the browser stand-in that the plugin starts through
// --browser-command (or as xdg-open): when GATEHOUSE_TEST_BROWSER is set,
// this test binary logs the issuer's user in at the URL in its argument,
// with plain HTTP ("http") or in headless Chromium ("chromium").
func TestMain(m *testing.M) {
	if mode := os.Getenv("GATEHOUSE_TEST_BROWSER"); mode != "" {
		os.Exit(helperBrowser(mode, os.Args[len(os.Args)-1]))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func helperBrowser(mode, target string) int {
	if f := os.Getenv("GATEHOUSE_TEST_BROWSER_LOG"); f != "" {
		lf, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(lf, target)
			lf.Close()
		}
	}
	ca, err := os.ReadFile(os.Getenv("GATEHOUSE_TEST_CA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper browser:", err)
		return 1
	}
	user, pass := os.Getenv("GATEHOUSE_TEST_USER"), os.Getenv("GATEHOUSE_TEST_PASS")
	if mode == "chromium" {
		return chromiumLogin(target, user, pass)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	s := &issuertest.Server{URL: os.Getenv("GATEHOUSE_TEST_ISSUER"), Username: user, Password: pass,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	if u, err := url.Parse(target); err == nil && u.Query().Get("user_code") != "" {
		// The device flow's verification_uri_complete: confirm the code
		// and log in; the plugin polls.
		if _, _, err := s.SubmitUserCode(s.Browser(), u.Query().Get("user_code")); err != nil {
			fmt.Fprintln(os.Stderr, "helper browser:", err)
			return 1
		}
		return 0
	}
	resp, _, err := s.LoginPage(s.Browser(), target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper browser:", err)
		return 1
	}
	loc, err := resp.Location()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper browser:", err)
		return 1
	}
	r, err := http.Get(loc.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper browser:", err)
		return 1
	}
	r.Body.Close()
	return 0
}

func chromiumLogin(target, user, pass string) int {
	dir, err := os.MkdirTemp("", "gatehouse-chromium-")
	if err != nil {
		return 1
	}
	defer os.RemoveAll(dir)
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(browser.Path())}
	for _, f := range browser.Flags(dir) {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chromium:", err)
		return 1
	}
	step, cancelStep := context.WithTimeout(ctx, 60*time.Second)
	defer cancelStep()
	if err := chromedp.Do(step,
		chromedp.Navigate(target),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user),
		chromedp.SendKeys(chromedp.ID("password"), pass),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		fmt.Fprintln(os.Stderr, "chromium:", err)
		return 1
	}
	text, err := chromedp.Run(step, chromedp.Text(chromedp.ID("result")))
	if err != nil || !strings.Contains(text, "Logged in") {
		fmt.Fprintf(os.Stderr, "chromium: result page %q, %v\n", text, err)
		return 1
	}
	return 0
}

var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

// pluginBinary builds kubectl-gatehouse once for the package's tests.
func pluginBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binError = os.MkdirTemp("", "kubectl-gatehouse-test-")
		if binError != nil {
			return
		}
		binPath = filepath.Join(binDir, "kubectl-gatehouse")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/gatehouse-dev/gatehouse/cmd/kubectl-gatehouse").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// browserScript writes a --browser-command script that runs this test
// binary as the browser stand-in.
func browserScript(t *testing.T, dir, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$1\"\n", self)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func helperEnv(srv *issuertest.Server, mode, logFile string) []string {
	return append(os.Environ(),
		"GATEHOUSE_TEST_BROWSER="+mode, "GATEHOUSE_TEST_BROWSER_LOG="+logFile,
		"GATEHOUSE_TEST_ISSUER="+srv.URL, "GATEHOUSE_TEST_CA="+srv.CAFile,
		"GATEHOUSE_TEST_USER="+srv.Username, "GATEHOUSE_TEST_PASS="+srv.Password,
		"KUBERNETES_EXEC_INFO="+execInfoV1,
	)
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// Eight kubectl commands at once with an empty cache: one browser, one
// login; the seven others wait on the lock and print the token the first
// one cached. Then eight warm runs at once.
func TestParallelProcesses(t *testing.T) {
	bin := pluginBinary(t)
	srv := issuertest.Start(t, issuertest.Options{})
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	logFile := filepath.Join(dir, "browser.log")
	script := browserScript(t, dir, "browser.sh")
	args := []string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID,
		"--oidc-client-secret=" + srv.ClientSecret, "--token-cache-dir=" + cache, "--certificate-authority=" + srv.CAFile,
		"--browser-command=" + script, "--authentication-timeout-sec=60"}
	env := helperEnv(srv, "http", logFile)

	for round, want := range []int{1, 1} { // browser opens after the cold round, then after the warm round
		var wg sync.WaitGroup
		outs := make([]string, 8)
		errs := make([]error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(bin, args...)
				cmd.Env = env
				var out, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &stderr
				if err := cmd.Run(); err != nil {
					errs[i] = fmt.Errorf("%v: %s", err, stderr.String())
				}
				outs[i] = out.String()
			}()
		}
		wg.Wait()
		var first string
		for i := range 8 {
			if errs[i] != nil {
				t.Fatalf("round %d run %d failed: %v", round, i, errs[i])
			}
			tok, _ := tokenV1(t, outs[i])
			if first == "" {
				first = tok
			} else if tok != first {
				t.Fatalf("round %d: runs printed different tokens (two logins)", round)
			}
		}
		if n := countLines(logFile); n != want {
			t.Fatalf("round %d: the browser opened %d times, want %d", round, n, want)
		}
	}
}

// The seed article's kubeconfig, unchanged: the binary installed as
// kubectl-oidc_login, its exact get-token arguments, the CA and cache
// folder from the environment, and the default browser (xdg-open, here the
// stand-in on PATH).
func TestKubeloginCompatibleInvocation(t *testing.T) {
	bin := pluginBinary(t)
	srv := issuertest.Start(t, issuertest.Options{})
	dir := t.TempDir()
	link := filepath.Join(dir, "bin", "kubectl-oidc_login")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	browserScript(t, filepath.Join(dir, "bin"), "xdg-open")
	logFile := filepath.Join(dir, "browser.log")
	seedArgs := []string{"get-token",
		"--oidc-issuer-url=" + srv.URL,
		"--oidc-client-id=" + srv.ClientID,
		"--oidc-client-secret=" + srv.ClientSecret,
		"--oidc-extra-scope=groups,profile",
	}
	env := append(helperEnv(srv, "http", logFile),
		"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"),
		"SSL_CERT_FILE="+srv.CAFile, "KUBECACHEDIR="+filepath.Join(dir, "kubecache"), "HOME="+dir,
		"DISPLAY=:0") // a desktop session: xdg-open has somewhere to open the browser
	run := func(args ...string) (string, string) {
		cmd := exec.Command(link, args...)
		cmd.Env = env
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl-oidc_login %s: %v\n%s", args[0], err, stderr.String())
		}
		return out.String(), stderr.String()
	}
	out, _ := run(seedArgs...)
	first, _ := tokenV1(t, out)
	out, _ = run(seedArgs...)
	if tok, _ := tokenV1(t, out); tok != first {
		t.Fatal("second run did not use the cache")
	}
	if n := countLines(logFile); n != 1 {
		t.Fatalf("browser opened %d times", n)
	}
	// kubelogin's cache folder and file name.
	entries, err := os.ReadDir(filepath.Join(dir, "kubecache", "oidc-login"))
	if err != nil || len(entries) < 1 {
		t.Fatalf("no cache in $KUBECACHEDIR/oidc-login: %v", err)
	}
	// whoami and logout are gatehouse's: kubelogin's name does not offer them.
	cmd := exec.Command(link, "whoami")
	cmd.Env = env
	if err := cmd.Run(); err == nil {
		t.Error("kubectl-oidc_login answered whoami")
	}
	run("clean")
	if _, err := os.Stat(filepath.Join(dir, "kubecache", "oidc-login")); !os.IsNotExist(err) {
		t.Fatal("clean left the cache")
	}
}

// The authcode flow in a real browser: headless Chromium started through
// --browser-command fills in the issuer's login page and lands on the
// plugin's loopback page.
func TestAuthCodeInChromium(t *testing.T) {
	if browser.Path() == "" {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatal("GATEHOUSE_REQUIRE_BROWSER is set but no chromium is installed")
		}
		t.Skip("no chromium installed")
	}
	bin := pluginBinary(t)
	srv := issuertest.Start(t, issuertest.Options{})
	dir := t.TempDir()
	logFile := filepath.Join(dir, "browser.log")
	script := browserScript(t, dir, "chromium.sh")
	cmd := exec.Command(bin, "get-token", "--oidc-issuer-url="+srv.URL, "--oidc-client-id="+srv.ClientID,
		"--oidc-client-secret="+srv.ClientSecret, "--oidc-extra-scope=groups,profile",
		"--token-cache-dir="+filepath.Join(dir, "cache"), "--certificate-authority="+srv.CAFile,
		"--listen-address=127.0.0.1:0", "--browser-command="+script, "--authentication-timeout-sec=90")
	cmd.Env = helperEnv(srv, "chromium", logFile)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("get-token: %v\n%s", err, stderr.String())
	}
	tok, _ := tokenV1(t, out.String())
	var claims map[string]any
	payload := strings.Split(tok, ".")[1]
	if b, err := jsonB64(payload); err != nil || json.Unmarshal(b, &claims) != nil || claims["aud"] != srv.ClientID {
		t.Fatalf("token claims: %v %v", claims, err)
	}
}

func jsonB64(s string) ([]byte, error) {
	return base64RawURL.DecodeString(s)
}

var base64RawURL = base64.RawURLEncoding

// With kubelogin's default listen addresses and 127.0.0.1:8000 taken (by
// this test, or by whatever already holds it), the plugin falls back to
// 127.0.0.1:18000.
func TestPort8000Taken(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8000"); err == nil {
		defer ln.Close()
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:18000"); err != nil {
		t.Skipf("127.0.0.1:18000 is busy on this machine: %v", err)
	} else {
		ln.Close()
	}
	bin := pluginBinary(t)
	srv := issuertest.Start(t, issuertest.Options{})
	dir := t.TempDir()
	logFile := filepath.Join(dir, "browser.log")
	script := browserScript(t, dir, "browser.sh")
	cmd := exec.Command(bin, "get-token", "--oidc-issuer-url="+srv.URL, "--oidc-client-id="+srv.ClientID,
		"--oidc-client-secret="+srv.ClientSecret, "--token-cache-dir="+filepath.Join(dir, "cache"),
		"--certificate-authority="+srv.CAFile, "--browser-command="+script, "--authentication-timeout-sec=60")
	cmd.Env = helperEnv(srv, "http", logFile)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("get-token: %v\n%s", err, stderr.String())
	}
	tokenV1(t, out.String())
	opened, _ := os.ReadFile(logFile)
	u, err := url.Parse(strings.TrimSpace(string(opened)))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("redirect_uri"); got != "http://localhost:18000" {
		t.Fatalf("redirect_uri = %q, want http://localhost:18000", got)
	}
}
