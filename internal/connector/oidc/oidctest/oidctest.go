// Package oidctest runs a workload-token issuer for tests: an OpenID
// provider shaped like GitHub Actions' (https://token.actions.githubusercontent.com),
// with its own keys, a discovery document and a JWKS, that mints tokens
// with whatever claims and header a test asks for, including the
// malformed and forged ones an attacker would send.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// WorkloadIssuer is a running workload-token issuer.
type WorkloadIssuer struct {
	// URL is the issuer URL (https://127.0.0.1:PORT).
	URL string
	// CAPEM is the PEM of the serving certificate, for rootCAs.
	CAPEM string

	mu   sync.Mutex
	keys []*rsa.PrivateKey // published; the last one signs
	kids []string

	jwksRequests atomic.Int64
}

// Start runs a workload-token issuer until t ends.
func Start(t testing.TB) *WorkloadIssuer {
	t.Helper()
	w := New()
	ts := httptest.NewTLSServer(w.Handler())
	t.Cleanup(ts.Close)
	w.URL = ts.URL
	w.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
	return w
}

// New returns a workload-token issuer with one signing key, to be served
// by the caller (Handler) at URL, which the caller sets.
func New() *WorkloadIssuer {
	w := &WorkloadIssuer{}
	w.Rotate()
	return w
}

// Handler serves the discovery document, the JWKS, and /stats (the JWKS
// request count, as JSON).
func (w *WorkloadIssuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, map[string]any{
			"issuer": w.URL, "jwks_uri": w.URL + "/.well-known/jwks",
			"subject_types_supported": []string{"public", "pairwise"}, "response_types_supported": []string{"id_token"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_owner", "environment", "job_workflow_ref"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "scopes_supported": []string{"openid"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(rw http.ResponseWriter, r *http.Request) {
		w.jwksRequests.Add(1)
		w.mu.Lock()
		var set jose.JSONWebKeySet
		for i, k := range w.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: w.kids[i], Algorithm: "RS256", Use: "sig"})
		}
		w.mu.Unlock()
		writeJSON(rw, set)
	})
	mux.HandleFunc("GET /stats", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, map[string]int64{"jwks_requests": w.JWKSRequests()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Rotate publishes a new signing key; the old ones stay published.
func (w *WorkloadIssuer) Rotate() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = append(w.keys, k)
	w.kids = append(w.kids, fmt.Sprintf("workload-key-%d", len(w.keys)))
}

// JWKSRequests counts the requests for the JWKS.
func (w *WorkloadIssuer) JWKSRequests() int64 { return w.jwksRequests.Load() }

// GitHubClaims are the claims of a GitHub Actions job token of
// repository repo (owner/name) running in environment env, for audience
// aud, valid for five minutes from now.
func (w *WorkloadIssuer) GitHubClaims(repo, env, aud string) map[string]any {
	return w.GitHubClaimsFor(repo, env, aud, 5*time.Minute)
}

// GitHubClaimsFor is GitHubClaims valid for ttl.
func (w *WorkloadIssuer) GitHubClaimsFor(repo, env, aud string, ttl time.Duration) map[string]any {
	now := time.Now()
	owner := repo
	for i := range repo {
		if repo[i] == '/' {
			owner = repo[:i]
			break
		}
	}
	return map[string]any{
		"iss": w.URL, "aud": aud,
		"sub":        "repo:" + repo + ":environment:" + env,
		"repository": repo, "repository_owner": owner, "repository_id": "123456", "repository_owner_id": "654321",
		"ref": "refs/heads/main", "ref_type": "branch", "environment": env, "event_name": "push",
		"job_workflow_ref": repo + "/.github/workflows/deploy.yml@refs/heads/main",
		"workflow":         "deploy", "actor": "octocat", "run_id": "42", "jti": fmt.Sprint(now.UnixNano()),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
}

// Sign signs claims with the current key (RS256, with its kid).
func (w *WorkloadIssuer) Sign(claims map[string]any) string {
	w.mu.Lock()
	k, kid := w.keys[len(w.keys)-1], w.kids[len(w.kids)-1]
	w.mu.Unlock()
	return SignWith(jose.RS256, jose.JSONWebKey{Key: k, KeyID: kid}, claims)
}

// SignUnpublished signs claims with a fresh key the issuer does not
// publish, under kid.
func (w *WorkloadIssuer) SignUnpublished(kid string, claims map[string]any) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return SignWith(jose.RS256, jose.JSONWebKey{Key: k, KeyID: kid}, claims)
}

// SignHS256WithPublicKey is the algorithm confusion attack: an HMAC
// signature whose secret is the issuer's public key (DER, as a careless
// verifier would use it), under the real kid.
func (w *WorkloadIssuer) SignHS256WithPublicKey(claims map[string]any) string {
	w.mu.Lock()
	k, kid := w.keys[len(w.keys)-1], w.kids[len(w.kids)-1]
	w.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return SignWith(jose.HS256, jose.JSONWebKey{Key: der, KeyID: kid}, claims)
}

// Unsigned returns the claims as a JWT with alg "none" and no signature.
func Unsigned(claims map[string]any) string {
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// SignWith signs claims with key under alg (typ JWT).
func SignWith(alg jose.SignatureAlgorithm, key jose.JSONWebKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(body)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}
