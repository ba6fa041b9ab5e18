package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/binaries"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/workload"
)

// ciDoc holds docs/ci.md's blocks, which TestPipeline runs as written:
// gatehouse's config (connector and client), cluster.yaml, and the
// kubeconfig the workflow writes.
type ciDoc struct {
	gatehouse, cluster, kubeconfig string
}

// readCIDoc takes the blocks out of docs/ci.md: the yaml blocks that start
// with "connectors:" and "issuer:", and the workflow's kubeconfig heredoc.
func readCIDoc(t *testing.T) ciDoc {
	t.Helper()
	moduleDir, err := binaries.ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(moduleDir, "..", "..", "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	var d ciDoc
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		switch block := m[1]; {
		case strings.HasPrefix(block, "connectors:"):
			d.gatehouse = block
		case strings.HasPrefix(block, "issuer:"):
			d.cluster = block
		case strings.Contains(block, "<<EOF"):
			_, rest, _ := strings.Cut(block, "<<EOF\n")
			body, _, ok := strings.Cut(rest, "\n        EOF\n")
			if !ok {
				t.Fatal("docs/ci.md: the workflow's kubeconfig heredoc has no EOF line")
			}
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				lines = append(lines, strings.TrimPrefix(l, "        "))
			}
			d.kubeconfig = strings.Join(lines, "\n") + "\n"
		}
	}
	if d.gatehouse == "" || d.cluster == "" || d.kubeconfig == "" {
		t.Fatalf("docs/ci.md: missing a block (gatehouse config %t, cluster.yaml %t, kubeconfig %t)", d.gatehouse != "", d.cluster != "", d.kubeconfig != "")
	}
	return d
}

// docIssuer is the issuer URL docs/ci.md is written for.
const docIssuer = "https://login.example.com"

// pipelineConfig is docs/ci.md's issuer configuration as written, pointed
// at the test's GitHub Actions stand-in (and its CA) and the test issuer's
// URL.
func pipelineConfig(t *testing.T, doc ciDoc, workloadURL, workloadCA string) func(issuerURL, dbFile, web, cert, key, telemetry string) string {
	const ghIssuer = "    issuer: https://token.actions.githubusercontent.com\n"
	if !strings.Contains(doc.gatehouse, ghIssuer) {
		t.Fatalf("docs/ci.md's connector is not for %q:\n%s", ghIssuer, doc.gatehouse)
	}
	return func(issuerURL, dbFile, web, cert, key, telemetry string) string {
		body := strings.Replace(doc.gatehouse, ghIssuer, "    issuer: "+workloadURL+"\n    rootCAs: ["+workloadCA+"]\n", 1)
		body = strings.ReplaceAll(body, docIssuer, issuerURL)
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
`, issuerURL, dbFile, web, cert, key, telemetry) + body
	}
}

// ciKubeconfig is docs/ci.md's kubeconfig as the workflow writes it, for
// this cluster and issuer; the issuer's CA (a test CA, not publicly
// trusted) and the cache folder are added to the plugin's arguments.
func ciKubeconfig(t *testing.T, doc ciDoc, file, server string, serverCA []byte, issuerURL, issuerCAFile, cacheDir string) {
	t.Helper()
	const last = "      - --connector-id=github-actions\n"
	if !strings.Contains(doc.kubeconfig, last) {
		t.Fatalf("docs/ci.md's kubeconfig has no %q:\n%s", last, doc.kubeconfig)
	}
	kc := strings.NewReplacer("$SERVER_CA", base64.StdEncoding.EncodeToString(serverCA), "$SERVER", server, docIssuer, issuerURL,
		last, last+"      - --certificate-authority="+issuerCAFile+"\n      - --token-cache-dir="+cacheDir+"\n").Replace(doc.kubeconfig)
	if err := os.WriteFile(file, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: deploy
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0
`

// TestPipeline is docs/ci.md on a real kube-apiserver: a GitHub Actions
// job's token (from a stand-in with its own TLS and keys, served where
// ACTIONS_ID_TOKEN_REQUEST_URL points) is exchanged by `gatehouse serve`
// through its oidc connector; kubectl, with the CI kubeconfig, applies a
// Deployment under the RBAC bound to the repository's group. Another
// repository's job is Forbidden; jobs the subject policy leaves out (a
// staging environment, another organisation, an organisation of the same
// name but another owner ID) get no token at all.
func TestPipeline(t *testing.T) {
	dir := t.TempDir()
	wl := workload.Start(t, dir)
	jobs := map[string]workload.Job{
		"job-deploy":  {Repository: "exampleorg/deploy", OwnerID: "1001", Environment: "production", Ref: "refs/heads/main"},
		"job-other":   {Repository: "exampleorg/other", OwnerID: "1001", Environment: "production", Ref: "refs/heads/main"},
		"job-staging": {Repository: "exampleorg/deploy", OwnerID: "1001", Environment: "staging", Ref: "refs/heads/main"},
		"job-fork":    {Repository: "otherorg/deploy", OwnerID: "2002", Environment: "production", Ref: "refs/heads/main"},
		// The organisation's name taken by someone else (deleted and
		// created again): same sub, another owner ID.
		"job-impostor": {Repository: "exampleorg/deploy", OwnerID: "6666", Environment: "production", Ref: "refs/heads/main"},
	}
	for token, job := range jobs {
		wl.AddJob(token, job)
	}
	doc := readCIDoc(t)
	g := serveGatehouse(t, dir, pipelineConfig(t, doc, wl.URL, wl.CAFile))

	cfg, err := cluster.Parse([]byte(doc.cluster))
	if err != nil {
		t.Fatalf("docs/ci.md's cluster.yaml: %v", err)
	}
	cfg.Name = "prod"
	cfg.Issuer.URL, cfg.Issuer.CAData = g.URL, string(g.CAPEM)
	cfg.Audit.Webhook.Disabled = true
	// ci.md binds edit; its rules are aggregated by kube-controller-manager,
	// which this control plane does not run, so the test binds a role with
	// the rules written out.
	const group = "gha:exampleorg/deploy:production"
	if b := cfg.Teams[group]; b.Role != "edit" || b.Namespace != "deploy" {
		t.Fatalf("docs/ci.md binds %s to %+v", group, b)
	}
	cfg.Teams[group] = cluster.Binding{Role: "deployer", Namespace: "deploy"}
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured})
	c.AdminKubectl(t, "create", "namespace", "deploy")
	c.AdminKubectl(t, "create", "clusterrole", "deployer", "--verb=get,list,watch,create,update,patch,delete", "--resource=deployments.apps")
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))

	binDir := filepath.Join(c.Dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(goBinary(t, "kubectl-gatehouse"), filepath.Join(binDir, "kubectl-gatehouse")); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(c.Dir, "deployment.yaml")
	if err := os.WriteFile(manifest, []byte(deployment), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(c.Dir, "ci.kubeconfig")
	// One cache folder for every job, as on a self-hosted runner.
	ciKubeconfig(t, doc, kubeconfig, c.Server, c.CAPEM, g.URL, g.CAFile, filepath.Join(c.Dir, "token-cache"))
	job := func(requestToken string, args ...string) (string, error) {
		env := []string{
			"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
			"ACTIONS_ID_TOKEN_REQUEST_URL=" + wl.RequestURL(),
			"ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + requestToken,
			// GitHub's token service is publicly trusted; its stand-in's
			// CA is made the system's for the plugin.
			"SSL_CERT_FILE=" + wl.CAFile,
		}
		out, stderr, err := c.Kubectl(context.Background(), kubeconfig, env, args...)
		return out + stderr, err
	}

	// The deploy job: kube-apiserver fetches the issuer's keys in the
	// background after start, so the first command is retried.
	var out string
	if err := kube.WaitFor(45*time.Second, func() error {
		out, err = job("job-deploy", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}")
		return err
	}); err != nil {
		t.Fatalf("the deploy job's kubectl: %v", err)
	}
	if !strings.Contains(out, "oidc:repo:exampleorg/deploy:environment:production") || !strings.Contains(out, "oidc:gha:exampleorg/deploy:production") {
		t.Fatalf("whoami as the deploy job: %s", out)
	}
	if out, err := job("job-deploy", "apply", "-f", manifest); err != nil {
		t.Fatalf("the deploy job's kubectl apply: %v\n%s", err, out)
	}
	if out := c.AdminKubectl(t, "get", "deployment", "web", "-n", "deploy", "-o", "jsonpath={.metadata.managedFields[0].manager}"); out != "kubectl-client-side-apply" {
		t.Errorf("the Deployment's manager = %q", out)
	}
	requests := wl.Requests()
	if _, err := job("job-deploy", "get", "deployment", "-n", "deploy"); err != nil {
		t.Errorf("second command of the deploy job: %v", err)
	}
	if n := wl.Requests() - requests; n != 0 {
		t.Errorf("the second command asked GitHub for %d tokens, want 0 (cached)", n)
	}

	// Another repository of the organisation: a token, but no binding.
	out, err = job("job-other", "apply", "-f", manifest)
	if err == nil || !strings.Contains(out, "Forbidden") && !strings.Contains(out, "forbidden") {
		t.Errorf("another repository's apply: err %v, want Forbidden\n%s", err, out)
	}
	if !strings.Contains(out, "oidc:repo:exampleorg/other:environment:production") {
		t.Errorf("the refusal does not name the other repository's user (was the deploy job's cached token used?):\n%s", out)
	}
	// Outside the subject policy: the issuer refuses the exchange.
	for _, tok := range []string{"job-staging", "job-fork", "job-impostor"} {
		out, err := job(tok, "get", "deployment", "-n", "deploy")
		if err == nil || !strings.Contains(out, "invalid_grant") {
			t.Errorf("%s: err %v, want the exchange refused with invalid_grant\n%s", tok, err, out)
		}
	}
	// A job without `permissions: id-token: write` has no request URL.
	out, _, err = c.Kubectl(context.Background(), kubeconfig, []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}, "get", "ns")
	if err == nil || !strings.Contains(out+err.Error(), "permissions: id-token: write") {
		t.Errorf("without the request variables: err %v, want advice on id-token: write\n%s", err, out)
	}
}
