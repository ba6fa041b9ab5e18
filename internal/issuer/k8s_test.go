package issuer_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// teamUser logs in like a GitHub user: a login, a name, and org:team
// groups, so the test can check what kube-apiserver derives from them.
type teamUser struct{}

func (teamUser) Prompt() string { return "GitHub login" }
func (teamUser) Login(_ context.Context, _ connector.Scopes, u, p string) (connector.Identity, bool, error) {
	return connector.Identity{
		UserID: "583231", Username: "The Octocat", PreferredUsername: "octocat", Email: "octocat@example.com", EmailVerified: true,
		Groups: []string{"exampleorg:infra-team", "exampleorg:web"},
	}, u == "octocat" && p == "hunter2", nil
}

type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

// TestKubernetesAcceptsTokens configures Kubernetes' own OIDC authenticator
// (k8s.io/apiserver) the way the seed article configures kube-apiserver
// (usernameClaim preferred_username, prefixes "oidc:") and checks that an
// ID token from every grant authenticates as oidc:<login> with
// oidc:<org>:<team> groups.
func TestKubernetesAcceptsTokens(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{
		Connectors: []issuer.Connector{{ID: "local", Type: "github", Name: "GitHub", Impl: teamUser{}}},
	})
	authn := kubernetesAuthenticator(t, s, s.ClientID)

	scope := "openid profile email groups offline_access"
	tokens := map[string]string{}
	// password
	pw := postToken(t, s, url.Values{"grant_type": {"password"}, "username": {"octocat"}, "password": {"hunter2"}, "scope": {scope}}, s.ClientID, s.ClientSecret)
	if pw.status != 200 {
		t.Fatalf("password grant: %d %s", pw.status, pw.Error)
	}
	tokens["password"] = pw.IDToken
	// refresh
	rf := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pw.RefreshToken}}, s.ClientID, s.ClientSecret)
	if rf.status != 200 {
		t.Fatalf("refresh grant: %d %s", rf.status, rf.Error)
	}
	tokens["refresh_token"] = rf.IDToken
	// authorization code: the login page takes the team user's login.
	s.Username, s.Password = "octocat", "hunter2"
	p := newPKCE()
	q := loginForCode(t, s, codeParams(s, p, scope))
	ac := exchange(t, s, q.Get("code"), p.verifier)
	if ac.status != 200 {
		t.Fatalf("code grant: %d %s", ac.status, ac.Error)
	}
	tokens["authorization_code"] = ac.IDToken
	// device code
	resp, err := s.HTTPClient.PostForm(s.URL+"/device/code", url.Values{"client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	var da map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&da)
	resp.Body.Close()
	if _, page, err := s.SubmitUserCode(s.Browser(), da["user_code"].(string)); err != nil {
		t.Fatalf("device login: %v %s", err, page)
	}
	dv := postToken(t, s, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}}, s.ClientID, s.ClientSecret)
	if dv.status != 200 {
		t.Fatalf("device grant: %d %s", dv.status, dv.Error)
	}
	tokens["device_code"] = dv.IDToken

	for grant, tok := range tokens {
		t.Run(grant, func(t *testing.T) {
			res, ok, err := authn.AuthenticateToken(context.Background(), tok)
			if err != nil || !ok {
				t.Fatalf("kubernetes refused the ID token: ok=%v err=%v", ok, err)
			}
			if res.User.GetName() != "oidc:octocat" {
				t.Errorf("username = %q, want oidc:octocat", res.User.GetName())
			}
			if !slices.Contains(res.User.GetGroups(), "oidc:exampleorg:infra-team") {
				t.Errorf("groups = %v, want oidc:exampleorg:infra-team", res.User.GetGroups())
			}
		})
	}
	// An access token is not an ID token for this audience: refused.
	if _, ok, _ := authn.AuthenticateToken(context.Background(), pw.AccessToken); ok {
		t.Error("kubernetes accepted an access token as an ID token")
	}
	if strings.Count(pw.IDToken, ".") != 2 {
		t.Fatal("not a JWT")
	}
}

// kubernetesAuthenticator is Kubernetes' own OIDC authenticator
// (k8s.io/apiserver) for the issuer and one audience, configured as the
// seed article configures kube-apiserver: usernameClaim
// preferred_username, prefixes "oidc:".
func kubernetesAuthenticator(t *testing.T, s *issuertest.Server, audience string) oidc.AuthenticatorTokenWithHealthCheck {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	usernamePrefix, groupsPrefix := "oidc:", "oidc:"
	authn, err := oidc.New(ctx, oidc.Options{
		JWTAuthenticator: apiserver.JWTAuthenticator{
			Issuer: apiserver.Issuer{URL: s.URL, Audiences: []string{audience}, AudienceMatchPolicy: apiserver.AudienceMatchPolicyMatchAny},
			ClaimMappings: apiserver.ClaimMappings{
				Username: apiserver.PrefixedClaimOrExpression{Claim: "preferred_username", Prefix: &usernamePrefix},
				Groups:   apiserver.PrefixedClaimOrExpression{Claim: "groups", Prefix: &groupsPrefix},
			},
		},
		CAContentProvider:    staticCA(s.CAPEM),
		SupportedSigningAlgs: []string{"RS256"},
	})
	if err != nil {
		t.Fatalf("kubernetes OIDC authenticator: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for authn.HealthCheck() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("authenticator never became healthy: %v", authn.HealthCheck())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return authn
}

// TestKubernetesPerClusterTokens: one login, a token exchanged per
// cluster; each cluster's authenticator (its own audience) accepts its
// token as oidc:<login> with the user's groups, and refuses the other
// cluster's token and the login's own ID token.
func TestKubernetesPerClusterTokens(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{
		Connectors:   []issuer.Connector{{ID: "local", Type: "github", Name: "GitHub", Impl: teamUser{}}},
		ExtraClients: clusterClients,
	})
	clusters := map[string]oidc.AuthenticatorTokenWithHealthCheck{
		"cluster-a": kubernetesAuthenticator(t, s, "cluster-a"),
		"cluster-b": kubernetesAuthenticator(t, s, "cluster-b"),
	}
	login := postToken(t, s, url.Values{"grant_type": {"password"}, "username": {"octocat"}, "password": {"hunter2"}, "scope": {"openid profile email groups"}}, s.ClientID, s.ClientSecret)
	if login.status != 200 {
		t.Fatalf("password grant: %d %s", login.status, login.Error)
	}
	tokens := map[string]string{}
	for name := range clusters {
		got := postToken(t, s, url.Values{
			"grant_type": {grantExchange}, "subject_token": {login.IDToken}, "subject_token_type": {typeIDToken},
			"requested_token_type": {typeIDToken}, "audience": {name},
		}, s.ClientID, s.ClientSecret)
		if got.status != 200 {
			t.Fatalf("exchange for %s: %d %s %s", name, got.status, got.Error, got.Description)
		}
		tokens[name] = got.AccessToken
	}
	for cluster, authn := range clusters {
		for name, tok := range tokens {
			res, ok, err := authn.AuthenticateToken(context.Background(), tok)
			if name != cluster {
				if ok {
					t.Errorf("%s accepted %s's token", cluster, name)
				}
				continue
			}
			if err != nil || !ok {
				t.Fatalf("%s refused its own token: %v", cluster, err)
			}
			if res.User.GetName() != "oidc:octocat" || !slices.Contains(res.User.GetGroups(), "oidc:exampleorg:infra-team") {
				t.Errorf("%s: user %q groups %v", cluster, res.User.GetName(), res.User.GetGroups())
			}
		}
		if _, ok, _ := authn.AuthenticateToken(context.Background(), login.IDToken); ok {
			t.Errorf("%s accepted the login's own ID token (aud %s)", cluster, s.ClientID)
		}
	}
}
