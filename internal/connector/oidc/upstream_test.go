package oidc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
)

// The connector's client at the upstream gatehouse, and its callback (the
// test never serves it: the browser stops at the redirect to it).
const (
	testClientID     = "downstream-gatehouse"
	testClientSecret = "downstream-secret"
	testRedirectURI  = "https://downstream.example/dex/callback"
	testState        = "the-issuers-state"
)

// directory is the upstream's user source: a password connector with
// groups whose users the tests change or remove between login and refresh.
type directory struct {
	mu       sync.Mutex
	password string
	users    map[string]connector.Identity // by login
	// down, when set, is what Refresh fails with (the upstream's own
	// upstream is down).
	down error
}

func (d *directory) Prompt() string { return "Email Address" }

func (d *directory) Login(_ context.Context, _ connector.Scopes, username, password string) (connector.Identity, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// "admin+7@example.com" is an alias of "admin@example.com": each login
	// of a test uses a new alias, so the upstream's per-user login rate
	// limit does not interfere.
	if local, domain, ok := strings.Cut(username, "@"); ok {
		if base, _, alias := strings.Cut(local, "+"); alias {
			username = base + "@" + domain
		}
	}
	id, ok := d.users[username]
	if !ok || password != d.password {
		return connector.Identity{}, false, nil
	}
	return id, true, nil
}

func (d *directory) Refresh(_ context.Context, _ connector.Scopes, old connector.Identity) (connector.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down != nil {
		return connector.Identity{}, d.down
	}
	for _, id := range d.users {
		if id.UserID == old.UserID {
			return id, nil
		}
	}
	return connector.Identity{}, errors.New("directory: user removed")
}

func (d *directory) set(login string, f func(*connector.Identity)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.users[login]
	f(&id)
	d.users[login] = id
}

func (d *directory) remove(login string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.users, login)
}

// tamper rewrites the upstream's JSON answers on one path (token or
// userinfo) when a test sets it.
type tamper struct {
	mu sync.Mutex
	fn map[string]func(map[string]any)
	// requests records the token requests: header and form.
	requests []recorded
}

type recorded struct {
	header http.Header
	form   url.Values
}

func (tp *tamper) tokenRequests() []recorded {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.requests)
}

func (tp *tamper) set(path string, f func(map[string]any)) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.fn[path] = f
}

func (tp *tamper) wrap(path string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path == "/token" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			tp.mu.Lock()
			tp.requests = append(tp.requests, recorded{header: r.Header.Clone(), form: form})
			tp.mu.Unlock()
		}
		tp.mu.Lock()
		f := tp.fn[path]
		tp.mu.Unlock()
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		f(body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

// upstream is a second gatehouse that the connector logs in through.
type upstream struct {
	*issuertest.Server
	dir    *directory
	tamper *tamper
	logins int
}

const testLogin = "admin@example.com"

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{
		dir:    &directory{users: map[string]connector.Identity{}},
		tamper: &tamper{fn: map[string]func(map[string]any){}},
	}
	u.Server = issuertest.Start(t, issuertest.Options{
		Connectors: []issuer.Connector{{ID: "local", Type: "local", Name: "Email", Impl: u.dir}},
		ExtraClients: []issuer.Client{{
			ID: testClientID, Secret: testClientSecret, Name: "downstream", RedirectURIs: []string{testRedirectURI},
		}},
		Mount: func(s *issuertest.Server, mux *http.ServeMux) {
			path := mustURL(t, s.URL).Path
			for _, p := range []string{"/token", "/userinfo"} {
				mux.Handle(path+p, u.tamper.wrap(p, s.Issuer))
			}
		},
	})
	if u.Username != testLogin {
		t.Fatalf("issuertest's user is %q, the tests expect %q", u.Username, testLogin)
	}
	u.dir.password = u.Password
	u.dir.users[testLogin] = connector.Identity{
		UserID: "u-1001", Username: "Jane Doe", PreferredUsername: "jane",
		Email: testLogin, EmailVerified: true, Groups: []string{"infra", "dev"},
	}
	return u
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// config is a working connector config for the upstream.
func (u *upstream) config() Config {
	return Config{
		Issuer: u.URL, ClientID: testClientID, ClientSecret: testClientSecret,
		RedirectURI: testRedirectURI, RootCAs: []string{u.CAFile},
	}
}

func newConnector(t *testing.T, cfg Config) *Connector {
	t.Helper()
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// login runs LoginURL, the upstream's pages, and returns the callback
// request and the connData.
func (u *upstream) login(t *testing.T, c *Connector, s connector.Scopes) (*http.Request, []byte) {
	t.Helper()
	loginURL, connData, err := c.LoginURL(context.Background(), s, testRedirectURI, testState)
	if err != nil {
		t.Fatalf("LoginURL: %v", err)
	}
	u.logins++
	u.Username = fmt.Sprintf("admin+%d@example.com", u.logins)
	resp, page, err := u.LoginPage(u.Browser(), loginURL)
	if err != nil {
		t.Fatalf("upstream login: %v (%s)", err, page)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, testRedirectURI+"?") {
		t.Fatalf("upstream redirected to %q, want the callback", loc)
	}
	if got := mustURL(t, loc).Query().Get("state"); got != testState {
		t.Fatalf("state came back as %q, want %q unchanged", got, testState)
	}
	return httptest.NewRequest(http.MethodGet, loc, nil), connData
}

// fullLogin logs in and handles the callback.
func (u *upstream) fullLogin(t *testing.T, c *Connector, s connector.Scopes) (connector.Identity, error) {
	t.Helper()
	r, connData := u.login(t, c, s)
	return c.HandleCallback(context.Background(), s, connData, r)
}

// subjectOf is the upstream gatehouse's "sub" for a user of its "local"
// connector: Dex's encoding, the protobuf {1: user_id, 2: conn_id}.
func subjectOf(userID string) string {
	return encodeSub(userID, "local")
}

// claimsOf decodes a JWT's payload (no checks: test inspection only).
func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sign signs claims with km's current key, as an ID token.
func sign(t *testing.T, km *keys.Manager, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := km.Sign(context.Background(), payload, keys.TypeIDToken)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// reissue returns a token-response rewriter that replaces the ID token
// with one signed by km, its claims changed by edit.
func reissue(t *testing.T, km *keys.Manager, edit func(claims map[string]any)) func(map[string]any) {
	return func(body map[string]any) {
		raw, ok := body["id_token"].(string)
		if !ok {
			t.Errorf("token response without id_token")
			return
		}
		claims := claimsOf(t, raw)
		edit(claims)
		body["id_token"] = sign(t, km, claims)
	}
}
