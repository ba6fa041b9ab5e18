// Package workload is a CI platform's token service for the end-to-end
// suite: an OpenID provider with its own TLS certificate and signing key
// whose tokens are shaped like GitHub Actions' (sub
// repo:OWNER/REPO:environment:ENV, repository, repository_owner,
// repository_owner_id, ref, environment, job_workflow_ref, the audience
// the job asks for), and the endpoint GitHub gives each job
// (ACTIONS_ID_TOKEN_REQUEST_URL, answered to the job's
// ACTIONS_ID_TOKEN_REQUEST_TOKEN with {"value": JWT}).
package workload

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Job is one workflow run's identity.
type Job struct {
	Repository  string // OWNER/REPO
	OwnerID     string // repository_owner_id
	Environment string
	Ref         string
}

// Issuer is a running token service.
type Issuer struct {
	// URL is the issuer (the tokens' iss).
	URL string
	// CAFile holds the PEM CA of its TLS certificate.
	CAFile string
	// TTL of the tokens (default 5 minutes, as GitHub's).
	TTL time.Duration

	key *rsa.PrivateKey
	mu  sync.Mutex
	// jobs: request token -> job.
	jobs map[string]Job
	// Requests counts the job token requests.
	requests int
}

// Start serves the provider until t ends; the CA file is written to dir.
func Start(t testing.TB, dir string) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	i := &Issuer{key: key, jobs: map[string]Job{}, TTL: 5 * time.Minute}
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	i.URL = srv.URL
	i.CAFile = filepath.Join(dir, "workload-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(i.CAFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		// GitHub's document has no authorization or token endpoint.
		writeJSON(w, map[string]any{"issuer": i.URL, "jwks_uri": i.URL + "/.well-known/jwks",
			"subject_types_supported": []string{"public", "pairwise"}, "response_types_supported": []string{"id_token"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_owner", "repository_owner_id", "environment", "job_workflow_ref"}})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "workload-1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /_apis/token", func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		job, ok := i.jobs[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		i.requests++
		i.mu.Unlock()
		if !ok || r.URL.Query().Get("api-version") != "2.0" {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]string{"message": "Unauthorized"})
			return
		}
		aud := r.URL.Query().Get("audience")
		if aud == "" {
			aud = "https://github.com/" + strings.Split(job.Repository, "/")[0]
		}
		writeJSON(w, map[string]any{"count": 1, "value": i.Token(t, job, aud)})
	})
	return i
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// AddJob lets the holder of requestToken ask for job's tokens.
func (i *Issuer) AddJob(requestToken string, job Job) {
	i.mu.Lock()
	i.jobs[requestToken] = job
	i.mu.Unlock()
}

// RequestURL is the job's ACTIONS_ID_TOKEN_REQUEST_URL.
func (i *Issuer) RequestURL() string { return i.URL + "/_apis/token?api-version=2.0" }

// Requests is the number of job token requests so far.
func (i *Issuer) Requests() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.requests
}

// Token signs a token for job with audience aud.
func (i *Issuer) Token(t testing.TB, job Job, aud string) string {
	now := time.Now()
	owner := strings.Split(job.Repository, "/")[0]
	claims := map[string]any{
		"iss": i.URL, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(i.TTL).Unix(), "jti": now.Format(time.RFC3339Nano),
		"sub":        "repo:" + job.Repository + ":environment:" + job.Environment,
		"repository": job.Repository, "repository_owner": owner, "repository_owner_id": job.OwnerID,
		"ref": job.Ref, "environment": job.Environment, "event_name": "push", "ref_type": "branch",
		"job_workflow_ref":   job.Repository + "/.github/workflows/deploy.yml@" + job.Ref,
		"runner_environment": "github-hosted",
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.key, KeyID: "workload-1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}
