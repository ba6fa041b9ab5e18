package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/spf13/pflag"
)

// memKeyring stands in for the OS keyring (go-keyring's Secret Service
// provider): items by service and user, tokencache.ErrNotFound when
// absent. The keyring tests against a real Secret Service are in
// cmd/kubectl-gatehouse.
type memKeyring struct {
	mu    sync.Mutex
	items map[[2]string]string
}

func (k *memKeyring) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.items[[2]string{service, user}]
	if !ok {
		return "", fmt.Errorf("%w: secret not found in keyring", tokencache.ErrNotFound)
	}
	return v, nil
}

func (k *memKeyring) Set(service, user, secret string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.items == nil {
		k.items = map[[2]string]string{}
	}
	k.items[[2]string{service, user}] = secret
	return nil
}

func (k *memKeyring) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.items[[2]string{service, user}]; !ok {
		return tokencache.ErrNotFound
	}
	delete(k.items, [2]string{service, user})
	return nil
}

func (k *memKeyring) DeleteAll(service string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key := range k.items {
		if key[0] == service {
			delete(k.items, key)
		}
	}
	return nil
}

func (k *memKeyring) get(service, user string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.items[[2]string{service, user}]
	return v, ok
}

// keyFor is the cache key get-token computes for args (after the command).
func keyFor(t *testing.T, args []string) tokencache.Key {
	t.Helper()
	var o options.Flags
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.ParseErrorsAllowlist.UnknownFlags = true
	o.Add(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o.Key()
}

// --token-cache-storage=keyring keeps the tokens in the keyring under
// kubelogin's names (so kubelogin's session survives a switch), and only
// the lock on disk; clean empties both.
func TestKeyringStorage(t *testing.T) {
	r := newRig(t, time.Hour)
	ctx := context.Background()
	args := r.args("--token-cache-storage=keyring")
	res := r.run(ctx, execInfoV1, args)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	first, _ := tokenV1(t, res.stdout)
	item := "kubelogin/tokencache/" + keyFor(t, args[2:]).Checksum()
	raw, ok := r.keyring.get("kubelogin", item)
	var e tokencache.Entry
	if !ok || json.Unmarshal([]byte(raw), &e) != nil || e.IDToken != first || e.RefreshToken == "" {
		t.Fatalf("keyring item %s = %q", item, raw)
	}
	entries, _ := os.ReadDir(r.dir)
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".lock") {
			t.Errorf("the keyring storage wrote %s to the cache folder", de.Name())
		}
	}
	// A warm run reads the keyring: no second login.
	res = r.run(ctx, execInfoV1, args)
	if tok, _ := tokenV1(t, res.stdout); res.code != 0 || tok != first || r.br.opened.Load() != 1 {
		t.Fatalf("warm run: exit %d, same token %v, browser opened %d times", res.code, tok == first, r.br.opened.Load())
	}
	// An entry kubelogin left in the keyring is used as it is.
	r.clock.Add(2 * time.Hour)
	res = r.run(ctx, execInfoV1, r.args("--token-cache-storage=disk")) // a new login, cached on disk
	fresh, _ := tokenV1(t, res.stdout)
	if err := r.keyring.Set("kubelogin", item, `{"id_token":"`+fresh+`"}`); err != nil {
		t.Fatal(err)
	}
	opened := r.br.opened.Load()
	res = r.run(ctx, execInfoV1, args)
	if tok, _ := tokenV1(t, res.stdout); res.code != 0 || tok != fresh || r.br.opened.Load() != opened {
		t.Fatalf("kubelogin's keyring entry not used: exit %d, %s", res.code, res.stderr)
	}
	res = r.run(ctx, "", []string{"kubectl-oidc_login", "clean", "--token-cache-dir=" + r.dir})
	if res.code != 0 || !strings.Contains(res.stderr, "Deleted the token cache from the keyring") {
		t.Fatalf("clean: exit %d, %s", res.code, res.stderr)
	}
	if _, ok := r.keyring.get("kubelogin", item); ok {
		t.Fatal("clean left the keyring item")
	}
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("clean left the cache folder")
	}
}

// tlsBrowser logs in through the issuer's pages and follows the redirect
// to the plugin's HTTPS loopback listener, trusting its certificate; it
// keeps what the listener answered.
type tlsBrowser struct {
	srv       *issuertest.Server
	loopback  *http.Client
	redirect  *url.URL
	page      string
	status    int
	callbacks int
}

func (b *tlsBrowser) Open(ctx context.Context, raw string) (func(), error) {
	resp, _, err := b.srv.LoginPage(b.srv.Browser(), raw)
	if err != nil {
		return nil, err
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, err
	}
	b.redirect = loc
	r, err := b.loopback.Get(loc.String())
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	b.page, b.status = string(body), r.StatusCode
	b.callbacks++
	return func() {}, nil
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// --local-server-cert/--local-server-key: the loopback listener speaks
// HTTPS with that certificate and the redirect is https://localhost:PORT;
// --open-url-after-authentication: its page then sends the browser there.
func TestLocalServerCertAndOpenURL(t *testing.T) {
	port := freeLoopbackPort(t)
	redirect := fmt.Sprintf("https://localhost:%d", port)
	srv := issuertest.Start(t, issuertest.Options{ExtraClients: []issuer.Client{{ID: "tls-loopback", Secret: "tls-secret", RedirectURIs: []string{redirect}}}})
	bundle, err := tlsutil.NewBundle([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := bundle.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := []string{"kubectl-oidc_login", "get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=tls-loopback",
		"--oidc-client-secret=tls-secret", "--certificate-authority=" + srv.CAFile, "--token-cache-dir=" + dir,
		fmt.Sprintf("--listen-address=127.0.0.1:%d", port)}
	br := &tlsBrowser{srv: srv, loopback: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bundle.CertPool(), MinVersion: tls.VersionTLS12}}}}
	run := func(extra ...string) result {
		return runWith(br, append(append([]string{}, base...), extra...))
	}
	target := "https://dashboard.example.com/after?x=1&y=<2>"
	res := run("--local-server-cert="+paths.ServerCert, "--local-server-key="+paths.ServerKey, "--open-url-after-authentication="+target)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	tokenV1(t, res.stdout)
	if br.redirect.Scheme != "https" || br.redirect.Host != fmt.Sprintf("localhost:%d", port) {
		t.Errorf("redirected to %s, want %s", br.redirect, redirect)
	}
	if br.status != http.StatusOK || !strings.Contains(br.page, `http-equiv="refresh" content="0;URL=https://dashboard.example.com/after?x=1&amp;y=&lt;2&gt;"`) {
		t.Errorf("loopback page %d %q does not send the browser to %s", br.status, br.page, target)
	}

	// Mistakes fail at once, before any browser.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--local-server-cert=" + paths.ServerCert}, "--local-server-cert and --local-server-key must be set together"},
		{[]string{"--local-server-cert=" + paths.ServerCert, "--local-server-key=" + filepath.Join(dir, "missing.key")}, "missing.key"},
		{[]string{"--local-server-cert=" + paths.CACert, "--local-server-key=" + paths.ServerKey}, "--local-server-cert/--local-server-key"},
	} {
		calls := br.callbacks
		res := run(append(tt.args, "--token-cache-dir="+t.TempDir())...) // nothing cached: a login
		if res.code != 1 || !strings.Contains(res.stderr, tt.want) || br.callbacks != calls {
			t.Errorf("%v: exit %d, %q; want an error naming %q before the browser", tt.args, res.code, res.stderr, tt.want)
		}
	}
}

// runWith runs the plugin in-process with opener as the browser.
func runWith(opener flow.Opener, args []string) result {
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Opener: opener, Keyring: &memKeyring{},
		Getenv: func(k string) string {
			if k == "KUBERNETES_EXEC_INFO" {
				return execInfoV1
			}
			return ""
		},
	})
	return result{code, out.String(), errb.String()}
}
