package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// exchangeIssuer is the wire of the token exchange contract
// (docs/kubectl-plugin.md, RFC 8693): discovery, keys, and a token
// endpoint with the refresh_token grant and the token exchange grant. It
// verifies what it is sent as the contract says the issuer does (the
// subject's signature, issuer, expiry and audience; the target's
// trustedPeers; the connector a client may use) and answers in RFC 8693's
// shape, so the plugin's requests and its reading of the answers are
// tested, not our own results. It records every token request.
type exchangeIssuer struct {
	*httptest.Server
	t     *testing.T
	key   *rsa.PrivateKey
	clock *fakeClock
	// trustedPeers: audience client ID -> clients it trusts.
	trustedPeers map[string][]string
	// workload is the upstream CI issuer behind the connector
	// "github-actions", whose tokens must have aud "gatehouse".
	workload *workloadIssuer
	// wrongAudience makes the endpoint issue its token for another
	// audience than asked (a broken or malicious issuer).
	wrongAudience bool
	// exchangeDown makes the exchange answer 503 temporarily_unavailable
	// (an outage of the issuer's storage or upstream).
	exchangeDown bool

	mu       sync.Mutex
	requests []map[string]string
}

const (
	pluginClient = "kubernetes"
	loginSub     = "user-1"
)

func startExchangeIssuer(t *testing.T, clock *fakeClock) *exchangeIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &exchangeIssuer{t: t, key: key, clock: clock, trustedPeers: map[string][]string{
		"prod": {pluginClient}, "staging": {pluginClient}, "untrusting": {"someone-else"},
	}}
	mux := http.NewServeMux()
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "authorization_endpoint": s.URL + "/auth",
			"token_endpoint": s.URL + "/token", "jwks_uri": s.URL + "/keys", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":      []string{"openid", "groups", "offline_access"},
			"grant_types_supported": []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"}})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", s.token)
	return s
}

// idToken signs an ID token of this issuer.
func (s *exchangeIssuer) idToken(claims map[string]any) string {
	return signJWT(s.t, s.key, "k", claims)
}

func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
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

// verifyJWT checks an RS256 signature with key and returns the claims.
func verifyJWT(raw string, key *rsa.PublicKey) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	b, err := jws.Verify(key)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}

// loginToken is a fresh login ID token (aud = the plugin's client).
func (s *exchangeIssuer) loginToken(ttl time.Duration) string {
	now := s.clock.Now()
	return s.idToken(map[string]any{"iss": s.URL, "sub": loginSub, "aud": pluginClient, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"name": "Jane", "groups": []string{"exampleorg:infra"}})
}

func (s *exchangeIssuer) count(grant, audience string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if strings.HasSuffix(r["grant_type"], grant) && (audience == "*" || r["audience"] == audience) {
			n++
		}
	}
	return n
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *exchangeIssuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, 400, "invalid_request", err.Error())
		return
	}
	rec := map[string]string{}
	for k := range r.PostForm {
		rec[k] = r.PostForm.Get(k)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	client := r.PostForm.Get("client_id") // the plugin's client is public
	if _, _, ok := r.BasicAuth(); ok || client != pluginClient {
		oauthError(w, 401, "invalid_client", "unknown client")
		return
	}
	now := s.clock.Now()
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		if r.PostForm.Get("refresh_token") != "refresh-1" {
			oauthError(w, 400, "invalid_grant", "unknown refresh token")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "bearer", "expires_in": 3600,
			"refresh_token": "refresh-1", "id_token": s.loginToken(time.Hour)})
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		s.exchange(w, r, now)
	default:
		oauthError(w, 400, "unsupported_grant_type", "")
	}
}

func (s *exchangeIssuer) exchange(w http.ResponseWriter, r *http.Request, now time.Time) {
	if s.exchangeDown {
		w.Header().Set("Retry-After", "30")
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "storage unavailable")
		return
	}
	f := r.PostForm
	for _, p := range []string{"subject_token", "subject_token_type"} {
		if f.Get(p) == "" {
			oauthError(w, 400, "invalid_request", "missing "+p)
			return
		}
	}
	if f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" || f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:id_token" {
		oauthError(w, 400, "invalid_request", "this test issuer exchanges ID tokens for ID tokens")
		return
	}
	if slices.Contains(strings.Fields(f.Get("scope")), "offline_access") {
		oauthError(w, 400, "invalid_request", "no refresh token for an exchange: offline_access asked")
		return
	}
	var claims map[string]any
	var subjectExp time.Time
	if conn := f.Get("connector_id"); conn != "" {
		if conn != "github-actions" || s.workload == nil {
			oauthError(w, 401, "unauthorized_client", "connector "+conn+" is not allowed for this client")
			return
		}
		c, err := verifyJWT(f.Get("subject_token"), &s.workload.key.PublicKey)
		if err != nil || c["iss"] != s.workload.URL || c["aud"] != "gatehouse" || time.Unix(int64(c["exp"].(float64)), 0).Before(now) {
			oauthError(w, 400, "invalid_grant", fmt.Sprintf("subject token not valid for the connector (%v)", err))
			return
		}
		subjectExp = time.Unix(int64(c["exp"].(float64)), 0)
		claims = map[string]any{"sub": c["sub"], "name": c["repository"], "groups": []string{"gha:" + c["repository"].(string)}}
	} else {
		c, err := verifyJWT(f.Get("subject_token"), &s.key.PublicKey)
		if err != nil || c["iss"] != s.URL || c["aud"] != pluginClient {
			oauthError(w, 400, "invalid_grant", fmt.Sprintf("subject token is not this issuer's ID token for the client (%v)", err))
			return
		}
		subjectExp = time.Unix(int64(c["exp"].(float64)), 0)
		if !subjectExp.After(now) {
			oauthError(w, 400, "invalid_grant", "subject token expired")
			return
		}
		if f.Get("audience") == "" {
			oauthError(w, 400, "invalid_request", "audience is required to exchange this issuer's ID token")
			return
		}
		claims = map[string]any{"sub": c["sub"], "name": c["name"], "groups": c["groups"]}
	}
	aud := pluginClient
	if a := f.Get("audience"); a != "" {
		peers, ok := s.trustedPeers[a]
		if !ok || !slices.Contains(peers, pluginClient) {
			oauthError(w, 400, "invalid_target", "client "+a+" does not trust "+pluginClient)
			return
		}
		aud = a
	}
	if s.wrongAudience {
		aud = "other-cluster"
	}
	exp := now.Add(time.Hour)
	if subjectExp.Before(exp) {
		exp = subjectExp
	}
	claims["iss"], claims["aud"], claims["azp"], claims["iat"], claims["exp"] = s.URL, aud, pluginClient, now.Unix(), exp.Unix()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": s.idToken(claims),
		"issued_token_type": "urn:ietf:params:oauth:token-type:id_token", "token_type": "bearer", "expires_in": int(exp.Sub(now).Seconds())})
}

// workloadIssuer is a CI platform: its own keys, tokens shaped like
// GitHub Actions' (repository, ref, environment...), served at the
// request URL GitHub gives a job (ACTIONS_ID_TOKEN_REQUEST_URL) to the
// holder of the job's request token.
type workloadIssuer struct {
	*httptest.Server
	key   *rsa.PrivateKey
	clock *fakeClock
	// jobs: request token -> repository.
	jobs map[string]string

	mu        sync.Mutex
	audiences []string
}

func startWorkloadIssuer(t *testing.T, clock *fakeClock) *workloadIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wi := &workloadIssuer{key: key, clock: clock, jobs: map[string]string{"job-1": "exampleorg/deploy", "job-2": "exampleorg/other"}}
	wi.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, ok := wi.jobs[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if r.Method != http.MethodGet || r.URL.Path != "/token" || !ok || r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		aud := r.URL.Query().Get("audience")
		wi.mu.Lock()
		wi.audiences = append(wi.audiences, aud)
		wi.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": wi.token(t, repo, aud)})
	}))
	t.Cleanup(wi.Close)
	return wi
}

func (wi *workloadIssuer) token(t *testing.T, repo, aud string) string {
	now := wi.clock.Now()
	return signJWT(t, wi.key, "gh", map[string]any{"iss": wi.URL, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"sub": "repo:" + repo + ":environment:production", "repository": repo, "repository_owner": "exampleorg",
		"ref": "refs/heads/main", "environment": "production", "job_workflow_ref": repo + "/.github/workflows/deploy.yml@refs/heads/main"})
}

func (wi *workloadIssuer) requests() int {
	wi.mu.Lock()
	defer wi.mu.Unlock()
	return len(wi.audiences)
}

// noBrowser fails the test if anything opens a browser.
type noBrowser struct{ t *testing.T }

func (b noBrowser) Open(context.Context, string) (func(), error) {
	b.t.Errorf("a browser was opened")
	return nil, errors.New("no browser in this test")
}

type exchangeRig struct {
	t     *testing.T
	iss   *exchangeIssuer
	clock *fakeClock
	dir   string
	env   map[string]string
}

func newExchangeRig(t *testing.T) *exchangeRig {
	clock := newClock()
	return &exchangeRig{t: t, iss: startExchangeIssuer(t, clock), clock: clock, dir: filepath.Join(t.TempDir(), "cache"),
		env: map[string]string{"KUBERNETES_EXEC_INFO": execInfoV1}}
}

func (r *exchangeRig) args(extra ...string) []string {
	return append([]string{"kubectl-gatehouse", "get-token", "--oidc-issuer-url=" + r.iss.URL, "--oidc-client-id=" + pluginClient,
		"--oidc-extra-scope=groups", "--token-cache-dir=" + r.dir}, extra...)
}

func (r *exchangeRig) run(args ...string) result {
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), r.args(args...), cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Now: r.clock.Now, Opener: noBrowser{r.t}, Keyring: &memKeyring{},
		Getenv: func(k string) string { return r.env[k] },
	})
	return result{code, out.String(), errb.String()}
}

// claims runs get-token and returns the printed token's claims.
func (r *exchangeRig) claims(args ...string) map[string]any {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("get-token %q: exit %d\n%s", args, res.code, res.stderr)
	}
	tok, _ := tokenV1(r.t, res.stdout)
	c, err := verifyJWT(tok, &r.iss.key.PublicKey)
	if err != nil {
		r.t.Fatalf("printed token: %v", err)
	}
	return c
}

// seedLogin caches a login as a browser login would have: the login's
// entry, under kubelogin's name for these flags.
func (r *exchangeRig) seedLogin(idToken string) tokencache.Key {
	r.t.Helper()
	key := keyFor(r.t, r.args())
	if err := (tokencache.Store{Dir: r.dir}).Save(key, tokencache.Entry{IDToken: idToken, RefreshToken: "refresh-1"}); err != nil {
		r.t.Fatal(err)
	}
	return key
}

// One login per issuer, one token per cluster: each audience is
// exchanged once and then served from its own cache entry; the login is
// refreshed once when it expires, whichever cluster asks first.
func TestExchangeAudiencePerCluster(t *testing.T) {
	r := newExchangeRig(t)
	loginKey := r.seedLogin(r.iss.loginToken(time.Hour))

	prod := r.claims("--exchange-audience=prod")
	if prod["aud"] != "prod" || prod["sub"] != loginSub || prod["azp"] != pluginClient {
		t.Fatalf("prod token claims = %v", prod)
	}
	staging := r.claims("--exchange-audience=staging")
	if staging["aud"] != "staging" {
		t.Fatalf("staging token claims = %v", staging)
	}
	_ = r.claims("--exchange-audience=prod") // cached
	if n := r.iss.count("token-exchange", "prod"); n != 1 {
		t.Errorf("prod exchanged %d times, want 1 (the second run is a cache hit)", n)
	}
	if n := r.iss.count("refresh_token", "*"); n != 0 {
		t.Errorf("%d refreshes with a valid login", n)
	}
	for _, req := range r.iss.requests {
		if req["grant_type"] != "refresh_token" && (req["subject_token"] == "" || req["connector_id"] != "") {
			t.Errorf("exchange request %v: want the login's ID token as subject and no connector", req)
		}
	}

	// Three entries: the login (kubelogin's name, still with its refresh
	// token) and one per cluster, without a refresh token.
	files := cacheFiles(t, r.dir)
	if len(files) != 3 || !slices.Contains(files, loginKey.Checksum()) {
		t.Fatalf("cache files = %v, want the login's %s and one per audience", files, loginKey.Checksum())
	}
	for _, f := range files {
		var e tokencache.Entry
		b, _ := os.ReadFile(filepath.Join(r.dir, f))
		_ = json.Unmarshal(b, &e)
		if (f == loginKey.Checksum()) != (e.RefreshToken != "") {
			t.Errorf("entry %s: refresh token %q (only the login's entry keeps one)", f, e.RefreshToken)
		}
	}

	// The login expires: the exchanged tokens (never longer-lived than
	// it) expire with it; the first cluster refreshes the login, the
	// second reuses the refreshed login.
	r.clock.Add(time.Hour + time.Minute)
	prod2 := r.claims("--exchange-audience=prod")
	staging2 := r.claims("--exchange-audience=staging")
	if prod2["exp"].(float64) <= prod["exp"].(float64) || staging2["aud"] != "staging" {
		t.Errorf("after expiry: prod %v, staging %v", prod2, staging2)
	}
	if n := r.iss.count("refresh_token", "*"); n != 1 {
		t.Errorf("%d refreshes for two clusters, want one per issuer", n)
	}
	if n := r.iss.count("token-exchange", "*"); n != 4 {
		t.Errorf("%d exchanges, want 4 (two clusters, twice)", n)
	}
	// The plain login still works and is the same entry.
	plain := r.claims()
	if plain["aud"] != pluginClient {
		t.Errorf("get-token without --exchange-audience printed aud %v", plain["aud"])
	}
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if !strings.Contains(e.Name(), ".") {
			files = append(files, e.Name())
		}
	}
	return files
}

// The exchanged token's expiry is the issuer's: never later than the
// login's, so a cluster token does not outlive the session.
func TestExchangeLifetimeBoundedByLogin(t *testing.T) {
	r := newExchangeRig(t)
	r.seedLogin(r.iss.loginToken(10 * time.Minute))
	res := r.run("--exchange-audience=prod")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	tok, exp := tokenV1(t, res.stdout)
	jwtExp, _ := jwtpayload.Expiry(tok)
	if want := r.clock.Now().Add(10 * time.Minute); !exp.Equal(want) || !jwtExp.Equal(want) {
		t.Errorf("ExecCredential expiry %v (token %v), want the login's %v", exp, jwtExp, want)
	}
}

// Refusals are the RFC's error codes, with what to do; nothing is cached.
func TestExchangeRefused(t *testing.T) {
	r := newExchangeRig(t)
	r.seedLogin(r.iss.loginToken(time.Hour))
	for _, tt := range []struct {
		aud, want string
	}{
		{"untrusting", "invalid_target: client untrusting does not trust kubernetes (the cluster's client must list this client in its trustedPeers"},
		{"unknown-cluster", "invalid_target"},
	} {
		res := r.run("--exchange-audience=" + tt.aud)
		if res.code == 0 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want an error with %q", tt.aud, res.code, res.stdout, res.stderr, tt.want)
		}
	}
	if files := cacheFiles(t, r.dir); len(files) != 1 {
		t.Errorf("cache files after refusals = %v, want only the login", files)
	}
}

// A token issued for another audience than asked is not printed: the
// plugin verifies what it got (signature, issuer, aud, expiry).
func TestExchangeWrongAudienceRejected(t *testing.T) {
	r := newExchangeRig(t)
	r.seedLogin(r.iss.loginToken(time.Hour))
	r.iss.wrongAudience = true
	res := r.run("--exchange-audience=prod")
	if res.code == 0 || res.stdout != "" || !strings.Contains(res.stderr, "verify the issued ID token") || !strings.Contains(res.stderr, "other-cluster") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the token refused", res.code, res.stdout, res.stderr)
	}
}

// CI: the job's token from GitHub Actions, exchanged through the
// connector, cached per job; no browser, ever.
func TestExchangeGitHubActions(t *testing.T) {
	r := newExchangeRig(t)
	wi := startWorkloadIssuer(t, r.clock)
	r.iss.workload = wi
	ci := []string{"--subject-token-source=github-actions", "--connector-id=github-actions", "--subject-token-audience=gatehouse"}
	r.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = wi.URL + "/token?api-version=2.0"
	r.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "job-1"

	c := r.claims(ci...)
	if c["aud"] != pluginClient || c["sub"] != "repo:exampleorg/deploy:environment:production" || !slices.Contains(c["groups"].([]any), any("gha:exampleorg/deploy")) {
		t.Fatalf("claims = %v", c)
	}
	if wi.audiences[0] != "gatehouse" {
		t.Errorf("GitHub was asked for audience %q, want gatehouse", wi.audiences[0])
	}
	_ = r.claims(ci...)
	if n := wi.requests(); n != 1 {
		t.Errorf("%d GitHub token requests for two runs of one job, want 1 (cached)", n)
	}
	// Another job on the same runner (same HOME) gets its own token,
	// never the first job's.
	r.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "job-2"
	c2 := r.claims(ci...)
	if c2["sub"] != "repo:exampleorg/other:environment:production" {
		t.Errorf("second job's token is for %v", c2["sub"])
	}
	// With --exchange-audience, the CI token is for that cluster.
	c3 := r.claims(append(ci, "--exchange-audience=prod")...)
	if c3["aud"] != "prod" {
		t.Errorf("aud = %v, want prod", c3["aud"])
	}
}

// The other sources: a file (e.g. a projected token) and a variable.
func TestExchangeFileAndEnvSources(t *testing.T) {
	r := newExchangeRig(t)
	wi := startWorkloadIssuer(t, r.clock)
	r.iss.workload = wi
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(wi.token(t, "exampleorg/deploy", "gatehouse")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := r.claims("--subject-token-source=file:"+file, "--connector-id=github-actions"); c["name"] != "exampleorg/deploy" {
		t.Errorf("file source: %v", c)
	}
	r.env["CI_JOB_JWT"] = wi.token(t, "exampleorg/other", "gatehouse")
	if c := r.claims("--subject-token-source=env:CI_JOB_JWT", "--connector-id=github-actions"); c["name"] != "exampleorg/other" {
		t.Errorf("env source: %v", c)
	}
	// A token the connector does not accept (wrong audience) is the
	// issuer's invalid_grant.
	r.env["CI_JOB_JWT"] = wi.token(t, "exampleorg/other", "someone-else")
	if res := r.run("--subject-token-source=env:CI_JOB_JWT", "--connector-id=github-actions"); res.code == 0 || !strings.Contains(res.stderr, "invalid_grant") {
		t.Errorf("wrong subject audience: exit %d, %s", res.code, res.stderr)
	}
	if res := r.run("--subject-token-source=env:CI_JOB_JWT", "--connector-id=gitlab"); res.code == 0 || !strings.Contains(res.stderr, "unauthorized_client") {
		t.Errorf("connector not allowed: exit %d, %s", res.code, res.stderr)
	}
}

// Mistakes say what to set; none opens a browser.
func TestExchangeFlagErrors(t *testing.T) {
	r := newExchangeRig(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--subject-token-source=github-actions", "--connector-id=github-actions"}, "permissions: id-token: write"},
		{[]string{"--subject-token-source=github-actions"}, "needs --connector-id"},
		{[]string{"--subject-token-source=vault", "--connector-id=x"}, "must be github-actions, file:PATH or env:NAME"},
		{[]string{"--subject-token-source=env:NOPE", "--connector-id=x"}, "the variable NOPE is not set"},
		{[]string{"--subject-token-source=file:/nonexistent/token", "--connector-id=x"}, "no such file"},
		{[]string{"--connector-id=x"}, "also set --subject-token-source"},
		{[]string{"--subject-token-source=env:X", "--connector-id=x", "--subject-token-audience=a"}, "is for --subject-token-source=github-actions"},
		{[]string{"--exchange-audience=prod", "--oidc-use-access-token"}, "cannot be used with token exchange"},
		{[]string{"--subject-token-source=env:X", "--connector-id=x", "--grant-type=password"}, "replaces the login"},
	} {
		res := r.run(tt.args...)
		if res.code == 0 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
			t.Errorf("%q: exit %d, stderr %q; want %q", tt.args, res.code, res.stderr, tt.want)
		}
	}
}

// The same against gatehouse's issuer (in-process): one browser login,
// then a token per trusting cluster client, and a refusal where the
// client does not trust the plugin's.
func TestExchangeAgainstIssuer(t *testing.T) {
	clock := newClock()
	srv := issuertest.Start(t, issuertest.Options{Now: clock.Now, ExtraClients: []issuer.Client{
		{ID: "cluster-a", Public: true, TrustedPeers: []string{"kubernetes"}},
		{ID: "cluster-b", Public: true, TrustedPeers: []string{"kubernetes"}},
		{ID: "cluster-c", Public: true, TrustedPeers: []string{"someone-else"}},
	}})
	r := &rig{t: t, srv: srv, clock: clock, dir: filepath.Join(t.TempDir(), "cache"), br: &httpBrowser{t: t, srv: srv}}
	ctx := context.Background()
	verify := func(aud string) map[string]any {
		t.Helper()
		res := r.run(ctx, execInfoV1, r.args("--exchange-audience="+aud))
		if res.code != 0 {
			t.Fatalf("--exchange-audience=%s: exit %d\n%s", aud, res.code, res.stderr)
		}
		tok, _ := tokenV1(t, res.stdout)
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, srv.HTTPClient), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := p.Verifier(&oidc.Config{ClientID: aud, Now: clock.Now}).Verify(oidc.ClientContext(ctx, srv.HTTPClient), tok)
		if err != nil {
			t.Fatalf("%s token: %v", aud, err)
		}
		var c map[string]any
		_ = idt.Claims(&c)
		return c
	}
	a := verify("cluster-a")
	b := verify("cluster-b")
	if n := r.br.opened.Load(); n != 1 {
		t.Errorf("browser opened %d times for two clusters, want 1", n)
	}
	if a["sub"] != b["sub"] || a["aud"] != "cluster-a" || b["aud"] != "cluster-b" || a["azp"] != "kubernetes" {
		t.Errorf("claims: a %v, b %v", a, b)
	}
	res := r.run(ctx, execInfoV1, r.args("--exchange-audience=cluster-c"))
	if res.code == 0 || !strings.Contains(res.stderr, "invalid_target") {
		t.Errorf("cluster-c (does not trust kubernetes): exit %d, %s", res.code, res.stderr)
	}
	if n := r.br.opened.Load(); n != 1 {
		t.Errorf("browser opened %d times, want 1", n)
	}
	// setup with the cluster's audience shows what the cluster makes of
	// the exchanged token; without it, the login's token is refused there.
	authn := filepath.Join(t.TempDir(), "authn.yaml")
	if err := os.WriteFile(authn, []byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %q
    audiences: [cluster-a]
  claimMappings:
    username:
      claim: sub
      prefix: "oidc:"
`, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args      []string
		want, not string
	}{
		{[]string{"--exchange-audience=cluster-a"}, "username: oidc:", "REJECT"},
		{nil, "the token's aud kubernetes contains none of the audiences [cluster-a]", "## 3. Grant access"},
	} {
		args := append([]string{"kubectl-gatehouse", "setup", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID, "--oidc-client-secret=" + srv.ClientSecret,
			"--certificate-authority=" + srv.CAFile, "--listen-address=127.0.0.1:0", "--authentication-config=" + authn}, tt.args...)
		res := r.run(ctx, "", args)
		if res.code != 0 || !strings.Contains(res.stdout, tt.want) || strings.Contains(res.stdout, tt.not) {
			t.Errorf("setup %q: exit %d, want %q and not %q in:\n%s\n%s", tt.args, res.code, tt.want, tt.not, res.stdout, res.stderr)
		}
		if tt.args != nil && !strings.Contains(res.stdout, "--exchange-audience=cluster-a") {
			t.Errorf("setup's kubeconfig snippet does not ask for the audience:\n%s", res.stdout)
		}
	}
	opened := r.br.opened.Load() // setup logs in each time

	// logout with the cluster's arguments deletes the login and that
	// cluster's token; the next run logs in again.
	args := r.args("--exchange-audience=cluster-a")
	args[1] = "logout"
	if res := r.run(ctx, "", args); res.code != 0 || !strings.Contains(res.stderr, "Revoked") {
		t.Fatalf("logout: exit %d, %s", res.code, res.stderr)
	}
	if files := cacheFiles(t, r.dir); len(files) != 1 {
		t.Errorf("after logout, cache files = %v, want cluster-b's only", files)
	}
	_ = verify("cluster-a")
	if n := r.br.opened.Load() - opened; n != 1 {
		t.Errorf("browser opened %d times after logout, want 1", n)
	}
}

// An outage at the exchange keeps the cluster's cached token while it is
// valid (inside the margin), as an outage at a refresh keeps the login's;
// once it has expired, the error says to try again, and nothing is lost.
func TestExchangeOutageKeepsCachedToken(t *testing.T) {
	r := newExchangeRig(t)
	r.seedLogin(r.iss.loginToken(time.Hour))
	first := r.claims("--exchange-audience=prod")
	r.iss.exchangeDown = true
	r.clock.Add(time.Hour - 30*time.Second) // inside the 60s margin: a new one is wanted
	res := r.run("--exchange-audience=prod")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: cannot refresh the token now") {
		t.Fatalf("exit %d, stderr %q; want the cached token with a warning", res.code, res.stderr)
	}
	tok, _ := tokenV1(t, res.stdout)
	if c, _ := verifyJWT(tok, &r.iss.key.PublicKey); c["exp"] != first["exp"] || c["aud"] != "prod" {
		t.Errorf("printed %v, want the cached prod token %v", c, first)
	}
	r.clock.Add(time.Minute) // expired
	res = r.run("--exchange-audience=prod")
	if res.code == 0 || !strings.Contains(res.stderr, "503 temporarily_unavailable") || !strings.Contains(res.stderr, "try again in 30s") {
		t.Errorf("after expiry: exit %d, stderr %q", res.code, res.stderr)
	}
	r.iss.exchangeDown = false
	if c := r.claims("--exchange-audience=prod"); c["aud"] != "prod" || c["exp"].(float64) <= first["exp"].(float64) {
		t.Errorf("after the outage: %v", c)
	}
}
