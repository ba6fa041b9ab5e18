package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// fakeClock is shared by the issuer and the plugin.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// httpBrowser is the browser stand-in for in-process runs: it logs the
// issuer's local user in through the real pages with plain HTTP and
// follows the redirect to the plugin's loopback listener. Tamper, when
// set, may rewrite the authorization URL or the final redirect (attacks).
type httpBrowser struct {
	t      *testing.T
	srv    *issuertest.Server
	opened atomic.Int32
	urls   chan string
	// tamperAuth rewrites the authorization URL before the login.
	tamperAuth func(*url.URL)
	// tamperRedirect rewrites the redirect to the loopback listener.
	tamperRedirect func(*url.URL)
	// before runs before the real redirect is delivered.
	before func(redirect *url.URL)
	// idle makes the browser do nothing (the user walked away).
	idle bool
	// landed, when set, gets the loopback listener's answer to the redirect.
	landed func(status int, page string)
}

func (b *httpBrowser) Open(ctx context.Context, raw string) (func(), error) {
	b.opened.Add(1)
	if b.urls != nil {
		b.urls <- raw
	}
	if b.idle {
		return func() {}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if b.tamperAuth != nil {
		b.tamperAuth(u)
	}
	if code := u.Query().Get("user_code"); code != "" { // device flow
		if _, _, err := b.srv.SubmitUserCode(b.srv.Browser(), code); err != nil {
			return nil, fmt.Errorf("browser: %w", err)
		}
		return func() {}, nil
	}
	resp, page, err := b.srv.LoginPage(b.srv.Browser(), u.String())
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	if resp.StatusCode < 300 || resp.StatusCode >= 400 {
		_ = page // device flow: the "done" page
		return func() {}, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, err
	}
	if b.before != nil {
		b.before(loc)
	}
	if b.tamperRedirect != nil {
		b.tamperRedirect(loc)
	}
	r, err := http.Get(loc.String())
	if err != nil {
		return nil, fmt.Errorf("browser: redirect to the plugin: %w", err)
	}
	landed, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if b.landed != nil {
		b.landed(r.StatusCode, string(landed))
	}
	return func() {}, nil
}

type rig struct {
	t     *testing.T
	srv   *issuertest.Server
	clock *fakeClock
	dir   string
	br    *httpBrowser
	// keyring is the OS keyring's stand-in (--token-cache-storage=keyring).
	keyring *memKeyring
}

func newRig(t *testing.T, ttl time.Duration) *rig {
	t.Helper()
	clock := newClock()
	srv := issuertest.Start(t, issuertest.Options{Now: clock.Now, IDTokenTTL: ttl})
	return &rig{t: t, srv: srv, clock: clock, dir: filepath.Join(t.TempDir(), "cache"), br: &httpBrowser{t: t, srv: srv}}
}

func (r *rig) args(extra ...string) []string {
	for _, e := range extra {
		if strings.HasPrefix(e, "--listen-address=") { // StringSlice flags append
			return append(r.args()[:8], extra...)
		}
	}
	return append([]string{"kubectl-gatehouse", "get-token",
		"--oidc-issuer-url=" + r.srv.URL, "--oidc-client-id=" + r.srv.ClientID, "--oidc-client-secret=" + r.srv.ClientSecret,
		"--oidc-extra-scope=groups,profile", "--token-cache-dir=" + r.dir, "--certificate-authority=" + r.srv.CAFile,
		"--listen-address=127.0.0.1:0"}, extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

func (r *rig) run(ctx context.Context, execInfo string, args []string) result {
	r.t.Helper()
	var out, errb bytes.Buffer
	if r.keyring == nil {
		r.keyring = &memKeyring{}
	}
	env := cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Now: r.clock.Now, Opener: r.br, Keyring: r.keyring,
		Getenv: func(k string) string {
			if k == "KUBERNETES_EXEC_INFO" {
				return execInfo
			}
			return ""
		},
	}
	code := cli.Main(ctx, args, env)
	return result{code, out.String(), errb.String()}
}

const (
	execInfoV1            = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`
	execInfoV1NonInteract = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`
	execInfoV1beta1       = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":true}}`
)

// token decodes a v1 ExecCredential with client-go's own type.
func tokenV1(t *testing.T, out string) (string, time.Time) {
	t.Helper()
	var ec clientauthv1.ExecCredential
	if err := json.Unmarshal([]byte(out), &ec); err != nil {
		t.Fatalf("stdout is not an ExecCredential: %v\n%s", err, out)
	}
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status == nil || ec.Status.Token == "" || ec.Status.ExpirationTimestamp == nil {
		t.Fatalf("bad ExecCredential: %s", out)
	}
	return ec.Status.Token, ec.Status.ExpirationTimestamp.Time
}

func (r *rig) mustLogin(ctx context.Context) string {
	r.t.Helper()
	res := r.run(ctx, execInfoV1, r.args())
	if res.code != 0 {
		r.t.Fatalf("get-token: exit %d\n%s", res.code, res.stderr)
	}
	tok, _ := tokenV1(r.t, res.stdout)
	return tok
}

func TestNoCacheLogsInAndCaches(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	tok := r.mustLogin(ctx)
	if n := r.br.opened.Load(); n != 1 {
		t.Fatalf("browser opened %d times, want 1", n)
	}
	exp, err := jwtpayload.Expiry(tok)
	if err != nil || !exp.Equal(r.clock.Now().Add(time.Hour)) {
		t.Fatalf("token exp = %v, %v; want issuer's now + 1h", exp, err)
	}
	// The cache: a 0700 folder, one 0600 file named as kubelogin names it.
	fi, err := os.Stat(r.dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode = %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(r.dir)
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		files = append(files, e.Name())
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("cache file %s mode = %v, want 0600", e.Name(), info.Mode())
		}
	}
	if len(files) != 1 {
		t.Fatalf("cache files = %v, want one entry (no temp files left)", files)
	}
	var e tokencache.Entry
	b, _ := os.ReadFile(filepath.Join(r.dir, files[0]))
	if err := json.Unmarshal(b, &e); err != nil || e.IDToken != tok || e.RefreshToken == "" {
		t.Fatalf("cache entry = %s, %v", b, err)
	}
}

// failingTransport fails the test when anything dials the network.
type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("the warm path touched the network: %s %s", r.Method, r.URL)
	return nil, errors.New("no network on the warm path")
}

func TestValidCacheUsesNoNetwork(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	first := r.mustLogin(ctx)
	r.clock.Add(30 * time.Minute)
	var out, errb bytes.Buffer
	code := cli.Main(ctx, r.args(), cli.Env{
		Stdout: &out, Stderr: &errb, Now: r.clock.Now, Opener: r.br,
		HTTPClient: &http.Client{Transport: failingTransport{t}},
		Getenv:     func(k string) string { return map[string]string{"KUBERNETES_EXEC_INFO": execInfoV1}[k] },
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if tok, _ := tokenV1(t, out.String()); tok != first {
		t.Fatal("a valid cached token was not reused")
	}
	if errb.Len() != 0 {
		t.Errorf("the warm path wrote to stderr: %q", errb.String())
	}
	if r.br.opened.Load() != 1 {
		t.Fatal("the browser opened again")
	}
}

func TestMarginAndRefresh(t *testing.T) {
	tests := []struct {
		name        string
		advance     time.Duration
		margin      string
		wantRefresh bool
	}{
		{"well within validity", 50 * time.Minute, "60s", false},
		{"inside the default margin", 59*time.Minute + 30*time.Second, "60s", true},
		{"inside a smaller margin is still valid", 59*time.Minute + 30*time.Second, "10s", false},
		{"expired", 2 * time.Hour, "60s", true},
		{"forced", time.Minute, "60s --force-refresh", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, time.Hour)
			ctx := context.Background()
			first := r.mustLogin(ctx)
			r.clock.Add(tt.advance)
			res := r.run(ctx, execInfoV1NonInteract, r.args(strings.Fields("--token-expiry-margin="+tt.margin)...))
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			tok, exp := tokenV1(t, res.stdout)
			if refreshed := tok != first; refreshed != tt.wantRefresh {
				t.Fatalf("refreshed = %v, want %v", refreshed, tt.wantRefresh)
			}
			if tt.wantRefresh && !exp.After(r.clock.Now().Add(59*time.Minute)) {
				t.Fatalf("refreshed token expires %v", exp)
			}
			if r.br.opened.Load() != 1 {
				t.Fatal("refresh must not open the browser")
			}
		})
	}
}

func corruptRefreshToken(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		var ent tokencache.Entry
		b, _ := os.ReadFile(p)
		if err := json.Unmarshal(b, &ent); err != nil {
			t.Fatal(err)
		}
		ent.RefreshToken = "revoked-or-forged"
		b, _ = json.Marshal(ent)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// refreshRefused logs in, then lets the token expire with a refresh
// token the issuer refuses.
func refreshRefused(t *testing.T) (*rig, context.Context) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	r.mustLogin(ctx)
	corruptRefreshToken(t, r.dir)
	r.clock.Add(2 * time.Hour)
	return r, ctx
}

func TestFailedRefresh(t *testing.T) {
	t.Run("interactive: logs in again", func(t *testing.T) {
		r, ctx := refreshRefused(t)
		res := r.run(ctx, execInfoV1, r.args())
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		tokenV1(t, res.stdout)
		if r.br.opened.Load() != 2 {
			t.Fatalf("browser opened %d times, want 2", r.br.opened.Load())
		}
		if !strings.Contains(res.stderr, "logging in again") {
			t.Errorf("stderr does not say why the browser opened: %q", res.stderr)
		}
	})
	// kubectl says interactive: false (interactiveMode: Never, or no
	// terminal): that is about standard input only, so the browser login
	// goes ahead, as with kubelogin.
	t.Run("non-interactive, browser: logs in again", func(t *testing.T) {
		r, ctx := refreshRefused(t)
		res := r.run(ctx, execInfoV1NonInteract, r.args())
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		tokenV1(t, res.stdout)
		if r.br.opened.Load() != 2 {
			t.Fatalf("browser opened %d times, want 2", r.br.opened.Load())
		}
	})
	t.Run("non-interactive, authcode-keyboard: one line, exit 1", func(t *testing.T) {
		r, ctx := refreshRefused(t)
		res := r.run(ctx, execInfoV1NonInteract, r.args("--grant-type=authcode-keyboard"))
		if res.code == 0 {
			t.Fatal("exit 0 without a token")
		}
		if res.stdout != "" {
			t.Fatalf("stdout = %q, want nothing", res.stdout)
		}
		if lines := strings.Count(strings.TrimSpace(res.stderr), "\n") + 1; lines != 1 {
			t.Fatalf("stderr has %d lines, want 1: %q", lines, res.stderr)
		}
		for _, want := range []string{"login required", "the refresh failed", "--grant-type=authcode-keyboard", "interactiveMode", "get-token"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("stderr does not mention %q: %q", want, res.stderr)
			}
		}
		if r.br.opened.Load() != 1 {
			t.Fatal("a non-interactive keyboard run opened the browser")
		}
	})
}

func TestCorruptCacheIsReplaced(t *testing.T) {
	for _, content := range []string{"garbage", `{"id_token":`, `["foreign"]`, `{"id_token":"not.a-jwt"}`, ""} {
		t.Run(content, func(t *testing.T) {
			r := newRig(t, time.Hour)
			ctx := context.Background()
			r.mustLogin(ctx)
			entries, _ := os.ReadDir(r.dir)
			var p string
			for _, e := range entries {
				if !strings.Contains(e.Name(), ".") {
					p = filepath.Join(r.dir, e.Name())
				}
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			tok := r.mustLogin(ctx)
			b, _ := os.ReadFile(p)
			var e tokencache.Entry
			if err := json.Unmarshal(b, &e); err != nil || e.IDToken != tok {
				t.Fatalf("cache not replaced: %q", b)
			}
		})
	}
}

func TestExecCredentialVersions(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	r.mustLogin(ctx)
	tests := []struct {
		name, info, want string
		interactive      bool
	}{
		{"v1", execInfoV1, "client.authentication.k8s.io/v1", true},
		{"v1 non-interactive", execInfoV1NonInteract, "client.authentication.k8s.io/v1", false},
		{"v1beta1", execInfoV1beta1, "client.authentication.k8s.io/v1beta1", true},
		{"no KUBERNETES_EXEC_INFO (kubelogin's fallback)", "", "client.authentication.k8s.io/v1beta1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.run(ctx, tt.info, r.args())
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if strings.HasSuffix(tt.want, "v1beta1") {
				var ec clientauthv1beta1.ExecCredential
				if err := json.Unmarshal([]byte(res.stdout), &ec); err != nil || ec.APIVersion != tt.want || ec.Status == nil || ec.Status.Token == "" || ec.Status.ExpirationTimestamp == nil {
					t.Fatalf("v1beta1 ExecCredential: %v %s", err, res.stdout)
				}
				if ec.Spec.Interactive != tt.interactive {
					t.Fatalf("spec.interactive = %v", ec.Spec.Interactive)
				}
				return
			}
			var ec clientauthv1.ExecCredential
			if err := json.Unmarshal([]byte(res.stdout), &ec); err != nil || ec.APIVersion != tt.want || ec.Status == nil || ec.Status.Token == "" {
				t.Fatalf("v1 ExecCredential: %v %s", err, res.stdout)
			}
			if ec.Spec.Interactive != tt.interactive {
				t.Fatalf("spec.interactive = %v", ec.Spec.Interactive)
			}
		})
	}
	t.Run("unknown version is refused", func(t *testing.T) {
		res := r.run(ctx, `{"apiVersion":"client.authentication.k8s.io/v2"}`, r.args())
		if res.code == 0 || res.stdout != "" {
			t.Fatalf("exit %d, stdout %q", res.code, res.stdout)
		}
	})
}

func freePort(t *testing.T) (string, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), ln
}

func TestListenAddressFallback(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	taken, ln := freePort(t) // stands for 127.0.0.1:8000, taken
	defer ln.Close()
	second, ln2 := freePort(t)
	ln2.Close() // stands for 127.0.0.1:18000, free
	r.br.urls = make(chan string, 1)
	args := r.args("--listen-address=" + taken + "," + second)
	res := r.run(ctx, execInfoV1, args)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	u, _ := url.Parse(<-r.br.urls)
	_, port, _ := net.SplitHostPort(second)
	if got := u.Query().Get("redirect_uri"); got != "http://localhost:"+port {
		t.Fatalf("redirect_uri = %q, want the second address", got)
	}

	t.Run("both taken: a clear error", func(t *testing.T) {
		a, l1 := freePort(t)
		defer l1.Close()
		b, l2 := freePort(t)
		defer l2.Close()
		res := r.run(ctx, execInfoV1, r.args("--force-refresh", "--token-cache-storage=none", "--listen-address="+a+","+b))
		if res.code == 0 || !strings.Contains(res.stderr, "all in use") {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

func TestTimeoutAndCancel(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cancel bool
		want   string
	}{
		{"timeout", false, "timed out"},
		{"ctrl-c", true, "cancelled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, time.Hour)
			r.br.idle = true
			addr, ln := freePort(t)
			ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			timeout := "--authentication-timeout-sec=1"
			if tt.cancel {
				timeout = "--authentication-timeout-sec=600"
				r.br.urls = make(chan string, 1)
				go func() { <-r.br.urls; cancel() }()
			}
			before := runtime.NumGoroutine()
			res := r.run(ctx, execInfoV1, r.args(timeout, "--listen-address="+addr))
			if res.code == 0 || !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			// No goroutine is left (idle connections to the issuer are
			// closed; the issuer's own goroutines are the test's).
			waitGoroutines(t, before)
			// The listener is gone: the port can be taken again.
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the loopback listener was left behind: %v", err)
			}
			l.Close()
		})
	}
}

// waitGoroutines waits for the goroutine count to come back to at most
// before (goroutines end asynchronously after their owner returns).
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left behind (before: %d):\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHelpAndErrors(t *testing.T) {
	r := &rig{t: t, clock: newClock(), br: &httpBrowser{t: t}}
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"kubectl-gatehouse", "get-token", "--help"}, 0, "--oidc-issuer-url"},
		{[]string{"kubectl-gatehouse", "get-token"}, 1, "--oidc-issuer-url is missing"},
		{[]string{"kubectl-gatehouse", "get-token", "--oidc-issuer-url=https://x", "--oidc-client-id=y", "--token-cache-storage=cloud"}, 1, "token-cache-storage must be one of"},
		{[]string{"kubectl-gatehouse", "get-token", "--oidc-issuer-url=https://x", "--oidc-client-id=y", "--grant-type=magic"}, 1, "grant-type must be one of"},
		{[]string{"kubectl-gatehouse", "get-token", "--oidc-issuer-url=https://x", "--oidc-client-id=y", "--no-such-flag"}, 1, "unknown flag"},
		{[]string{"kubectl-gatehouse", "nope"}, 1, "unknown command"},
		{[]string{"kubectl-oidc_login", "logout"}, 1, "unknown command"},
		{[]string{"kubectl-gatehouse"}, 1, "a command is required"},
	}
	for _, tt := range tests {
		res := r.run(context.Background(), "", tt.args)
		if res.code != tt.wantCode || !strings.Contains(res.stderr, tt.wantErr) || res.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, res.code, res.stdout, res.stderr)
		}
	}
}

func TestDeviceFlow(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	res := r.run(ctx, execInfoV1, r.args("--grant-type=device-code", "--authentication-timeout-sec=60"))
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	tokenV1(t, res.stdout)
	if !strings.Contains(res.stderr, "/device") || !strings.Contains(res.stderr, "enter the code") {
		t.Fatalf("stderr does not show the verification URI and code: %q", res.stderr)
	}
}

func TestPasswordGrant(t *testing.T) {
	r := newRig(t, time.Hour)
	res := r.run(context.Background(), execInfoV1NonInteract, r.args("--username="+r.srv.Username, "--password="+r.srv.Password))
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	tok, _ := tokenV1(t, res.stdout)
	b, _ := jwtpayload.Payload(tok)
	var claims struct{ Sub, Aud string }
	if err := json.Unmarshal(b, &claims); err != nil || claims.Sub == "" || claims.Aud != r.srv.ClientID {
		t.Fatalf("claims %s: %v", b, err)
	}
	if r.br.opened.Load() != 0 {
		t.Fatal("the password grant opened a browser")
	}
	bad := r.run(context.Background(), execInfoV1NonInteract, r.args("--force-refresh", "--token-cache-storage=none", "--username="+r.srv.Username, "--password=wrong"))
	if bad.code == 0 {
		t.Fatal("a wrong password got a token")
	}
}

func TestLogoutRevokesAndClean(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	r.mustLogin(ctx)
	// Keep the refresh token to try it after logout.
	entries, _ := os.ReadDir(r.dir)
	var rt string
	for _, e := range entries {
		if !strings.Contains(e.Name(), ".") {
			var ent tokencache.Entry
			b, _ := os.ReadFile(filepath.Join(r.dir, e.Name()))
			_ = json.Unmarshal(b, &ent)
			rt = ent.RefreshToken
		}
	}
	args := r.args()
	args[1] = "logout"
	res := r.run(ctx, "", args)
	if res.code != 0 || !strings.Contains(res.stderr, "Revoked") {
		t.Fatalf("logout: exit %d, %s", res.code, res.stderr)
	}
	// The refresh token no longer works at the issuer.
	resp, err := r.srv.HTTPClient.PostForm(r.srv.URL+"/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {r.srv.ClientID}, "client_secret": {r.srv.ClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the refresh token still works after logout")
	}
	// The entry is gone: the next get-token logs in.
	r.mustLogin(ctx)
	if r.br.opened.Load() != 2 {
		t.Fatal("get-token after logout did not log in")
	}
	res = r.run(ctx, "", []string{"kubectl-gatehouse", "clean", "--token-cache-dir=" + r.dir})
	if res.code != 0 {
		t.Fatalf("clean: %s", res.stderr)
	}
	if _, err := os.Stat(r.dir); !os.IsNotExist(err) {
		t.Fatal("clean left the cache folder")
	}
}
