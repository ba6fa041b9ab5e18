package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies guards the idle memory of `gatehouse serve`: the admin
// commands (cluster, kubeconfig) live in the same binary, and Go runs the
// init function of every linked package at every start, serve included.
// The packages below cost memory at start-up and are kept out; what they
// would do is done at run time instead (docs/architecture.md, Kubernetes
// API types). Figures: GODEBUG=inittrace=1 of the binary that linked them.
func TestDependencies(t *testing.T) {
	forbidden := []struct {
		pkg, why string
	}{
		{"k8s.io/client-go/kubernetes", "the clientset: `cluster check` uses client-go's REST client on a scheme of its own (internal/cluster/apiclient.go)"},
		{"k8s.io/client-go/kubernetes/scheme", "registers every API group at init (0.67 MB, 5,600 allocations)"},
		{"k8s.io/component-base", "feature gates and the legacy metrics registry, set up at init (0.2 MB, 2,000 allocations)"},
		{"k8s.io/apiserver/pkg/apis/apiserver", "imports component-base; gatehouse renders the AuthenticationConfiguration from internal/cluster/authnconfig"},
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := strings.Fields(string(out))
	linksCluster := false
	for _, pkg := range pkgs {
		linksCluster = linksCluster || pkg == "github.com/gatehouse-dev/gatehouse/internal/cluster"
		for _, f := range forbidden {
			if pkg == f.pkg || strings.HasPrefix(pkg, f.pkg+"/") {
				t.Errorf("gatehouse links %s: %s", pkg, f.why)
			}
		}
	}
	if !linksCluster {
		t.Error("gatehouse does not link internal/cluster: the list above is not the binary's")
	}
}
