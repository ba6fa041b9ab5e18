package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/deploy/helm/chartcheck"
	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// TestChartServerDryRun applies every value set of the Helm chart with a
// server-side dry-run to a real kube-apiserver, in a namespace that
// enforces, warns and audits the "restricted" Pod Security Standard: any
// error or warning fails it (issue 7).
func TestChartServerDryRun(t *testing.T) {
	ctx, opts := chartCluster(t)
	if err := chartcheck.ServerDryRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
}

// TestChartProxyRBAC gives the chart's proxy ServiceAccount and
// ClusterRole to a real kube-apiserver and makes the proxy's requests with
// that ServiceAccount's token (issue 16): impersonating a person, a team,
// a uid and the credential-id extra passes; another extra, a
// ServiceAccount, reading Secrets or Pods and TokenReviews are refused;
// with proxy.rbac.allUserExtras any extra passes.
func TestChartProxyRBAC(t *testing.T) {
	ctx, opts := chartCluster(t)
	if err := chartcheck.ProxyRBAC(ctx, opts, chartcheck.ProxyRBACCases(false)); err != nil {
		t.Error(err)
	}
	if err := chartcheck.ProxyRBAC(ctx, opts, chartcheck.ProxyRBACCases(true), "--set", "proxy.rbac.allUserExtras=true"); err != nil {
		t.Error(err)
	}
}

// chartCluster starts a control plane for the chart checks and returns a
// context bounded to 5 minutes and the options that reach it.
func chartCluster(t *testing.T) (context.Context, chartcheck.DryRunOptions) {
	t.Helper()
	sink := kube.StartSink(t, sinkToken)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: seedConfig(sink.URL+"/dex", sink.CAPEM), Mode: cluster.ModeStructured})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx, chartcheck.DryRunOptions{
		Kubectl: bins.Kubectl, Kubeconfig: c.AdminKubeconfig,
		Env: []string{"HOME=" + filepath.Join(c.Dir, "home")},
	}
}
