package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// memorySink keeps audit events (a fake of the webhook backend).
type memorySink struct {
	mu     sync.Mutex
	events []auditinternal.Event
}

func (s *memorySink) ProcessEvents(evs ...*auditinternal.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.events = append(s.events, *e.DeepCopy())
	}
	return true
}

func (s *memorySink) all() []auditinternal.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]auditinternal.Event(nil), s.events...)
}

type testProxy struct {
	iss   *testIssuer
	api   *fakeAPIServer
	srv   *httptest.Server
	audit *memorySink
	chain Chain
}

// newTestProxy runs the proxy's handler chain, over TLS, in front of a
// fake API server, with a real JWT authenticator for iss.
func newTestProxy(t testing.TB, allow func(authorizationv1.SubjectAccessReviewSpec) bool, upstreamPath string) *testProxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &testProxy{iss: newTestIssuer(t), api: newFakeAPIServer(t, allow), audit: &memorySink{}}
	compiler := authenticationcel.NewDefaultCompiler()
	cfg, err := LoadAuthenticationConfig(authnConfigFile(t, p.iss), compiler)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := NewAuthenticator(ctx, cfg, compiler)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for authn.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("authenticator not ready: %v", authn.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc := &rest.Config{Host: p.api.srv.URL + upstreamPath, BearerToken: "proxy-token",
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte(caOf(p.api.srv))}}
	up, err := NewUpstream(rc, false)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := NewImpersonationAuthorizer(rc)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := LoadAuditPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p.chain = Chain{Authenticator: authn, Impersonation: imp, Upstream: up, AuditSink: p.audit, AuditPolicy: pol, Log: log}
	p.srv = httptest.NewUnstartedServer(p.chain.Handler())
	p.srv.EnableHTTP2 = true
	p.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

func caOf(s *httptest.Server) string {
	return string(pemCert(s.Certificate().Raw))
}

func (p *testProxy) do(t *testing.T, c *http.Client, method, path, token string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// aliceMayImpersonate allows oidc:alice (legacy impersonate verb) to
// impersonate anyone and denies everything else.
func aliceMayImpersonate(s authorizationv1.SubjectAccessReviewSpec) bool {
	return s.User == "oidc:alice" && s.ResourceAttributes != nil && s.ResourceAttributes.Verb == "impersonate"
}

func TestProxy(t *testing.T) {
	p := newTestProxy(t, aliceMayImpersonate, "")
	other := newTestIssuer(t)
	alice := map[string]any{"preferred_username": "alice", "groups": []string{"exampleorg:infra-team"}, "sub": "u-1"}
	bob := map[string]any{"preferred_username": "bob", "sub": "u-2"}
	with := func(base map[string]any, kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bundle, err := tlsutil.NewBundle([]string{"client"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(bundle.ServerCert, bundle.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	plain := p.srv.Client()
	certTransport := plain.Transport.(*http.Transport).Clone()
	certTransport.TLSClientConfig.Certificates = []tls.Certificate{clientCert}
	withCert := &http.Client{Transport: certTransport}

	type want struct {
		status int
		// forwarded: the API server received the request, as user/groups.
		forwarded bool
		user      string
		groups    []string
		uid       string
		extra     map[string]string // header name -> value
		reason    string            // in the Status body
	}
	tests := []struct {
		name   string
		token  string
		header http.Header
		client *http.Client
		path   string
		want   want
	}{
		{name: "person with groups", token: p.iss.token(t, alice),
			want: want{status: 200, forwarded: true, user: "oidc:alice", groups: []string{"oidc:exampleorg:infra-team", "system:authenticated"}, uid: "u-1"}},
		{name: "person with no groups gets system:authenticated", token: p.iss.token(t, bob),
			want: want{status: 200, forwarded: true, user: "oidc:bob", groups: []string{"system:authenticated"}, uid: "u-2"}},
		{name: "jti becomes the credential-id extra, percent-encoded", token: p.iss.token(t, with(bob, "jti", "abc")),
			want: want{status: 200, forwarded: true, user: "oidc:bob", groups: []string{"system:authenticated"}, uid: "u-2",
				extra: map[string]string{"Impersonate-Extra-Authentication.kubernetes.io%2fcredential-Id": "JTI=abc"}}},
		{name: "no token is 401, never the proxy's rights", want: want{status: 401, reason: "Unauthorized"}},
		{name: "token for another audience", token: p.iss.token(t, with(alice, "aud", "other")), want: want{status: 401}},
		{name: "expired token", token: p.iss.token(t, with(alice, "exp", time.Now().Add(-time.Minute).Unix(), "iat", time.Now().Add(-time.Hour).Unix())), want: want{status: 401}},
		{name: "alg none", token: oidctest.Unsigned(with(alice, "iss", p.iss.URL, "aud", "kubernetes", "exp", time.Now().Add(time.Hour).Unix())), want: want{status: 401}},
		{name: "token from another issuer", token: other.token(t, alice), want: want{status: 401}},
		{name: "token signed by another key claiming our issuer", token: other.token(t, with(alice, "iss", p.iss.URL)), want: want{status: 401}},
		{name: "CEL claim validation rule", token: p.iss.token(t, with(alice, "preferred_username", "blocked")), want: want{status: 401}},
		{name: "client certificate and token are refused", token: p.iss.token(t, alice), client: withCert, want: want{status: 401, reason: "client certificates"}},
		{name: "client Impersonate-User system:admin without the right", token: p.iss.token(t, bob),
			header: http.Header{"Impersonate-User": {"system:admin"}}, want: want{status: 403, reason: "cannot impersonate"}},
		{name: "client Impersonate-Group system:masters alone is a 400", token: p.iss.token(t, bob),
			header: http.Header{"Impersonate-Group": {"system:masters"}}, want: want{status: 400}},
		{name: "client Impersonate-User and -Group system:masters without the right", token: p.iss.token(t, bob),
			header: http.Header{"Impersonate-User": {"x"}, "Impersonate-Group": {"system:masters"}}, want: want{status: 403}},
		{name: "X-Remote-User and friends are stripped", token: p.iss.token(t, bob),
			header: http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Group": {"system:masters"}, "X-Remote-Extra-Scopes": {"all"}, "X-Forwarded-User": {"admin"}},
			want:   want{status: 200, forwarded: true, user: "oidc:bob", groups: []string{"system:authenticated"}, uid: "u-2"}},
		{name: "kubectl --as allowed: exactly system:authenticated", token: p.iss.token(t, alice),
			header: http.Header{"Impersonate-User": {"jane"}}, want: want{status: 200, forwarded: true, user: "jane", groups: []string{"system:authenticated"}}},
		{name: "kubectl --as --as-group allowed", token: p.iss.token(t, alice),
			header: http.Header{"Impersonate-User": {"jane"}, "Impersonate-Group": {"devs"}}, want: want{status: 200, forwarded: true, user: "jane", groups: []string{"devs", "system:authenticated"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.api.requests())
			c := tc.client
			if c == nil {
				c = plain
			}
			path := tc.path
			if path == "" {
				path = "/api/v1/namespaces/default/configmaps/x"
			}
			resp, body := p.do(t, c, http.MethodGet, path, tc.token, tc.header)
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want.status, body)
			}
			if tc.want.reason != "" && !strings.Contains(string(body), tc.want.reason) {
				t.Errorf("body %s does not mention %q", body, tc.want.reason)
			}
			if resp.StatusCode >= 400 && !strings.Contains(string(body), `"kind":"Status"`) {
				t.Errorf("error body is not a Status: %s", body)
			}
			reqs := p.api.requests()[before:]
			if !tc.want.forwarded {
				if len(reqs) != 0 {
					t.Fatalf("the API server received %d request(s), want none: %+v", len(reqs), reqs)
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("the API server received %d requests, want 1", len(reqs))
			}
			h := reqs[0].Header
			if got := h.Get("Impersonate-User"); got != tc.want.user {
				t.Errorf("Impersonate-User %q, want %q", got, tc.want.user)
			}
			if got := h.Values("Impersonate-Group"); !slices.Equal(got, tc.want.groups) {
				t.Errorf("Impersonate-Group %q, want %q", got, tc.want.groups)
			}
			if got := h.Get("Impersonate-Uid"); got != tc.want.uid {
				t.Errorf("Impersonate-Uid %q, want %q", got, tc.want.uid)
			}
			for name, vs := range h {
				if strings.HasPrefix(name, "Impersonate-Extra-") {
					if want, ok := tc.want.extra[name]; !ok || len(vs) != 1 || vs[0] != want {
						t.Errorf("%s: %q, want %q", name, vs, want)
					}
				}
				if strings.HasPrefix(name, "X-Remote-") || name == "X-Forwarded-User" {
					t.Errorf("the client's %s reached the API server: %q", name, vs)
				}
			}
			for name, want := range tc.want.extra {
				if h.Get(name) != want {
					t.Errorf("%s missing (headers %v)", name, h)
				}
			}
			if got := h.Get("Authorization"); got != "Bearer proxy-token" {
				t.Errorf("Authorization %q: the client's token reached the API server", got)
			}
		})
	}

	t.Run("--as is checked for the person with a SubjectAccessReview", func(t *testing.T) {
		var found bool
		for _, s := range p.api.reviews() {
			if s.User == "oidc:bob" && s.ResourceAttributes != nil && s.ResourceAttributes.Name == "system:admin" {
				found = true
				if !slices.Contains(s.Groups, "system:authenticated") || s.UID != "u-2" {
					t.Errorf("review for bob lacks his groups or uid: %+v", s)
				}
			}
		}
		if !found {
			t.Errorf("no SubjectAccessReview for oidc:bob impersonating system:admin: %+v", p.api.reviews())
		}
	})
	t.Run("refused requests are audited as kube-apiserver audits them", func(t *testing.T) {
		var unauthenticated int
		for _, e := range p.audit.all() {
			if e.ResponseStatus != nil && e.ResponseStatus.Code == 401 && e.User.Username == "" && e.Stage == auditinternal.StageResponseStarted {
				unauthenticated++
			}
		}
		// no token, five bad tokens, the CEL rule, the client certificate
		if unauthenticated < 8 {
			t.Errorf("%d audit events for the 8 refused requests", unauthenticated)
		}
	})
	t.Run("audit names the person and the impersonated user", func(t *testing.T) {
		var found bool
		for _, e := range p.audit.all() {
			if e.User.Username == "oidc:alice" && e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "jane" && e.Stage == auditinternal.StageResponseComplete {
				found = true
				if e.ObjectRef == nil || e.ObjectRef.Resource != "configmaps" || e.ObjectRef.Name != "x" || e.ResponseStatus == nil || e.ResponseStatus.Code != 200 {
					t.Errorf("event %+v lacks objectRef or responseStatus", e)
				}
			}
		}
		if !found {
			t.Errorf("no ResponseComplete event with user oidc:alice impersonating jane among %d events", len(p.audit.all()))
		}
	})
}

// TestUpstreamWithoutPath: an upstream URL with no path must not turn
// GETs into 301s (UpgradeAwareHandler's root-path redirect).
func TestUpstreamWithoutPath(t *testing.T) {
	for _, path := range []string{"", "/"} {
		p := newTestProxy(t, nil, path)
		resp, body := p.do(t, p.srv.Client(), http.MethodGet, "/version", p.iss.token(t, map[string]any{"preferred_username": "a"}), nil)
		if resp.StatusCode != 200 {
			t.Errorf("upstream %q: status %d: %s", path, resp.StatusCode, body)
		}
	}
}

// TestUpgrade proxies an upgraded connection (as exec, attach and
// port-forward use) to an echo endpoint: bytes go both ways, the API
// server sees the proxy's credentials and the person's identity, and the
// client's token does not reach it.
func TestUpgrade(t *testing.T) {
	p := newTestProxy(t, nil, "")
	for _, proto := range []string{"websocket", "SPDY/3.1"} {
		t.Run(proto, func(t *testing.T) {
			conf := &tls.Config{RootCAs: p.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, NextProtos: []string{"http/1.1"}}
			conn, err := tls.Dial("tcp", strings.TrimPrefix(p.srv.URL, "https://"), conf)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tok := p.iss.token(t, map[string]any{"preferred_username": "alice"})
			req, _ := http.NewRequest(http.MethodGet, p.srv.URL+"/echo", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", proto)
			req.Header.Set("X-Remote-User", "system:admin")
			if err := req.Write(conn); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			for _, msg := range []string{"hello\n", "second line\n"} {
				if _, err := io.WriteString(conn, msg); err != nil {
					t.Fatal(err)
				}
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if got != "echo: "+msg {
					t.Errorf("read %q, want %q", got, "echo: "+msg)
				}
			}
			reqs := p.api.requests()
			last := reqs[len(reqs)-1]
			if last.Path != "/echo" || last.Header.Get("Impersonate-User") != "oidc:alice" || last.Header.Get("Authorization") != "Bearer proxy-token" || last.Header.Get("X-Remote-User") != "" {
				t.Errorf("the API server saw %s with headers %v", last.Path, last.Header)
			}
		})
	}
}
