package main

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

// TestServeLoginLimitsAndProxyWarning: oauth2.loginLimits from a Dex
// config reaches the issuer, and serve warns once when requests come
// through a proxy it does not trust.
func TestServeLoginLimitsAndProxyWarning(t *testing.T) {
	dir := t.TempDir()
	path, s := writeConfig(t, dir, "  type: memory")
	data, _ := os.ReadFile(path)
	cfg := strings.Replace(string(data), "  passwordConnector: local\n", "  passwordConnector: local\n  loginLimits:\n    perUser: {failures: 2, window: 1h}\n", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	stop := runLogged(t, path, s, &logs)
	defer stop()

	wrong := url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"wrong"}, "scope": {"openid"}}
	for i := 0; i < 2; i++ {
		if tok := passwordGrant(t, s, wrong); tok["status"] != 400 {
			t.Fatalf("wrong password %d: %v", i+1, tok)
		}
	}
	if tok := passwordGrant(t, s, wrong); tok["status"] != 429 {
		t.Fatalf("3rd wrong password with perUser.failures 2: %v, want 429", tok)
	}
	if strings.Contains(logs.String(), "through a proxy") {
		t.Fatal("warned about a proxy before any request came through one")
	}

	// This test's client is on 127.0.0.1, as a sidecar proxy would be.
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, s.issuer+"/.well-known/openid-configuration", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.1")
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := strings.Count(logs.String(), "requests arrive through a proxy"); n != 1 {
		t.Fatalf("%d proxy warnings, want 1:\n%s", n, logs.String())
	}
}
