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
	if err := os.WriteFile(configFile, []byte(fmt.Sprintf(`issuer: %s
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
`, issuerURL, filepath.Join(dir, "gatehouse.db"), web, tlsPaths.ServerCert, tlsPaths.ServerKey, telemetry,
		issuerURL, gh.Host(), ghCA, sinkToken)), 0o600); err != nil {
		t.Fatal(err)
	}

	// gatehouse serve, as its own process.
	logFile, err := os.Create(filepath.Join(dir, "gatehouse.log"))
	if err != nil {
		t.Fatal(err)
	}
	serve := exec.Command(goBinary(t, "gatehouse"), "serve", "--config", configFile)
	serve.Stdout, serve.Stderr = logFile, logFile
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = serve.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("gatehouse serve log:\n%s", b)
		}
	})
	if err := kube.WaitFor(60*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("gatehouse serve exited")
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
		t.Fatalf("gatehouse serve: %v", err)
	}

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
	cfg.Issuer.CAData = string(bundle.CACert)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured})
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))

	// octocat logs in through gatehouse and GitHub.
	b := kube.NewBrowser("http://localhost:8000", bundle.CACert, gh.CAPEM())
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
	if err := kube.WaitFor(45*time.Second, func() error {
		out, err := exec.Command(goBinary(t, "gatehouse"), "audit", "query", "--config", configFile,
			"--user", "oidc:octocat", "--group", "oidc:exampleorg:infra-team", "--verb", "list", "--resource", "namespaces", "-o", "jsonl").CombinedOutput()
		if err != nil {
			return fmt.Errorf("gatehouse audit query: %v: %s", err, out)
		}
		if !strings.Contains(string(out), `"oidc:octocat"`) {
			return fmt.Errorf("no event yet: %q", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
