package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestClusterRenderProxy: `cluster render --proxy URL` writes the team
// kubeconfig for the proxy (with --proxy-ca-file's CA), the files the
// proxy reads and the bindings, nothing for kube-apiserver, and says so.
func TestClusterRenderProxy(t *testing.T) {
	ca := filepath.Join("..", "..", "internal", "cluster", "testdata", "seed-proxy", "proxy-ca.pem")
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	stdout, err := clusterCLI(t, "cluster", "render", "--issuer-url", "https://login.example.com",
		"--team", "exampleorg:infra-team=cluster-admin", "--audit-webhook-token", "0123456789abcdef",
		"--proxy", "https://k8s.example.com", "--proxy-ca-file", ca, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "for gatehouse proxy at https://k8s.example.com") || !strings.Contains(stdout, "needs no flags, webhook or files on its nodes") ||
		strings.Contains(stdout, "control-plane node") {
		t.Errorf("output:\n%s", stdout)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "audit-policy.yaml audit-webhook.kubeconfig authentication-config.yaml kubeconfig proxy-values.yaml rbac.yaml" {
		t.Errorf("files %s", got)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(out, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cl := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster]
	if cl.Server != "https://k8s.example.com" || string(cl.CertificateAuthorityData) != string(caPEM) {
		t.Errorf("kubeconfig cluster %s with CA %q", cl.Server, cl.CertificateAuthorityData)
	}

	// A URL kubectl cannot use names the flag.
	_, err = clusterCLI(t, "cluster", "render", "--issuer-url", "https://login.example.com", "--no-audit-webhook",
		"--proxy", "http://k8s.example.com", "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--proxy: ") {
		t.Fatalf("error %v, want it to name --proxy", err)
	}
}
