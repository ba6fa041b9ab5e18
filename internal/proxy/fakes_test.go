package proxy

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
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

	"github.com/go-jose/go-jose/v4"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// testIssuer is an OpenID provider over TLS: discovery, JWKS and tokens
// signed with its RSA key.
type testIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/keys",
			"authorization_endpoint": iss.srv.URL + "/auth", "token_endpoint": iss.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	iss.srv = httptest.NewTLSServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func (i *testIssuer) caPEM() string {
	return string(pemCert(i.srv.Certificate().Raw))
}

// token signs claims; iss, aud, iat and exp are filled unless given.
func (i *testIssuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": i.srv.URL, "aud": "kubernetes", "sub": "Cg1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
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
`, i.srv.URL, indent(i.caPEM(), "      "))
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
