package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// startStorageCluster runs a control plane for the kubernetes storage
// tests (its OIDC wiring is unused).
func startStorageCluster(t *testing.T) *kube.Cluster {
	t.Helper()
	sink := kube.StartSink(t, sinkToken)
	return kube.Start(t, kube.Options{Binaries: bins, Config: seedConfig(sink.URL+"/dex", sink.CAPEM), Mode: cluster.ModeStructured})
}

// namespaces hands out fresh namespace names.
var namespaces atomic.Int64

// newNamespace creates an empty namespace and returns its name.
func newNamespace(t *testing.T, c *kube.Cluster, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, namespaces.Add(1))
	c.AdminKubectl(t, "create", "namespace", ns)
	return ns
}

// openKubeStorage opens the kubernetes storage on namespace ns as the
// cluster admin, closed when t ends.
func openKubeStorage(t *testing.T, c *kube.Cluster, ns string) *kubernetes.Storage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := kubernetes.Open(ctx, kubernetes.Config{KubeConfigFile: c.AdminKubeconfig, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestKubernetesStorageConformance runs the storage conformance suite,
// the one SQLite and PostgreSQL pass, on custom resources of a real
// kube-apiserver: each case in a namespace of its own.
func TestKubernetesStorageConformance(t *testing.T) {
	c := startStorageCluster(t)
	conformance.Run(t, func(t *testing.T) storage.Storage {
		return openKubeStorage(t, c, newNamespace(t, c, "conformance"))
	})
	t.Run("Persistence", func(t *testing.T) {
		ns := newNamespace(t, c, "persistence")
		conformance.RunPersistence(t, func(t *testing.T) storage.Storage {
			return openKubeStorage(t, c, ns)
		})
	})
}
