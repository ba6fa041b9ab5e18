package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
)

// TestServeTokenExchange runs `gatehouse serve` with an exchange-only oidc
// connector for a GitHub-Actions-shaped issuer (tokenExchange keys in the
// config file): a job's token is exchanged, the connector's JWKS fetches
// are in /metrics, the connector is not on the login page, and a job of
// another environment is refused.
func TestServeTokenExchange(t *testing.T) {
	w := oidctest.Start(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "workload-ca.pem")
	if err := os.WriteFile(ca, []byte(w.CAPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	path, s := writeConfig(t, dir, "  type: memory")
	data, _ := os.ReadFile(path)
	cfg := strings.Replace(string(data), "enablePasswordDB: true", `connectors:
- type: oidc
  id: github-actions
  name: GitHub Actions
  config:
    issuer: `+w.URL+`
    rootCAs: [`+ca+`]
    scopes: [profile]
    userNameKey: sub
    claimModifications:
      newGroupFromClaims:
      - {prefix: gha, delimiter: ":", claims: [repository, environment]}
    tokenExchange:
      audiences: [https://gatehouse.example/ci]
      allowedSubjects: ["repo:exampleorg/*:environment:production"]
enablePasswordDB: true`, 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := run(t, path, s)
	defer stop()

	exchange := func(env string) map[string]any {
		return postAsClient(t, s, "/token", url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "connector_id": {"github-actions"},
			"subject_token":        {w.Sign(w.GitHubClaims("exampleorg/deploy", env, "https://gatehouse.example/ci"))},
			"subject_token_type":   {"urn:ietf:params:oauth:token-type:id_token"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "scope": {"openid groups"},
		})
	}
	ok := exchange("production")
	if ok["status"] != 200 {
		t.Fatalf("exchange: %v", ok)
	}
	claims := jwtClaims(t, ok["access_token"].(string))
	if g := groupsClaim(claims); len(g) != 1 || g[0] != "gha:exampleorg/deploy:production" {
		t.Errorf("groups %v", claims["groups"])
	}
	if refused := exchange("staging"); refused["status"] != 400 || refused["error"] != "invalid_grant" {
		t.Errorf("staging job: %v", refused)
	}
	if !metric(t, s.telemetry, `gatehouse_connector_jwks_fetches_total{connector="github-actions"} 1`) {
		t.Error(`/metrics lacks gatehouse_connector_jwks_fetches_total{connector="github-actions"} 1`)
	}
	// The login page offers the password database only.
	resp, err := s.client.Get(s.issuer + "/auth?" + url.Values{
		"client_id": {"kubernetes"}, "redirect_uri": {"http://localhost:8000"}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "connector_id": {"github-actions"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a login through the exchange-only connector answered %d", resp.StatusCode)
	}
}
