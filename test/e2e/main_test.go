// Package e2e is gatehouse's real-cluster suite: etcd and kube-apiserver
// built from the pinned upstream sources (cached outside the repository),
// wired with what `gatehouse cluster render` produces, driven by a real
// kubectl.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/binaries"
)

// bins are the control-plane programs, built once per cache.
var bins binaries.Paths

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	start := time.Now()
	p, err := binaries.Ensure(ctx, binaries.Options{Log: os.Stderr})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: control-plane binaries: %v\n", err)
		os.Exit(1)
	}
	if d := time.Since(start); d > 5*time.Second {
		fmt.Fprintf(os.Stderr, "e2e: control-plane binaries ready in %s (%s)\n", d.Round(time.Second), p.Dir)
	}
	bins = p
	os.Exit(m.Run())
}
