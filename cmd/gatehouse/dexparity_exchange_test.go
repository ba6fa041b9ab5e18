package main

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
)

// TestTokenExchangeMatchesDex runs Dex's token exchange, as its guide
// ("Machine Authentication to Dex", v2.45) configures and requests it,
// against Dex and against gatehouse with the same config file: an oidc
// connector whose issuer is a GitHub-Actions-shaped workload issuer,
// userNameKey sub, scopes openid and groups, plus claimMapping and
// claimModifications.newGroupFromClaims; the client authenticates with
// HTTP Basic. The same subject token is exchanged at both, and the issued
// ID tokens must carry the same claims (iss, exp and iat apart: gatehouse
// also caps exp at the subject token's). The connector names a clientID,
// which is the aud the subject token carries: Dex ignores aud on an
// exchange, gatehouse requires it (docs/oidc-upstream.md).
//
// It needs a Dex binary built from Dex's public source (v2.45.1), named by
// DEX_BIN; without it the test is skipped.
func TestTokenExchangeMatchesDex(t *testing.T) {
	dexBin := os.Getenv("DEX_BIN")
	if dexBin == "" {
		t.Skip("DEX_BIN not set: build Dex v2.45.1 from its source and point DEX_BIN at it to compare token exchange claims")
	}
	w := oidctest.Start(t)
	subject := w.Sign(w.GitHubClaims("exampleorg/deploy", "production", "gatehouse-ci"))

	type answer struct {
		claims map[string]any
		body   map[string]any
	}
	exchangeAt := func(name string, start func(path string, s served) func()) []answer {
		dir := t.TempDir()
		ca := filepath.Join(dir, "workload-ca.pem")
		if err := os.WriteFile(ca, []byte(w.CAPEM), 0o600); err != nil {
			t.Fatal(err)
		}
		path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, name+".db"))
		data, _ := os.ReadFile(path)
		cfg := strings.Replace(string(data), "enablePasswordDB: true", `connectors:
- type: oidc
  id: github-actions
  name: github-actions
  config:
    issuer: `+w.URL+`
    clientID: gatehouse-ci
    redirectURI: `+s.issuer+`/callback
    rootCAs:
    - `+ca+`
    scopes:
    - openid
    - groups
    userNameKey: sub
    claimMapping:
      preferred_username: repository
    claimModifications:
      newGroupFromClaims:
      - prefix: gha
        delimiter: ":"
        claims: [repository, environment]
enablePasswordDB: true`, 1)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		stop := start(path, s)
		defer stop()
		var out []answer
		for _, requested := range []string{"urn:ietf:params:oauth:token-type:id_token", ""} {
			form := url.Values{
				"connector_id": {"github-actions"}, "grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"scope": {"openid groups federated:id profile"}, "subject_token": {subject},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
			}
			if requested != "" {
				form.Set("requested_token_type", requested)
			}
			body := postAsClient(t, s, "/token", form)
			if body["status"] != 200 {
				t.Fatalf("%s: exchange answered %v", name, body)
			}
			tok, _ := body["access_token"].(string)
			out = append(out, answer{claims: jwtClaims(t, tok), body: body})
		}
		return out
	}
	ours := exchangeAt("gatehouse", func(path string, s served) func() { return run(t, path, s) })
	dex := exchangeAt("dex", func(path string, s served) func() { return runDex(t, dexBin, path, s) })

	// The ID token: claim for claim.
	if !slices.Contains(groupsClaim(ours[0].claims), "gha:exampleorg/deploy:production") {
		t.Errorf("gatehouse's groups %v lack the newGroupFromClaims group", ours[0].claims["groups"])
	}
	sameClaims(t, ours[0].claims, dex[0].claims)
	// The answers: same fields and types (Dex's default is an access token).
	for i := range ours {
		for _, k := range []string{"issued_token_type", "token_type"} {
			if ours[i].body[k] != dex[i].body[k] {
				t.Errorf("answer %d: %s is %v, Dex says %v", i, k, ours[i].body[k], dex[i].body[k])
			}
		}
		for _, k := range []string{"refresh_token", "id_token"} {
			if _, has := ours[i].body[k]; has {
				t.Errorf("answer %d has %s", i, k)
			}
		}
		if _, has := ours[i].body["expires_in"]; !has {
			t.Errorf("answer %d has no expires_in", i)
		}
	}
}

func groupsClaim(c map[string]any) []string {
	var out []string
	list, _ := c["groups"].([]any)
	for _, g := range list {
		s, _ := g.(string)
		out = append(out, s)
	}
	return out
}
