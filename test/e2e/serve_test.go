package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
	"github.com/gatehouse-dev/gatehouse/test/fakegithub"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// servedGatehouse is a `gatehouse serve` process.
type servedGatehouse struct {
	URL        string
	CAPEM      []byte
	CAFile     string
	ConfigFile string
}

// serveGatehouse runs the `gatehouse serve` binary, as an operator does,
// with config (a Dex-format config.yaml, given the issuer URL, storage
// file, listen address, TLS files and telemetry address in that order as
// %s verbs' values), until t ends.
func serveGatehouse(t *testing.T, dir string, config func(issuerURL, dbFile, web, cert, key, telemetry string) string) servedGatehouse {
	t.Helper()
	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsPaths, err := bundle.WriteDir(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	web, telemetry := freeAddr(t), freeAddr(t)
	issuerURL := "https://" + web + "/dex"
	configFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configFile, []byte(config(issuerURL, filepath.Join(dir, "gatehouse.db"), web, tlsPaths.ServerCert, tlsPaths.ServerKey, telemetry)), 0o600); err != nil {
		t.Fatal(err)
	}
	runGatehouse(t, filepath.Join(dir, "gatehouse.log"), telemetry, "serve", "--config", configFile)
	return servedGatehouse{URL: issuerURL, CAPEM: bundle.CACert, CAFile: tlsPaths.CACert, ConfigFile: configFile}
}

// runGatehouse runs the gatehouse binary with args as a process of its
// own (own process group, killed with the test), its output in logPath,
// and waits until telemetry's /healthz/ready answers 200. When t ends it
// sends SIGTERM (SIGKILL after 20 s) and, if t failed, logs the output.
func runGatehouse(t *testing.T, logPath, telemetry string, args ...string) {
	t.Helper()
	name := "gatehouse"
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		name += " " + a
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBinary(t, "gatehouse"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	if err := kube.WaitFor(60*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("%s exited", name)
		default:
		}
		resp, err := http.Get("http://" + telemetry + "/healthz/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestServeBinary runs the product as an operator does: the `gatehouse
// serve` binary from a Dex-format config.yaml (GitHub connector against the
// fake GitHub, served as GitHub Enterprise, audit sink on), the cluster
// wiring rendered with --gatehouse-config semantics from that same file,
// and the audit trail read back with `gatehouse audit query`.
func TestServeBinary(t *testing.T) {
	dir := t.TempDir()
	fx, err := fakegithub.LoadFixture(filepath.Join("..", "fakegithub", "testdata", "exampleorg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gh, err := fakegithub.Start(fakegithub.Options{Fixture: fx, TLS: true, Enterprise: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	ghCA, err := gh.WriteCAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := serveGatehouse(t, dir, func(issuerURL, dbFile, web, cert, key, telemetry string) string {
		return fmt.Sprintf(`issuer: %s
storage:
  type: sqlite3
  config: {file: %s}
web:
  https: %s
  tlsCert: %s
  tlsKey: %s
telemetry:
  http: %s
oauth2:
  skipApprovalScreen: true
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: kube-secret
  redirectURIs: [http://localhost:8000]
connectors:
- type: github
  id: github
  name: GitHub
  config:
    clientID: gatehouse-oauth-app
    clientSecret: gatehouse-oauth-secret
    redirectURI: %s/callback
    hostName: %s
    rootCA: %s
    teamNameField: slug
    orgs:
    - name: exampleorg
audit:
  enabled: true
  webhook:
    bearerTokens: [%s]
`, issuerURL, dbFile, web, cert, key, telemetry, issuerURL, gh.Host(), ghCA, sinkToken)
	})
	issuerURL, configFile := g.URL, g.ConfigFile

	// The cluster wiring, taking issuer, client and sink token from
	// gatehouse's own config.
	gcfg, err := config.Load(configFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.Parse([]byte("teams:\n  exampleorg:infra-team: cluster-admin\naudit:\n  webhook: {batchMaxWait: 1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.UseGatehouseConfig(gcfg); err != nil {
		t.Fatal(err)
	}
	cfg.Issuer.CAData = string(g.CAPEM)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured})
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))

	// octocat logs in through gatehouse and GitHub.
	b := kube.NewBrowser("http://localhost:8000", g.CAPEM, gh.CAPEM())
	b.SetCookie(gh.URL, fakegithub.LoginCookie, "octocat")
	ctx := context.Background()
	code, err := b.Login(ctx, issuerURL, "kubernetes", loginScope)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	tok, err := b.Exchange(ctx, issuerURL, "kubernetes", "kube-secret",
		url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {b.RedirectURI}})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := c.TokenKubeconfig("octocat.kubeconfig", tok.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.WaitFor(30*time.Second, func() error {
		out, _, err := c.Kubectl(ctx, kc, nil, "get", "ns", "-o", "name")
		if err == nil && !strings.Contains(out, "namespace/default") {
			return fmt.Errorf("get ns: %s", out)
		}
		return err
	}); err != nil {
		t.Fatalf("kubectl get ns as octocat: %v", err)
	}

	// kube-apiserver's webhook delivered the request to gatehouse's store,
	// where `gatehouse audit query` finds it by user and group.
	waitAuditEvent(t, configFile, `"oidc:octocat"`, "--user", "oidc:octocat", "--group", "oidc:exampleorg:infra-team", "--verb", "list", "--resource", "namespaces")
}

// waitAuditEvent waits (60 s at most) until `gatehouse audit query
// --config configFile filter... -o jsonl` prints want.
func waitAuditEvent(t *testing.T, configFile, want string, filter ...string) {
	t.Helper()
	args := append(append([]string{"audit", "query", "--config", configFile}, filter...), "-o", "jsonl")
	if err := kube.WaitFor(60*time.Second, func() error {
		out, err := exec.Command(goBinary(t, "gatehouse"), args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("gatehouse audit query: %v: %s", err, out)
		}
		if !strings.Contains(string(out), want) {
			return fmt.Errorf("no event yet: %q", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
