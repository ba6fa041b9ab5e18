// Package workload is a CI platform's token service for the end-to-end
// suite: an OpenID provider with its own TLS certificate and signing key
// whose tokens are shaped like GitHub Actions' (sub
// repo:OWNER/REPO:environment:ENV, repository, repository_owner,
// repository_owner_id, ref, environment, job_workflow_ref, the audience
// the job asks for), and the endpoint GitHub gives each job
// (ACTIONS_ID_TOKEN_REQUEST_URL, answered to the job's
// ACTIONS_ID_TOKEN_REQUEST_TOKEN with {"value": JWT}). Discovery, keys
// and signing are oidctest's workload issuer; this package adds the jobs.
package workload

import (
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

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
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

	w  *oidctest.WorkloadIssuer
	mu sync.Mutex
	// jobs: request token -> job.
	jobs map[string]Job
	// Requests counts the job token requests.
	requests int
}

// Start serves the provider until t ends; the CA file is written to dir.
func Start(t testing.TB, dir string) *Issuer {
	t.Helper()
	i := &Issuer{w: oidctest.New(), jobs: map[string]Job{}, TTL: 5 * time.Minute}
	mux := http.NewServeMux()
	mux.Handle("/", i.w.Handler()) // discovery and JWKS
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	i.URL = srv.URL
	i.w.URL = srv.URL
	i.CAFile = filepath.Join(dir, "workload-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(i.CAFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
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
		writeJSON(w, map[string]any{"count": 1, "value": i.Token(job, aud)})
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
func (i *Issuer) Token(job Job, aud string) string {
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
	return i.w.Sign(claims)
}
