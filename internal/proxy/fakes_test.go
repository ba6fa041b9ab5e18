package proxy

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
)

// testIssuer is an OpenID provider over TLS (oidctest's): discovery, JWKS
// and tokens signed with its RSA key.
type testIssuer struct{ *oidctest.WorkloadIssuer }

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	return &testIssuer{oidctest.Start(t)}
}

// token signs claims; iss, aud, sub, iat and exp are filled unless given
// (a nil value leaves the claim out).
func (i *testIssuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": i.URL, "aud": "kubernetes", "sub": "Cg1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return i.Sign(c)
}

// authnConfigFile writes the AuthenticationConfiguration `gatehouse
// cluster render` would write for these issuers.
func authnConfigFile(t testing.TB, issuers ...*testIssuer) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n")
	for _, i := range issuers {
		fmt.Fprintf(&b, `- issuer:
    url: %s
    audiences: [kubernetes]
    certificateAuthority: |
%s
  claimMappings:
    username: {claim: preferred_username, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
    uid: {claim: sub}
  claimValidationRules:
  - expression: "claims.preferred_username != 'blocked'"
    message: blocked user
`, i.URL, indent(i.CAPEM, "      "))
	}
	p := filepath.Join(t.TempDir(), "authentication-config.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

// seen is one request as the fake API server received it.
type seen struct {
	Method, Path string
	Header       http.Header
}

// fakeAPIServer stands where kube-apiserver would: it records every
// request it receives, answers SubjectAccessReviews from allow, echoes
// the impersonated user on other paths, and on /echo upgrades the
// connection and echoes bytes.
type fakeAPIServer struct {
	srv   *httptest.Server
	allow func(authorizationv1.SubjectAccessReviewSpec) bool

	mu   sync.Mutex
	reqs []seen
	sars []authorizationv1.SubjectAccessReviewSpec
}

func newFakeAPIServer(t testing.TB, allow func(authorizationv1.SubjectAccessReviewSpec) bool) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{allow: allow}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer proxy-token" {
		http.Error(w, "the proxy's own credentials are missing", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
		var sar authorizationv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.sars = append(f.sars, sar.Spec)
		f.mu.Unlock()
		sar.Status.Allowed = f.allow != nil && f.allow(sar.Spec)
		sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sar)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	f.mu.Unlock()
	if r.URL.Path == "/echo" {
		f.echo(w, r)
		return
	}
	if r.URL.Query().Get("watch") == "1" {
		// An idle watch: headers, then nothing until the client leaves.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"user": r.Header.Get("Impersonate-User"), "groups": r.Header.Values("Impersonate-Group"), "proto": r.Proto})
}

// echo answers an upgrade with 101 and then echoes what it reads.
func (f *fakeAPIServer) echo(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") == "" {
		http.Error(w, "upgrade required", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", r.Header.Get("Upgrade"))
	_ = rw.Flush()
	br := bufio.NewReader(rw)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(conn, "echo: "+line); err != nil {
			return
		}
	}
}

func (f *fakeAPIServer) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func (f *fakeAPIServer) reviews() []authorizationv1.SubjectAccessReviewSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]authorizationv1.SubjectAccessReviewSpec(nil), f.sars...)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
