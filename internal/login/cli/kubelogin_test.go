package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
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

// clientCredentialsIssuer is an issuer that offers only what kubelogin's
// --grant-type=client-credentials uses: discovery, keys, and the token
// endpoint's client_credentials grant (gatehouse's issuer does not offer
// that grant). It records the token requests.
type clientCredentialsIssuer struct {
	*httptest.Server
	key      *rsa.PrivateKey
	mu       sync.Mutex
	requests []url.Values
	auth     []string
}

func startClientCredentialsIssuer(t *testing.T) *clientCredentialsIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &clientCredentialsIssuer{key: key}
	mux := http.NewServeMux()
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "authorization_endpoint": s.URL + "/auth",
			"token_endpoint": s.URL + "/token", "jwks_uri": s.URL + "/keys", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		s.requests = append(s.requests, r.PostForm)
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		id, secret, ok := r.BasicAuth()
		if !ok || id != "machine" || secret != "machine-secret" || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k"}}, nil)
		claims, _ := json.Marshal(map[string]any{"iss": s.URL, "sub": "machine", "aud": "machine", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		jws, _ := signer.Sign(claims)
		idToken, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
	})
	return s
}

// --grant-type=client-credentials: the client's own token, with the
// secret in the Authorization header and the extra parameters in the
// form, as kubelogin sends them; no person, so kubectl's non-interactive
// runs get it too.
func TestClientCredentials(t *testing.T) {
	iss := startClientCredentialsIssuer(t)
	dir := t.TempDir()
	args := []string{"kubectl-oidc_login", "get-token", "--oidc-issuer-url=" + iss.URL, "--oidc-client-id=machine", "--oidc-client-secret=machine-secret",
		"--grant-type=client-credentials", "--oidc-auth-request-extra-params=audience=cluster-a", "--oidc-extra-scope=groups", "--token-cache-dir=" + dir}
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Keyring: &memKeyring{},
		Getenv: func(k string) string { return map[string]string{"KUBERNETES_EXEC_INFO": execInfoV1NonInteract}[k] }})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tokenV1(t, out.String())
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if len(iss.requests) != 1 {
		t.Fatalf("%d token requests", len(iss.requests))
	}
	f := iss.requests[0]
	if f.Get("audience") != "cluster-a" || f.Get("scope") != "openid groups" || f.Get("client_secret") != "" || !strings.HasPrefix(iss.auth[0], "Basic ") {
		t.Errorf("token request %v, Authorization %q", f, iss.auth[0])
	}
	if _, err := os.Stat(filepath.Join(dir, keyFor(t, args[2:]).Checksum())); err != nil {
		t.Errorf("not cached under kubelogin's name: %v", err)
	}
}

// setup prints commands that work under the name it runs as.
func TestSetupPrintsItsName(t *testing.T) {
	r := newRig(t, time.Hour)
	authn := filepath.Join(t.TempDir(), "authn.yaml")
	if err := os.WriteFile(authn, []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: `+r.srv.URL+`
    audiences: [kubernetes]
  claimMappings:
    username:
      expression: "'oidc:' + claims.email"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		want, not []string
	}{
		{"kubectl-oidc_login", []string{"--exec-command=kubectl \\\n    --exec-arg=oidc-login \\\n    --exec-arg=get-token", "`kubectl auth whoami`"}, []string{"gatehouse whoami", "--exec-arg=gatehouse"}},
		{"kubectl-gatehouse", []string{"--exec-command=kubectl \\\n    --exec-arg=gatehouse \\\n    --exec-arg=get-token", "`kubectl gatehouse whoami`"}, []string{"oidc-login"}},
		{"kubelogin", []string{"--exec-command=kubelogin \\\n    --exec-arg=get-token", "`kubectl auth whoami`"}, []string{"--exec-arg=gatehouse", "--exec-arg=oidc-login"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout string
			// With a CEL mapping setup points to whoami; with the flags'
			// mapping it prints the kubeconfig command.
			for _, cluster := range []string{"--authentication-config=" + authn, "--apiserver-oidc-username-claim=email"} {
				res := r.run(context.Background(), "", []string{"/usr/local/bin/" + tt.name, "setup", "--oidc-issuer-url=" + r.srv.URL, "--oidc-client-id=" + r.srv.ClientID,
					"--oidc-client-secret=" + r.srv.ClientSecret, "--certificate-authority=" + r.srv.CAFile, "--listen-address=127.0.0.1:0",
					"--oidc-extra-scope=email", cluster})
				if res.code != 0 {
					t.Fatalf("exit %d: %s", res.code, res.stderr)
				}
				stdout += res.stdout
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(stdout, n) {
					t.Errorf("output has %q:\n%s", n, stdout)
				}
			}
		})
	}
}
