package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

// TestGitHubClaimsMatchDex logs the seed fixture's user in through the
// same Dex-format config (GitHub connector against the fake GitHub) once
// with Dex and once with gatehouse, and compares the ID tokens claim by
// claim. It needs a Dex binary built from Dex's public source (v2.45.1),
// named by DEX_BIN; without it the test is skipped. Nothing of Dex is in
// this repository.
func TestGitHubClaimsMatchDex(t *testing.T) {
	dexBin := os.Getenv("DEX_BIN")
	if dexBin == "" {
		t.Skip("DEX_BIN not set: build Dex v2.45.1 from its source and point DEX_BIN at it to compare claims")
	}
	fx, err := fakegithub.LoadFixture("../../test/fakegithub/testdata/exampleorg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gh, err := fakegithub.Start(fakegithub.Options{Fixture: fx, TLS: true, Enterprise: true, Login: "octocat"})
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()

	claimsFrom := func(name string, start func(path string, s served) func()) map[string]any {
		dir := t.TempDir()
		ca, err := gh.WriteCAFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, name+".db"))
		data, _ := os.ReadFile(path)
		cfg := strings.Replace(string(data), "enablePasswordDB: true", `connectors:
- type: github
  id: github
  name: GitHub
  config:
    clientID: gatehouse-oauth-app
    clientSecret: gatehouse-oauth-secret
    redirectURI: `+s.issuer+`/callback
    hostName: `+gh.Host()+`
    rootCA: `+ca+`
    teamNameField: slug
    loadAllGroups: true
    orgs:
    - name: exampleorg
enablePasswordDB: true`, 1)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		stop := start(path, s)
		defer stop()
		return codeFlowClaims(t, s, filepath.Join(dir, "tls", "ca.crt"), gh)
	}
	ours := claimsFrom("gatehouse", func(path string, s served) func() { return run(t, path, s) })
	dex := claimsFrom("dex", func(path string, s served) func() { return runDex(t, dexBin, path, s) })
	sameClaims(t, ours, dex)
}

// sameClaims fails t unless two ID tokens' claims are equal, apart from
// those that depend on the instance or the moment.
func sameClaims(t *testing.T, ours, dex map[string]any) {
	t.Helper()
	for _, k := range []string{"iss", "exp", "iat", "at_hash", "c_hash"} {
		delete(ours, k)
		delete(dex, k)
	}
	if !reflect.DeepEqual(ours, dex) {
		t.Fatalf("ID token claims differ from Dex's for the same user and config:\ngatehouse: %v\ndex:       %v", ours, dex)
	}
	t.Logf("claims identical to Dex's: %v", ours)
}

// codeFlowClaims runs the authorization code flow (profile, email,
// groups, federated:id) through the issuer and GitHub with plain HTTP and
// returns the ID token's claims.
func codeFlowClaims(t *testing.T, s served, issuerCA string, gh *fakegithub.Server) map[string]any {
	t.Helper()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(issuerCA)
	pool.AppendCertsFromPEM(pem)
	pool.AppendCertsFromPEM(gh.CAPEM())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if r.URL.Host == "localhost:8000" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.issuer+"/auth?"+url.Values{
		"client_id": {"kubernetes"}, "redirect_uri": {"http://localhost:8000"}, "response_type": {"code"},
		"scope": {"openid profile email groups federated:id"}, "state": {"state"}, "nonce": {"nonce"}, "connector_id": {"github"},
	}.Encode(), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("no redirect to the client (%d): %s", resp.StatusCode, body)
	}
	code := loc.Query().Get("code")
	tok := passwordGrant(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:8000"}})
	idt, ok := tok["id_token"].(string)
	if !ok {
		t.Fatal(fmt.Sprint("no ID token: ", tok))
	}
	return jwtClaims(t, idt)
}
