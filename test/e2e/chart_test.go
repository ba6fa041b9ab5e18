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
	sink := kube.StartSink(t, sinkToken)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: seedConfig(sink.URL+"/dex", sink.CAPEM), Mode: cluster.ModeStructured})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := chartcheck.ServerDryRun(ctx, chartcheck.DryRunOptions{
		Kubectl: bins.Kubectl, Kubeconfig: c.AdminKubeconfig,
		Env: []string{"HOME=" + filepath.Join(c.Dir, "home")},
	}); err != nil {
		t.Fatal(err)
	}
}
