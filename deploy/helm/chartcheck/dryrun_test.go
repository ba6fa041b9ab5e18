package chartcheck

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestServerDryRun applies every value set to a real cluster when one is
// named: GATEHOUSE_CHARTCHECK_KUBECONFIG (an admin kubeconfig) and
// GATEHOUSE_CHARTCHECK_KUBECTL. The end-to-end suite calls ServerDryRun
// against its own control plane; this test is for running it by hand.
func TestServerDryRun(t *testing.T) {
	kc, kubectl := os.Getenv("GATEHOUSE_CHARTCHECK_KUBECONFIG"), os.Getenv("GATEHOUSE_CHARTCHECK_KUBECTL")
	if kc == "" || kubectl == "" {
		t.Skip("set GATEHOUSE_CHARTCHECK_KUBECONFIG and GATEHOUSE_CHARTCHECK_KUBECTL to run against a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := ServerDryRun(ctx, DryRunOptions{Kubectl: kubectl, Kubeconfig: kc, Helm: helmBin(t)}); err != nil {
		t.Fatal(err)
	}
}

func TestBuiltinGroup(t *testing.T) {
	tests := map[string]bool{
		"v1": true, "apps/v1": true, "policy/v1": true, "networking.k8s.io/v1": true,
		"cert-manager.io/v1": false, "monitoring.coreos.com/v1": false,
	}
	for av, want := range tests {
		if got := builtinGroup(av); got != want {
			t.Errorf("builtinGroup(%q) = %v, want %v", av, got, want)
		}
	}
}

// TestProxyRBAC makes the proxy's requests with its ServiceAccount's
// token against a real cluster when one is named (as TestServerDryRun):
// the chart's ClusterRole lets through exactly what the proxy forwards,
// with the listed extras and with allUserExtras. The end-to-end suite
// runs the same against its own control plane.
func TestProxyRBAC(t *testing.T) {
	kc, kubectl := os.Getenv("GATEHOUSE_CHARTCHECK_KUBECONFIG"), os.Getenv("GATEHOUSE_CHARTCHECK_KUBECTL")
	if kc == "" || kubectl == "" {
		t.Skip("set GATEHOUSE_CHARTCHECK_KUBECONFIG and GATEHOUSE_CHARTCHECK_KUBECTL to run against a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := DryRunOptions{Kubectl: kubectl, Kubeconfig: kc, Helm: helmBin(t)}
	if err := ProxyRBAC(ctx, opts, ProxyRBACCases(false)); err != nil {
		t.Error(err)
	}
	if err := ProxyRBAC(ctx, opts, ProxyRBACCases(true), "--set", "proxy.rbac.allUserExtras=true"); err != nil {
		t.Error(err)
	}
}
