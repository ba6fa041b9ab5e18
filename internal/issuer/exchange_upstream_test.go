package issuer_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc"
	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

const (
	ciConnector = "github-actions"
	ciAudience  = "https://gatehouse.example/ci"
)

// ciSetup is an issuer with a GitHub-Actions-shaped oidc connector (token
// exchange only) next to the local one, the public client "ci" that may
// use only that connector, and cluster clients.
type ciSetup struct {
	s        *issuertest.Server
	w        *oidctest.WorkloadIssuer
	clock    *settableClock
	logs     *syncbuf.Buffer
	registry *prometheus.Registry
}

// wrap, when given, stands in for the connector (a test's wrapper of it).
func startCI(t *testing.T, te oidc.TokenExchange, wrap ...func(*oidc.Connector) any) *ciSetup {
	t.Helper()
	w := oidctest.Start(t)
	clock := &settableClock{t: time.Now()}
	reg := prometheus.NewRegistry()
	conn, err := oidc.New(context.Background(), oidc.Config{
		Issuer: w.URL, RootCAs: []string{w.CAPEM},
		// Dex's GitHub Actions example: the job's sub is the user name.
		Scopes: []string{"openid", "groups"}, UserNameKey: "sub",
		ClaimMapping: oidc.ClaimMapping{PreferredUsername: "repository"},
		ClaimModifications: oidc.ClaimModifications{NewGroupFromClaims: []oidc.NewGroupFromClaims{
			{Claims: []string{"repository", "environment"}, Delimiter: ":", Prefix: "gha"},
		}},
		TokenExchange: te,
	}, nil, oidc.WithMetrics(oidc.NewMetrics(reg), ciConnector), oidc.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	var impl any = conn
	for _, w := range wrap {
		impl = w(conn)
	}
	logs := &syncbuf.Buffer{}
	s := issuertest.Start(t, issuertest.Options{
		Now: clock.Now, IDTokenTTL: time.Hour,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Connectors: []issuer.Connector{{ID: ciConnector, Type: "oidc", Name: "GitHub Actions", Impl: impl, ExchangeOnly: true}},
		ExtraClients: []issuer.Client{
			{ID: "ci", Name: "CI", Public: true, AllowedConnectors: []string{ciConnector}},
			{ID: "people", Name: "people only", Public: true, AllowedConnectors: []string{"local"}},
			{ID: "cluster-a", Name: "cluster A", Public: true, TrustedPeers: []string{"ci"}},
			{ID: "cluster-c", Name: "cluster C", Public: true},
			{ID: "cluster-people", Name: "people's cluster", Public: true, TrustedPeers: []string{"ci"}, AllowedConnectors: []string{"local"}},
		},
	})
	return &ciSetup{s: s, w: w, clock: clock, logs: logs, registry: reg}
}

func (c *ciSetup) exchange(t *testing.T, clientID, subject string, extra url.Values) tokenResponse {
	t.Helper()
	form := url.Values{
		"grant_type": {grantExchange}, "client_id": {clientID}, "connector_id": {ciConnector},
		"subject_token": {subject}, "subject_token_type": {typeIDToken}, "requested_token_type": {typeIDToken},
		"scope": {"openid groups profile federated:id"},
	}
	for k, v := range extra {
		form[k] = v
	}
	return postToken(t, c.s, form)
}

// jwksFetches reads gatehouse_connector_jwks_fetches_total{connector}.
func (c *ciSetup) jwksFetches(t *testing.T) float64 {
	t.Helper()
	mfs, err := c.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_connector_jwks_fetches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" && l.GetValue() == ciConnector {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestExchangeWorkloadToken(t *testing.T) {
	c := startCI(t, oidc.TokenExchange{
		Audiences:       []string{ciAudience},
		AllowedSubjects: []string{"repo:exampleorg/*:environment:production"},
	})
	w := c.w
	claims := w.GitHubClaims("exampleorg/deploy", "production", ciAudience)
	subject := w.Sign(claims)

	got := c.exchange(t, "ci", subject, nil)
	if got.status != 200 {
		t.Fatalf("exchange: %d %s: %s", got.status, got.Error, got.Description)
	}
	if got.RefreshToken != "" || got.IssuedTokenType != typeIDToken || got.TokenType != "bearer" {
		t.Fatalf("answer: refresh %q, issued_token_type %q, token_type %q", got.RefreshToken, got.IssuedTokenType, got.TokenType)
	}
	tok := claimsOf(t, c.s, got.AccessToken)
	if want := encodeSub("repo:exampleorg/deploy:environment:production", ciConnector); tok["sub"] != want {
		t.Errorf("sub %v, want %v", tok["sub"], want)
	}
	if tok["aud"] != "ci" || tok["name"] != claims["sub"] || tok["preferred_username"] != "exampleorg/deploy" {
		t.Errorf("aud %v name %v preferred_username %v", tok["aud"], tok["name"], tok["preferred_username"])
	}
	if groups := groupsOf(tok); !slices.Equal(groups, []string{"gha:exampleorg/deploy:production"}) {
		t.Errorf("groups %v, want [gha:exampleorg/deploy:production] (claimModifications.newGroupFromClaims)", groups)
	}
	if exp := int64(tok["exp"].(float64)); exp > claims["exp"].(int64) {
		t.Errorf("exchanged token expires at %d, after the subject token (%d)", exp, claims["exp"])
	}
	if left := claims["exp"].(int64) - c.clock.Now().Unix(); got.ExpiresIn > left {
		t.Errorf("expires_in %d beyond the subject token's remaining %d s", got.ExpiresIn, left)
	}

	// For a cluster client that trusts "ci": that audience alone.
	forCluster := c.exchange(t, "ci", subject, url.Values{"audience": {"cluster-a"}})
	if forCluster.status != 200 {
		t.Fatalf("exchange for cluster-a: %d %s: %s", forCluster.status, forCluster.Error, forCluster.Description)
	}
	if ct := claimsOf(t, c.s, forCluster.AccessToken); ct["aud"] != "cluster-a" || ct["azp"] != "ci" {
		t.Errorf("aud %v azp %v, want cluster-a and ci", ct["aud"], ct["azp"])
	}

	// Dex's documented GitHub Actions request: the job's JWT sent as an
	// access token, an access token asked for.
	asAccess := c.exchange(t, "ci", subject, url.Values{"subject_token_type": {typeAccess}, "requested_token_type": {typeAccess}})
	if asAccess.status != 200 || asAccess.IssuedTokenType != typeAccess {
		t.Fatalf("JWT as access token: %d %s %s (%q)", asAccess.status, asAccess.Error, asAccess.Description, asAccess.IssuedTokenType)
	}
	if at := claimsOf(t, c.s, asAccess.AccessToken); at["client_id"] != "ci" || int64(at["exp"].(float64)) > claims["exp"].(int64) {
		t.Errorf("access token: client_id %v exp %v (subject exp %v)", at["client_id"], at["exp"], claims["exp"])
	}

	edit := func(f func(map[string]any)) map[string]any {
		m := w.GitHubClaims("exampleorg/deploy", "production", ciAudience)
		f(m)
		return m
	}
	now := time.Now()
	tests := []struct {
		name    string
		client  string
		subject string
		extra   url.Values
		code    string
		inDesc  string
	}{
		{"wrong aud", "ci", w.Sign(edit(func(m map[string]any) { m["aud"] = "https://other.example" })), nil, "invalid_grant", "aud"},
		{"aud list without ours", "ci", w.Sign(edit(func(m map[string]any) { m["aud"] = []string{"a", "b"} })), nil, "invalid_grant", "aud"},
		{"expired", "ci", w.Sign(edit(func(m map[string]any) { m["exp"] = now.Add(-2 * time.Minute).Unix() })), nil, "invalid_grant", "expired"},
		{"no exp", "ci", w.Sign(edit(func(m map[string]any) { delete(m, "exp") })), nil, "invalid_grant", ""},
		{"nbf in the future", "ci", w.Sign(edit(func(m map[string]any) { m["nbf"] = now.Add(3 * time.Minute).Unix() })), nil, "invalid_grant", "nbf"},
		{"iat in the future", "ci", w.Sign(edit(func(m map[string]any) { m["iat"] = now.Add(3 * time.Minute).Unix() })), nil, "invalid_grant", "iat"},
		{"wrong issuer", "ci", w.Sign(edit(func(m map[string]any) { m["iss"] = "https://token.actions.githubusercontent.com" })), nil, "invalid_grant", "different provider"},
		{"alg none", "ci", oidctest.Unsigned(claims), nil, "invalid_grant", "failed verification"},
		{"HS256 signed with the public key", "ci", w.SignHS256WithPublicKey(claims), nil, "invalid_grant", "failed verification"},
		{"unknown kid", "ci", w.SignUnpublished("made-up-kid", claims), nil, "invalid_grant", "unknown kid"},
		{"known kid, other key", "ci", w.SignUnpublished("workload-key-1", claims), nil, "invalid_grant", "bad signature"},
		{"not a JWT", "ci", "opaque-access-token", nil, "invalid_grant", "not a JWT"},
		{"subject not allowed: staging", "ci", w.Sign(w.GitHubClaims("exampleorg/deploy", "staging", ciAudience)), nil, "invalid_grant", "not allowed"},
		{"subject not allowed: other org", "ci", w.Sign(w.GitHubClaims("evilorg/deploy", "production", ciAudience)), nil, "invalid_grant", "not allowed"},
		{"subject not allowed: star does not cross a colon", "ci", w.Sign(edit(func(m map[string]any) {
			m["sub"] = "repo:exampleorg/deploy:ref:refs/heads/x:environment:production"
		})), nil, "invalid_grant", "not allowed"},
		{"connector not allowed for the client", "people", subject, nil, "unauthorized_client", "allowedConnectors"},
		{"audience does not trust the requester", "ci", subject, url.Values{"audience": {"cluster-c"}}, "invalid_target", "does not trust"},
		{"audience may not use the connector", "ci", subject, url.Values{"audience": {"cluster-people"}}, "invalid_target", "allowedConnectors"},
		{"unknown subject_token_type", "ci", subject, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, "invalid_request", "subject_token_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := c.exchange(t, tc.client, tc.subject, tc.extra)
			if got.status/100 != 4 || got.Error != tc.code || !strings.Contains(got.Description, tc.inDesc) {
				t.Fatalf("got %d %s %q, want %s containing %q", got.status, got.Error, got.Description, tc.code, tc.inDesc)
			}
			if got.AccessToken != "" {
				t.Fatal("a refused exchange returned a token")
			}
		})
	}
	if logs := c.logs.String(); !strings.Contains(logs, "tokenExchange.allowedSubjects") || !strings.Contains(logs, "connector="+ciConnector) ||
		!strings.Contains(logs, "repo:evilorg/deploy:environment:production") {
		t.Errorf("the policy refusal's log line should name the connector, the subject and the rule key; logs:\n%s", logs)
	}

	// The JWKS was fetched once: not per request, and the made-up kids
	// right after a fetch cost nothing.
	if n := w.JWKSRequests(); n != 1 || c.jwksFetches(t) != 1 {
		t.Fatalf("JWKS fetched %d times (metric %v) for %d exchanges, want once", n, c.jwksFetches(t), len(tests)+2)
	}
	// A rotation: the new kid is fetched once the refetch interval has
	// passed, and the old key keeps working.
	w.Rotate()
	c.clock.Add(11 * time.Second)
	rotated := c.exchange(t, "ci", w.Sign(w.GitHubClaims("exampleorg/deploy", "production", ciAudience)), nil)
	if rotated.status != 200 {
		t.Fatalf("after rotation: %d %s %s", rotated.status, rotated.Error, rotated.Description)
	}
	if again := c.exchange(t, "ci", subject, nil); again.status != 200 {
		t.Fatalf("old key after rotation: %d %s", again.status, again.Description)
	}
	// Made-up kids after the interval: one refetch, then none within it.
	c.clock.Add(11 * time.Second)
	for range 5 {
		if got := c.exchange(t, "ci", w.SignUnpublished("flood", claims), nil); got.Error != "invalid_grant" {
			t.Fatalf("unknown kid: %d %s", got.status, got.Error)
		}
	}
	if n := w.JWKSRequests(); n != 3 || c.jwksFetches(t) != 3 {
		t.Fatalf("JWKS fetched %d times (metric %v), want 3: the first, the rotation, one for the flood", n, c.jwksFetches(t))
	}
}

// TestExchangeRequiredClaims: tokenExchange.requiredClaims admits only
// jobs of the named reusable workflow on main.
func TestExchangeRequiredClaims(t *testing.T) {
	c := startCI(t, oidc.TokenExchange{
		Audiences:      []string{ciAudience},
		RequiredClaims: map[string]string{"job_workflow_ref": "exampleorg/*/.github/workflows/deploy.yml@refs/heads/main", "repository_owner": "exampleorg"},
	})
	w := c.w
	if got := c.exchange(t, "ci", w.Sign(w.GitHubClaims("exampleorg/deploy", "production", ciAudience)), nil); got.status != 200 {
		t.Fatalf("workflow on main: %d %s %s", got.status, got.Error, got.Description)
	}
	for name, edit := range map[string]func(map[string]any){
		"feature branch": func(m map[string]any) {
			m["job_workflow_ref"] = "exampleorg/deploy/.github/workflows/deploy.yml@refs/heads/x"
		},
		"other workflow": func(m map[string]any) {
			m["job_workflow_ref"] = "exampleorg/deploy/.github/workflows/evil.yml@refs/heads/main"
		},
		"claim missing":    func(m map[string]any) { delete(m, "job_workflow_ref") },
		"claim not string": func(m map[string]any) { m["repository_owner"] = []string{"exampleorg"} },
	} {
		m := w.GitHubClaims("exampleorg/deploy", "production", ciAudience)
		edit(m)
		got := c.exchange(t, "ci", w.Sign(m), nil)
		if got.status != 400 || got.Error != "invalid_grant" || !strings.Contains(got.Description, "not allowed") {
			t.Errorf("%s: %d %s %q", name, got.status, got.Error, got.Description)
		}
	}
	if logs := c.logs.String(); !strings.Contains(logs, "tokenExchange.requiredClaims.job_workflow_ref") {
		t.Errorf("the refusal's log line should name the rule; logs:\n%s", logs)
	}
}

// TestExchangeOnlyConnectorIsNoLogin: a connector for workload tokens is
// not offered on the login page and cannot be named for a login.
func TestExchangeOnlyConnectorIsNoLogin(t *testing.T) {
	c := startCI(t, oidc.TokenExchange{Audiences: []string{ciAudience}})
	p := newPKCE()
	params := codeParams(c.s, p, "openid")
	params["client_id"] = "ci"
	for _, tc := range []struct{ connectorID, page string }{{"", "No login method"}, {ciConnector, "Login method not available"}} {
		if tc.connectorID != "" {
			params["connector_id"] = tc.connectorID
		}
		resp, err := noFollow(c.s).Get(authURL(c.s, params))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || !strings.Contains(string(body), tc.page) {
			t.Fatalf("login through the exchange-only connector (connector_id %q): %d, want a page %q", tc.connectorID, resp.StatusCode, tc.page)
		}
	}
	// Its login URL itself refuses too.
	resp, err := noFollow(c.s).Get(c.s.URL + "/auth/" + ciConnector + "?client_id=ci")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Fatalf("/auth/%s: %d", ciConnector, resp.StatusCode)
	}
}

func TestExchangeAudiencesDefaultToClientID(t *testing.T) {
	w := oidctest.Start(t)
	cfg := oidc.Config{Issuer: w.URL, RootCAs: []string{w.CAPEM}, Scopes: []string{"openid"}, UserNameKey: "sub",
		ClientID: "gatehouse-at-upstream", RedirectURI: "https://gatehouse.example/callback"}
	conn, err := oidc.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		aud  string
		pass bool
	}{{"gatehouse-at-upstream", true}, {ciAudience, false}, {"", false}} {
		_, err := conn.TokenIdentity(context.Background(), typeIDToken, w.Sign(w.GitHubClaims("exampleorg/deploy", "production", tc.aud)))
		if (err == nil) != tc.pass {
			t.Errorf("aud %q: err %v, want pass=%v", tc.aud, err, tc.pass)
		}
	}
	// Exchange-only connector without audiences: refused at start-up, naming the key.
	_, err = oidc.Prepare(oidc.Config{Issuer: w.URL}, nil)
	if err == nil || !strings.Contains(err.Error(), "tokenExchange.audiences") {
		t.Fatalf("no clientID and no tokenExchange.audiences: %v", err)
	}
}

// encodeSub is the sub gatehouse gives a user of a connector.
func encodeSub(userID, connID string) string {
	var b []byte
	for i, v := range []string{userID, connID} {
		b = append(b, byte((i+1)<<3|2))
		n := len(v)
		for n >= 0x80 {
			b = append(b, byte(n)|0x80)
			n >>= 7
		}
		b = append(b, byte(n))
		b = append(b, v...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func groupsOf(claims map[string]any) []string {
	var out []string
	list, _ := claims["groups"].([]any)
	for _, g := range list {
		s, _ := g.(string)
		out = append(out, s)
	}
	return out
}

// BenchmarkExchangeGrant exchanges GitHub-Actions-shaped job tokens
// through an oidc connector (memory storage: the grant writes nothing),
// RS256 and ES256 issued tokens, and reports the JWKS fetches per run,
// which must stay at one.
func BenchmarkExchangeGrant(b *testing.B) {
	for _, alg := range []keys.Algorithm{keys.RS256, keys.ES256} {
		b.Run(string(alg), func(b *testing.B) {
			w := oidctest.Start(b)
			conn, err := oidc.New(context.Background(), oidc.Config{
				Issuer: w.URL, RootCAs: []string{w.CAPEM}, Scopes: []string{"openid", "groups"}, UserNameKey: "sub",
				ClaimModifications: oidc.ClaimModifications{NewGroupFromClaims: []oidc.NewGroupFromClaims{
					{Claims: []string{"repository", "environment"}, Delimiter: ":", Prefix: "gha"},
				}},
				TokenExchange: oidc.TokenExchange{Audiences: []string{ciAudience}, AllowedSubjects: []string{"repo:exampleorg/*:environment:production"}},
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			store := memory.New()
			km, err := keys.NewManager(keys.Options{Storage: store, Algorithm: alg})
			if err != nil {
				b.Fatal(err)
			}
			if err := km.Rotate(context.Background()); err != nil {
				b.Fatal(err)
			}
			h, err := issuer.New(issuer.Options{
				Issuer: "https://issuer.example/dex", Storage: store, Keys: km,
				Clients:    []issuer.Client{{ID: "kubernetes", Secret: "s"}},
				Connectors: []issuer.Connector{{ID: ciConnector, Name: "GitHub Actions", Impl: conn, ExchangeOnly: true}},
			})
			if err != nil {
				b.Fatal(err)
			}
			subject := w.Sign(w.GitHubClaimsFor("exampleorg/deploy", "production", ciAudience, time.Hour))
			form := url.Values{
				"grant_type": {grantExchange}, "connector_id": {ciConnector}, "subject_token": {subject},
				"subject_token_type": {typeIDToken}, "requested_token_type": {typeIDToken}, "scope": {"openid groups profile"},
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out, code := benchGrant(h, form); code != 200 {
						b.Errorf("exchange: %d %v", code, out)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchange/s")
			b.ReportMetric(float64(w.JWKSRequests()), "jwks-fetches")
		})
	}
}

// unavailable is a connector whose upstream could not be reached yet (as
// internal/connector/retry reports one still opening).
type unavailable struct{ *oidc.Connector }

func (unavailable) Available() bool { return false }

// TestExchangeWhileConnectorUnavailable: a CI job whose connector cannot
// reach its provider is told to come back (503 temporarily_unavailable
// with Retry-After), not refused (invalid_grant would read as "this token
// will never work"); no token is issued.
func TestExchangeWhileConnectorUnavailable(t *testing.T) {
	c := startCI(t, oidc.TokenExchange{Audiences: []string{ciAudience}}, func(c *oidc.Connector) any { return unavailable{c} })
	tr := c.exchange(t, "ci", c.w.Sign(c.w.GitHubClaims("exampleorg/deploy", "production", ciAudience)), nil)
	if tr.status != http.StatusServiceUnavailable || tr.Error != "temporarily_unavailable" {
		t.Fatalf("answer %d %q (%s), want 503 temporarily_unavailable", tr.status, tr.Error, tr.Description)
	}
	if got := tr.header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want 30", got)
	}
	if tr.AccessToken != "" || tr.RefreshToken != "" {
		t.Error("a token was issued")
	}
}
