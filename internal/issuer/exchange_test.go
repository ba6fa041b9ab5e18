package issuer_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

const (
	grantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	typeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// settableClock is a clock tests move forward.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settableClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// clusterClients: cluster-a and cluster-b trust the "kubernetes" client
// (the one the user logs in with), cluster-c trusts nobody.
var clusterClients = []issuer.Client{
	{ID: "cluster-a", Name: "cluster A", Public: true, TrustedPeers: []string{"kubernetes"}},
	{ID: "cluster-b", Name: "cluster B", Public: true, TrustedPeers: []string{"kubernetes"}},
	{ID: "cluster-c", Name: "cluster C", Public: true},
}

// TestExchangeOwnIDTokenPerCluster covers the per-cluster exchange: one
// login of the "kubernetes" client, then a token per cluster, each with
// its cluster alone in aud, and the attacks on it.
func TestExchangeOwnIDTokenPerCluster(t *testing.T) {
	clock := &settableClock{t: time.Now()}
	s := issuertest.Start(t, issuertest.Options{Now: clock.Now, IDTokenTTL: time.Hour, ExtraClients: clusterClients})
	login := passwordGrant(t, s, "openid profile email groups offline_access")

	ok := postToken(t, s, url.Values{
		"grant_type": {grantExchange}, "subject_token": {login.IDToken}, "subject_token_type": {typeIDToken},
		"requested_token_type": {typeIDToken}, "audience": {"cluster-a"}, "scope": {"openid profile email groups"},
	}, s.ClientID, s.ClientSecret)
	if ok.status != 200 {
		t.Fatalf("exchange for cluster-a: %d %s: %s", ok.status, ok.Error, ok.Description)
	}
	if ok.RefreshToken != "" || ok.IDToken != "" {
		t.Fatalf("an exchange must answer with access_token only, got refresh %q id %q", ok.RefreshToken, ok.IDToken)
	}
	if ok.IssuedTokenType != typeIDToken {
		t.Fatalf("issued_token_type %q", ok.IssuedTokenType)
	}
	if ok.TokenType != "bearer" || ok.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token_type %q, Cache-Control %q", ok.TokenType, ok.header.Get("Cache-Control"))
	}
	orig, got := claimsOf(t, s, login.IDToken), claimsOf(t, s, ok.AccessToken)
	if got["aud"] != "cluster-a" || got["azp"] != "kubernetes" {
		t.Fatalf("aud %v azp %v, want cluster-a and kubernetes", got["aud"], got["azp"])
	}
	for _, k := range []string{"sub", "iss", "name", "email", "email_verified", "preferred_username"} {
		if got[k] != orig[k] {
			t.Errorf("%s = %v, the subject token's is %v", k, got[k], orig[k])
		}
	}
	if got["exp"].(float64) > orig["exp"].(float64) {
		t.Errorf("exchanged exp %v after the subject token's %v", got["exp"], orig["exp"])
	}

	// Later, the exchanged token ends with the subject token, not an hour on.
	clock.Add(50 * time.Minute)
	late := postToken(t, s, url.Values{
		"grant_type": {grantExchange}, "subject_token": {login.IDToken}, "subject_token_type": {typeIDToken},
		"requested_token_type": {typeIDToken}, "audience": {"cluster-b"},
	}, s.ClientID, s.ClientSecret)
	if late.status != 200 {
		t.Fatalf("exchange for cluster-b: %d %s: %s", late.status, late.Error, late.Description)
	}
	lc := claimsOf(t, s, late.AccessToken)
	if lc["exp"] != orig["exp"] || late.ExpiresIn > int64(10*time.Minute/time.Second) {
		t.Errorf("exchanged token exp %v (expires_in %d), want the subject token's %v", lc["exp"], late.ExpiresIn, orig["exp"])
	}
	clock.Add(-50 * time.Minute)

	accessForCluster := postToken(t, s, url.Values{
		"grant_type": {grantExchange}, "subject_token": {login.IDToken}, "subject_token_type": {typeIDToken},
		"audience": {"cluster-a"},
	}, s.ClientID, s.ClientSecret)
	if accessForCluster.status != 200 || accessForCluster.IssuedTokenType != typeAccess {
		t.Fatalf("exchange with the default requested_token_type: %d %s %q", accessForCluster.status, accessForCluster.Description, accessForCluster.IssuedTokenType)
	}
	if at := claimsOf(t, s, accessForCluster.AccessToken); at["client_id"] != "cluster-a" || at["aud"] == "cluster-a" {
		t.Errorf("access token for cluster-a: client_id %v aud %v (an access token is for the issuer's userinfo, not the cluster)", at["client_id"], at["aud"])
	}

	tests := []struct {
		name      string
		form      url.Values
		basic     []string
		code      string
		status    int
		inMessage string
	}{
		{"audience does not trust the requester", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-c"}},
			nil, "invalid_target", 400, "does not trust"},
		{"audience unknown", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-z"}},
			nil, "invalid_target", 400, "not a client"},
		{"no audience", url.Values{"subject_token": {login.IDToken}},
			nil, "invalid_request", 400, "audience is required"},
		{"cluster-A token exchanged for cluster B by the cluster-A client", url.Values{"subject_token": {ok.AccessToken}, "audience": {"cluster-b"}},
			[]string{"cluster-a", ""}, "invalid_target", 400, "does not trust"},
		{"cluster-A token exchanged for cluster B by the login client", url.Values{"subject_token": {ok.AccessToken}, "audience": {"cluster-b"}},
			nil, "invalid_grant", 400, "not issued to client"},
		{"ID token of another client", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}},
			[]string{"kubectl", ""}, "invalid_grant", 400, "not issued to client"},
		{"access token as subject", url.Values{"subject_token": {login.AccessToken}, "audience": {"cluster-a"}},
			nil, "invalid_grant", 400, "not an ID token"},
		{"access token type without connector", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}, "subject_token_type": {typeAccess}},
			nil, "invalid_request", 400, "without connector_id"},
		{"forged signature", url.Values{"subject_token": {login.IDToken[:len(login.IDToken)-4] + "AAAA"}, "audience": {"cluster-a"}},
			nil, "invalid_grant", 400, "not an ID token signed by this issuer"},
		{"missing subject token", url.Values{"audience": {"cluster-a"}},
			nil, "invalid_request", 400, "subject_token is required"},
		{"unknown subject_token_type", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}, "subject_token_type": {"urn:x:saml"}},
			nil, "invalid_request", 400, "subject_token_type must be"},
		{"unknown requested_token_type", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}, "requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}},
			nil, "invalid_request", 400, "requested_token_type must be"},
		{"actor token (delegation)", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}, "actor_token": {login.IDToken}},
			nil, "invalid_request", 400, "actor_token is not supported"},
		{"unknown scope", url.Values{"subject_token": {login.IDToken}, "audience": {"cluster-a"}, "scope": {"openid admin"}},
			nil, "invalid_scope", 400, "unsupported scope"},
		{"connector does not verify tokens", url.Values{"subject_token": {login.IDToken}, "connector_id": {"local"}},
			nil, "invalid_request", 400, "cannot verify subject tokens"},
		{"connector unknown", url.Values{"subject_token": {login.IDToken}, "connector_id": {"nope"}},
			nil, "invalid_request", 400, "names no connector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.form.Has("subject_token_type") {
				tc.form.Set("subject_token_type", typeIDToken)
			}
			tc.form.Set("grant_type", grantExchange)
			basic := []string{s.ClientID, s.ClientSecret}
			if tc.basic != nil {
				tc.form.Set("client_id", tc.basic[0])
				basic = nil
			}
			got := postToken(t, s, tc.form, basic...)
			if got.status != tc.status || got.Error != tc.code || !strings.Contains(got.Description, tc.inMessage) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", got.status, got.Error, got.Description, tc.status, tc.code, tc.inMessage)
			}
			if got.AccessToken != "" {
				t.Fatal("a refused exchange returned a token")
			}
		})
	}

	// After the subject token expires, nothing more is exchanged.
	clock.Add(61 * time.Minute)
	expired := postToken(t, s, url.Values{
		"grant_type": {grantExchange}, "subject_token": {login.IDToken}, "subject_token_type": {typeIDToken}, "audience": {"cluster-a"},
	}, s.ClientID, s.ClientSecret)
	if expired.status != 400 || expired.Error != "invalid_grant" || !strings.Contains(expired.Description, "expired") {
		t.Fatalf("expired subject token: %d %s %q", expired.status, expired.Error, expired.Description)
	}
}

// TestExchangeGrantNotEnabled: the grant off (oauth2.grantTypes, or the
// client's allowedGrantTypes) answers as RFC 6749 says.
func TestExchangeGrantNotEnabled(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{ExtraClients: append([]issuer.Client{
		{ID: "no-exchange", Secret: "s3cret", AllowedGrantTypes: []string{"password"}},
	}, clusterClients...)})
	got := postToken(t, s, url.Values{"grant_type": {grantExchange}, "subject_token": {"x"}, "subject_token_type": {typeIDToken}, "audience": {"cluster-a"}}, "no-exchange", "s3cret")
	if got.status != 400 || got.Error != "unauthorized_client" {
		t.Fatalf("client without the grant: %d %s %q", got.status, got.Error, got.Description)
	}
	if !slices.Contains(discoveredGrants(t, s), grantExchange) {
		t.Errorf("discovery lacks the token exchange grant, enabled by default: %v", discoveredGrants(t, s))
	}
	off := issuertest.Start(t, issuertest.Options{GrantTypes: []string{"authorization_code", "refresh_token"}, ExtraClients: clusterClients})
	if slices.Contains(discoveredGrants(t, off), grantExchange) {
		t.Errorf("discovery lists the token exchange grant although oauth2.grantTypes lacks it")
	}
	got = postToken(t, off, url.Values{"grant_type": {grantExchange}, "subject_token": {"x"}, "subject_token_type": {typeIDToken}, "audience": {"cluster-a"}}, off.ClientID, off.ClientSecret)
	if got.status != 400 || got.Error != "unsupported_grant_type" {
		t.Fatalf("grant not in oauth2.grantTypes: %d %s %q", got.status, got.Error, got.Description)
	}
}

func discoveredGrants(t *testing.T, s *issuertest.Server) []string {
	t.Helper()
	resp, err := s.HTTPClient.Get(s.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Grants []string `json:"grant_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Grants
}
