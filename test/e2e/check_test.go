package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/binaries"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// goBinary builds one of gatehouse's commands (cmd/NAME) once per test
// process and returns its path.
func goBinary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gatehouse-e2e-bin-")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	out := filepath.Join(buildDir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	// Built in the main module, with its own go.mod, as a user builds it.
	moduleDir, err := binaries.ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, "./cmd/"+name)
	cmd.Dir = filepath.Join(moduleDir, "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

func finding(r cluster.Report, subject string) cluster.Finding {
	for _, f := range r.Findings {
		if f.Subject == subject {
			return f
		}
	}
	return cluster.Finding{}
}

func statuses(r cluster.Report) map[string]cluster.Status {
	m := map[string]cluster.Status{}
	for _, f := range r.Findings {
		m[f.Subject] = f.Status
	}
	return m
}

// TestClusterCheck compares a live cluster with the rendered config as the
// bindings go from missing to applied to edited by hand to stale, through
// the library and through `gatehouse cluster check`.
func TestClusterCheck(t *testing.T) {
	g := startGatehouse(t, time.Hour)
	cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg})
	waitOIDCReady(t, g, c)
	restCfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const crb = "ClusterRoleBinding gatehouse:group:exampleorg:infra-team:cluster-admin"
	const rb = "RoleBinding web/gatehouse:group:exampleorg:web:edit"

	check := func(want map[string]cluster.Status) {
		t.Helper()
		r, err := c.Config.Check(ctx, restCfg, cluster.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := statuses(r)
		for subject, status := range want {
			if got[subject] != status {
				var b strings.Builder
				r.Write(&b)
				t.Fatalf("%s: %q, want %q\n%s", subject, got[subject], status, b.String())
			}
		}
	}

	// kube-apiserver has an authenticator for the issuer, with its keys;
	// for another issuer URL it has none.
	issuer := "issuer " + cfg.Issuer.URL
	check(map[string]cluster.Status{issuer: cluster.StatusOK})
	other := *c.Config
	other.Issuer.URL = "https://login.example.com/dex"
	r, err := other.Check(ctx, restCfg, cluster.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f := finding(r, "issuer https://login.example.com/dex"); f.Status != cluster.StatusDiffers || !strings.Contains(f.Detail, "no authenticator for this issuer") {
		t.Errorf("check against another issuer URL: %+v", f)
	}

	// Nothing applied, namespace missing: the RoleBinding cannot be applied.
	check(map[string]cluster.Status{crb: cluster.StatusMissing, rb: cluster.StatusFailed})
	c.AdminKubectl(t, "create", "namespace", "web")
	check(map[string]cluster.Status{crb: cluster.StatusMissing, rb: cluster.StatusMissing})

	// Applied as the docs say: everything matches, and the CLI agrees.
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
	check(map[string]cluster.Status{crb: cluster.StatusOK, rb: cluster.StatusOK})
	gh := goBinary(t, "gatehouse")
	configFile := filepath.Join(c.Dir, "cluster.yaml")
	writeClusterYAML(t, configFile, c.Config)
	out, err := exec.Command(gh, "cluster", "check", "--kubeconfig", c.AdminKubeconfig, "--config", configFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "The cluster matches the configuration.") {
		t.Fatalf("gatehouse cluster check: %v\n%s", err, out)
	}

	// Someone edits a binding by hand and leaves an old one behind.
	c.AdminKubectl(t, "patch", "clusterrolebinding", "gatehouse:group:exampleorg:infra-team:cluster-admin", "--type=json",
		`-p=[{"op":"add","path":"/subjects/-","value":{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"mallory"}}]`)
	c.AdminKubectl(t, "create", "clusterrolebinding", "gatehouse:group:exampleorg:old-team:view", "--clusterrole=view", "--group=oidc:exampleorg:old-team")
	c.AdminKubectl(t, "label", "clusterrolebinding", "gatehouse:group:exampleorg:old-team:view", cluster.LabelManagedBy+"="+cluster.LabelManagedByValue)
	check(map[string]cluster.Status{
		crb: cluster.StatusDiffers, rb: cluster.StatusOK,
		"ClusterRoleBinding gatehouse:group:exampleorg:old-team:view": cluster.StatusExtra,
	})
	out, err = exec.Command(gh, "cluster", "check", "--kubeconfig", c.AdminKubeconfig, "--config", configFile).CombinedOutput()
	if err == nil {
		t.Fatalf("gatehouse cluster check exited 0 on a differing cluster:\n%s", out)
	}
	for _, want := range []string{"differs  " + crb, `User "mallory"`, "extra    ClusterRoleBinding gatehouse:group:exampleorg:old-team:view"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// writeClusterYAML writes a completed config back as cluster.yaml.
func writeClusterYAML(t *testing.T, file string, c *cluster.Config) {
	t.Helper()
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
