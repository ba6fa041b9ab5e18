package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testConfig writes a Dex-format config (as an operator would) and
// returns its path, the issuer URL, the telemetry address and the CA.
type served struct {
	issuer, telemetry string
	client            *http.Client
}

// testTLS writes a throwaway CA and a serving certificate for 127.0.0.1
// into dir/tls.
func testTLS(t *testing.T, dir string) (*tlsutil.Bundle, tlsutil.Paths) {
	t.Helper()
	b, err := tlsutil.NewBundle([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := b.WriteDir(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	return b, paths
}

func writeConfig(t *testing.T, dir, storageBlock string) (string, served) {
	t.Helper()
	b, paths := testTLS(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	web, tel := freeAddr(t), freeAddr(t)
	issuer := "https://" + web + "/dex"
	cfg := fmt.Sprintf(`issuer: %s
storage:
%s
web:
  https: %s
  tlsCert: %s
  tlsKey: %s
  tlsMinVersion: "1.2"
telemetry:
  http: %s
oauth2:
  skipApprovalScreen: true
  passwordConnector: local
expiry:
  refreshTokens:
    reuseInterval: 0s
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: kube-secret
  redirectURIs: [http://localhost:8000]
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: %q
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
`, issuer, storageBlock, web, paths.ServerCert, paths.ServerKey, tel, string(hash))
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, served{issuer: issuer, telemetry: tel, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.CertPool()}}}}
}

// run starts serve in the background and waits until it is ready.
func run(t *testing.T, path string, s served) (stop func()) {
	t.Helper()
	return runLogged(t, path, s, io.Discard)
}

// runLogged is run with serve's log written to logOut.
func runLogged(t *testing.T, path string, s served, logOut io.Writer) (stop func()) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Every line the server logs is checked: one JSON object, no key
	// twice.
	logs := &logLines{}
	t.Cleanup(func() { logs.check(t) })
	go func() { done <- serve(ctx, cfg, io.MultiWriter(logs, logOut), nil) }()
	waitReady(t, s.telemetry, done)
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not shut down")
		}
	}
}

func passwordGrant(t *testing.T, s served, form url.Values) map[string]any {
	t.Helper()
	return postAsClient(t, s, "/token", form)
}

// postAsClient posts form to an endpoint under the issuer as the client
// "kubernetes" and returns the JSON answer with its "status".
func postAsClient(t *testing.T, s served, path string, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("kubernetes", "kube-secret")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	out["status"] = resp.StatusCode
	return out
}

func TestServeDexConfig(t *testing.T) {
	dir := t.TempDir()
	path, s := writeConfig(t, dir, "  type: memory")
	stop := run(t, path, s)
	defer stop()
	tok := passwordGrant(t, s, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid email offline_access"}})
	if tok["status"] != 200 || tok["id_token"] == nil {
		t.Fatalf("password grant: %v", tok)
	}
	resp, err := http.Get("http://" + s.telemetry + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gatehouse_tokens_issued_total{grant_type="password"} 1`, `gatehouse_http_request_duration_seconds_bucket{endpoint="token",le="0.0001"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeConfig(t, dir, "  type: memory")
	data, _ := os.ReadFile(path)
	bad := strings.Replace(string(data), "redirectURIs:", "redirectURls:", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCommand()
	cmd.SetArgs([]string{"serve", "--config", path})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "staticClients[0].redirectURls") || !strings.Contains(err.Error(), "redirectURIs") {
		t.Fatalf("bad key: %v", err)
	}
}

// TestSessionSurvivesRestart issues a refresh token, stops the server,
// starts it again on the same SQLite file, and refreshes: the session and
// the signing keys (old tokens still verify) survive.
func TestSessionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	path, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"))
	stop := run(t, path, s)
	tok := passwordGrant(t, s, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid offline_access"}})
	if tok["status"] != 200 {
		t.Fatalf("password grant: %v", tok)
	}
	keysBefore := get(t, s, "/keys")
	stop()

	stop = run(t, path, s)
	defer stop()
	if keysAfter := get(t, s, "/keys"); keysAfter != keysBefore {
		t.Fatalf("signing keys changed across a restart:\n%s\n%s", keysBefore, keysAfter)
	}
	r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if r["status"] != 200 {
		t.Fatalf("refresh after restart: %v", r)
	}
}

func get(t *testing.T, s served, path string) string {
	t.Helper()
	resp, err := s.client.Get(s.issuer + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTwoReplicasOnPostgres runs two gatehouse replicas on one PostgreSQL
// database, as behind a load balancer: they publish the same keys, and a
// session started on one rotates on the other and back.
func TestTwoReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	block := "  type: postgres\n  config:\n    dsn: " + strconv.Quote(dsn)
	pathA, a := writeConfig(t, t.TempDir(), block)
	pathB, b := writeConfig(t, t.TempDir(), block)
	// Both replicas must answer for the same issuer URL; point B's issuer
	// at A's so tokens carry one "iss", and reach B through its own port.
	data, _ := os.ReadFile(pathB)
	data = []byte(strings.Replace(string(data), "issuer: "+b.issuer, "issuer: "+a.issuer, 1))
	if err := os.WriteFile(pathB, data, 0o600); err != nil {
		t.Fatal(err)
	}
	stopA := run(t, pathA, a)
	defer stopA()
	stopB := run(t, pathB, b)
	defer stopB()
	// b still reaches replica B (its own port and CA); B issues tokens
	// under A's issuer URL.
	if ka, kb := get(t, a, "/keys"), get(t, b, "/keys"); ka != kb {
		t.Fatalf("replicas publish different key sets:\n%s\n%s", ka, kb)
	}
	tok := passwordGrant(t, a, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid offline_access"}})
	if tok["status"] != 200 {
		t.Fatalf("password grant on A: %v", tok)
	}
	r1 := passwordGrant(t, b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if r1["status"] != 200 {
		t.Fatalf("refresh on B of a session from A: %v", r1)
	}
	r2 := passwordGrant(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1["refresh_token"].(string)}})
	if r2["status"] != 200 {
		t.Fatalf("refresh on A of B's rotation: %v", r2)
	}
	// The rotated-out token replayed on B revokes the family everywhere.
	if r := passwordGrant(t, b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1["refresh_token"].(string)}}); r["status"] != 400 {
		t.Fatalf("replay on B accepted: %v", r)
	}
	if r := passwordGrant(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r2["refresh_token"].(string)}}); r["status"] != 400 {
		t.Fatalf("family not revoked on A after replay on B: %v", r)
	}
}
