package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
)

// --cluster NAME: the per-cluster client for gatehouse's config, the
// cluster's own audience, and a kubeconfig that asks for it.
func TestClusterRenderPerCluster(t *testing.T) {
	out := t.TempDir()
	report, err := clusterCLI(t, "cluster", "render", "--issuer-url", "https://login.example.com", "--server", "https://api.prod.example.com:6443",
		"--no-audit-webhook", "--cluster", "k8s-prod", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	if !strings.Contains(report, cluster.FileGatehouseClient) {
		t.Errorf("the report does not list %s:\n%s", cluster.FileGatehouseClient, report)
	}
	client, err := os.ReadFile(filepath.Join(out, cluster.FileGatehouseClient))
	if err != nil || !strings.Contains(string(client), "- id: k8s-prod\n") || !strings.Contains(string(client), "trustedPeers:\n  - kubernetes\n") {
		t.Errorf("%s: %v\n%s", cluster.FileGatehouseClient, err, client)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(out, cluster.FileKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	user := kc.AuthInfos["oidc-k8s-prod"]
	if user == nil || user.Exec == nil || !strings.Contains(strings.Join(user.Exec.Args, " "), "--oidc-client-id=kubernetes --oidc-extra-scope=groups --oidc-extra-scope=offline_access --oidc-extra-scope=profile --exchange-audience=k8s-prod") {
		t.Errorf("kubeconfig user: %+v", user)
	}
	authn, _ := os.ReadFile(filepath.Join(out, cluster.FileAuthenticationConfig))
	if !strings.Contains(string(authn), "audiences:\n    - k8s-prod\n") {
		t.Errorf("authentication config:\n%s", authn)
	}

	if _, err := clusterCLI(t, "cluster", "render", "--issuer-url", "https://login.example.com", "--no-audit-webhook", "--cluster", "kubernetes", "--out", t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "the plugin's own client") {
		t.Errorf("--cluster kubernetes: %v", err)
	}
}
