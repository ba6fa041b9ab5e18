// Command chartcheck-helm builds (or finds in the cache) the helm 3 and
// helm 4 programs the chart checks run, and prints where they are. Run it
// ahead of the tests to warm the cache (the first build takes minutes):
//
//	go run ./deploy/helm/chartcheck/cmd/chartcheck-helm
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-dev/gatehouse/deploy/helm/chartcheck"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for _, major := range chartcheck.HelmMajors {
		start := time.Now()
		p, err := chartcheck.EnsureHelmMajor(ctx, major)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck-helm:", err)
			os.Exit(1)
		}
		fmt.Printf("helm %d: %s (%s)\n", major, p, time.Since(start).Round(time.Second))
	}
}
