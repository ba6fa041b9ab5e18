package chartcheck

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
)

// TestChartCRDs: the chart installs the very definitions the kubernetes
// storage creates at start-up.
func TestChartCRDs(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "files", "crds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chart, kubernetes.CRDs) {
		t.Fatal("deploy/helm/gatehouse/files/crds.yaml differs from internal/storage/kubernetes/crds/crds.yaml: copy the latter over the former")
	}
}
