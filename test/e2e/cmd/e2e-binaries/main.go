// Command e2e-binaries builds (or finds in the cache) the kube-apiserver,
// kubectl and etcd programs the end-to-end suite runs, and prints where
// they are. CI and developers can run it ahead of the tests to warm the
// cache: go run ./cmd/e2e-binaries (from test/e2e).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/binaries"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	p, err := binaries.Ensure(ctx, binaries.Options{Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("kube-apiserver %s\nkubectl %s\netcd %s\n(%s)\n", p.KubeAPIServer, p.Kubectl, p.Etcd, time.Since(start).Round(time.Second))
}
