// Package issuertest runs a real gatehouse issuer in-process over HTTPS
// for tests: the plugin's integration tests, the connector tests and the
// end-to-end suite use it. It logs in its local user through the real
// pages with plain HTTP (no browser needed), or leaves the browser part
// to the caller.
package issuertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// Options tune the test issuer. The zero value is a working issuer.
type Options struct {
	// Now is the issuer's clock (default time.Now). Tests move it to make
	// tokens expire.
	Now func() time.Time
	// IDTokenTTL is the ID and access token lifetime (default 1h).
	IDTokenTTL time.Duration
	// RefreshReuseInterval (default 0: every replay revokes).
	RefreshReuseInterval time.Duration
	// Storage (default: memory).
	Storage storage.Storage
	// Connectors replace the default local password connector when set.
	Connectors []issuer.Connector
	// ExtraClients are added to the default ones.
	ExtraClients []issuer.Client
	// ClientsFor, when set, adds clients that need the issuer URL (for
	// redirect URIs on the issuer's own origin).
	ClientsFor func(issuerURL string) []issuer.Client
	// ShowApproval turns the approval screen on (default off).
	ShowApproval bool
	// Path is the issuer URL path (default "/dex").
	Path string
	// Logger (default: discard; set GATEHOUSE_TEST_LOG=1 to see logs).
	Logger *slog.Logger
	// Mount, when set, adds handlers on the same HTTPS server (same
	// origin as the issuer); the issuer serves everything else.
	Mount func(s *Server, mux *http.ServeMux)
	// LoginLimits (default: the issuer's defaults).
	LoginLimits issuer.LoginLimits
	// GrantTypes are oauth2.grantTypes (default: the issuer's).
	GrantTypes []string
}

// Server is a running test issuer.
type Server struct {
	// URL is the issuer URL, https://127.0.0.1:PORT/dex.
	URL string
	// CAPEM and CAFile are the CA that signed the serving certificate.
	CAPEM  []byte
	CAFile string
	// HTTPClient trusts the CA.
	HTTPClient *http.Client
	// ClientID/ClientSecret: the confidential client "kubernetes", with
	// redirect URIs http://localhost:8000 and http://localhost:18000 (any
	// loopback port, RFC 8252) and the out-of-band URN.
	ClientID, ClientSecret string
	// PublicClientID is a public client ("kubectl", PKCE required) with
	// Dex's defaults for public clients (any loopback redirect, OOB).
	PublicClientID string
	// Username/Password of the local user; UserID is its id.
	Username, Password, UserID string

	Issuer  *issuer.Server
	Storage storage.Storage
	Keys    *keys.Manager
}

// The local user of every test issuer.
const (
	testUsername = "admin@example.com"
	testPassword = "correct horse battery staple"
	testUserID   = "08a8684b-db88-4b73-90a9-3cd1661f5466"
)

// LocalConnector is the local password connector with the test issuer's
// user (Server.Username, Password, UserID) on store: the default
// connector, for tests that wrap it (Flaky) and pass it in
// Options.Connectors with ID local.ID.
func LocalConnector(t testing.TB, store storage.Storage) *local.Connector {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := local.New([]local.User{{Email: testUsername, Hash: hash, Username: "admin", UserID: testUserID}}, store)
	if err != nil {
		t.Fatalf("issuertest: local connector: %v", err)
	}
	return lc
}

// Flaky is a password connector whose upstream can go down: while Fail
// has set an error, Refresh returns it (as the GitHub, OIDC or LDAP
// connectors do when their upstream is busy or unreachable); logins work.
type Flaky struct {
	*local.Connector
	mu  sync.Mutex
	err error
}

// Fail makes the following refreshes fail with err; nil ends the outage.
func (f *Flaky) Fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Refresh implements connector.RefreshConnector.
func (f *Flaky) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return connector.Identity{}, err
	}
	return f.Connector.Refresh(ctx, s, id)
}

// Start runs an issuer until t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IDTokenTTL == 0 {
		opts.IDTokenTTL = time.Hour
	}
	if opts.Path == "" {
		opts.Path = "/dex"
	}
	if opts.Logger == nil {
		if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			opts.Logger = slog.New(slog.DiscardHandler)
		}
	}
	store := opts.Storage
	if store == nil {
		store = memory.New()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("issuertest: listen: %v", err)
	}
	issuerURL := "https://" + ln.Addr().String() + opts.Path

	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatalf("issuertest: certificates: %v", err)
	}
	dir := t.TempDir()
	paths, err := bundle.WriteDir(dir)
	if err != nil {
		t.Fatalf("issuertest: write certificates: %v", err)
	}

	km, err := keys.NewManager(keys.Options{Storage: store, TokenLifetime: opts.IDTokenTTL, Now: opts.Now, Logger: opts.Logger})
	if err != nil {
		t.Fatalf("issuertest: keys: %v", err)
	}
	if err := km.Rotate(context.Background()); err != nil {
		t.Fatalf("issuertest: keys: %v", err)
	}

	s := &Server{
		URL: issuerURL, CAPEM: bundle.CACert, CAFile: paths.CACert,
		ClientID: "kubernetes", ClientSecret: "test-client-secret", PublicClientID: "kubectl",
		Username: testUsername, Password: testPassword, UserID: testUserID,
		Storage: store, Keys: km,
	}
	conns := opts.Connectors
	if conns == nil {
		conns = []issuer.Connector{{ID: local.ID, Type: "local", Name: "Email", Impl: LocalConnector(t, store)}}
	}
	clients := append([]issuer.Client{
		{ID: s.ClientID, Secret: s.ClientSecret, Name: "Kubernetes", RedirectURIs: []string{"http://localhost:8000", "http://localhost:18000", "urn:ietf:wg:oauth:2.0:oob"}},
		{ID: s.PublicClientID, Name: "kubectl", Public: true},
	}, opts.ExtraClients...)
	if opts.ClientsFor != nil {
		clients = append(clients, opts.ClientsFor(issuerURL)...)
	}
	passwordConn := ""
	for _, c := range conns {
		if c.ID == local.ID {
			passwordConn = local.ID
		}
	}
	srv, err := issuer.New(issuer.Options{
		Issuer: issuerURL, Storage: store, Keys: km, Clients: clients, Connectors: conns,
		SkipApprovalScreen: !opts.ShowApproval, PasswordConnector: passwordConn,
		Expiry: issuer.Expiry{IDTokens: opts.IDTokenTTL, RefreshReuseInterval: opts.RefreshReuseInterval},
		Logger: opts.Logger, Now: opts.Now, LoginLimits: opts.LoginLimits, GrantTypes: opts.GrantTypes,
	})
	if err != nil {
		t.Fatalf("issuertest: issuer: %v", err)
	}
	s.Issuer = srv
	cert, err := tls.X509KeyPair(bundle.ServerCert, bundle.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = srv
	if opts.Mount != nil {
		mux := http.NewServeMux()
		mux.Handle("/", srv)
		opts.Mount(s, mux)
		handler = mux
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	go func() { _ = hs.Serve(tln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if opts.Storage == nil {
			_ = store.Close()
		}
	})
	s.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bundle.CertPool(), MinVersion: tls.VersionTLS12}}}
	return s
}

// Browser returns an HTTP client that behaves like a browser for the
// issuer's pages: it trusts the CA, keeps cookies, and does not follow a
// redirect that leaves the issuer (so the caller sees the redirect to the
// client's loopback URI).
func (s *Server) Browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	base := s.HTTPClient.Transport
	issuerHost := mustHost(s.URL)
	return &http.Client{
		Timeout: 30 * time.Second, Jar: jar, Transport: base,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != issuerHost {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func mustHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u.Host
}

var (
	hiddenField = regexp.MustCompile(`<input type="hidden" name="(req|hmac)" value="([^"]*)">`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// LoginPage completes the local user's login on the issuer's pages,
// starting from an authorization URL (or a /device verification URL), and
// returns the last response: the redirect to the client (3xx with a
// Location), the out-of-band code page, or the device "done" page.
func (s *Server) LoginPage(browser *http.Client, startURL string) (*http.Response, string, error) {
	resp, err := browser.Get(startURL)
	if err != nil {
		return nil, "", err
	}
	return s.continueLogin(browser, resp)
}

// SubmitUserCode posts a device user code on /device and completes the
// login of the local user.
func (s *Server) SubmitUserCode(browser *http.Client, userCode string) (*http.Response, string, error) {
	resp, err := browser.PostForm(s.URL+"/device", url.Values{"user_code": {userCode}})
	if err != nil {
		return nil, "", err
	}
	return s.continueLogin(browser, resp)
}

func (s *Server) continueLogin(browser *http.Client, resp *http.Response) (*http.Response, string, error) {
	for step := 0; step < 5; step++ {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, "", err
		}
		page := string(body)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return resp, page, nil
		}
		if resp.StatusCode != http.StatusOK {
			return resp, page, fmt.Errorf("issuertest: page answered %d: %s", resp.StatusCode, firstLine(page))
		}
		action := formAction.FindStringSubmatch(page)
		if action == nil {
			return resp, page, nil // a final page: done, OOB code
		}
		form := url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
			form.Set(m[1], htmlUnescape(m[2]))
		}
		switch {
		case strings.Contains(page, `name="password"`):
			form.Set("login", s.Username)
			form.Set("password", s.Password)
		case strings.Contains(page, `name="approval"`):
			form.Set("approval", "approve")
		default:
			return resp, page, errors.New("issuertest: unexpected form on page")
		}
		target := mustHostURL(s.URL, htmlUnescape(action[1]))
		if resp, err = browser.PostForm(target, form); err != nil {
			return nil, "", err
		}
	}
	return nil, "", errors.New("issuertest: login did not finish in 5 steps")
}

func mustHostURL(issuerURL, path string) string {
	u, _ := url.Parse(issuerURL)
	return u.Scheme + "://" + u.Host + path
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+")
	return r.Replace(s)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteCA writes the CA next to other test files and returns its path.
func (s *Server) WriteCA(dir string) (string, error) {
	p := filepath.Join(dir, "issuer-ca.crt")
	return p, os.WriteFile(p, s.CAPEM, 0o644)
}
