// Command kubectl-gatehouse is the kubectl credential plugin for
// gatehouse. Installed (or linked) as kubectl-oidc_login it answers
// kubelogin's get-token, setup and clean with kubelogin's flags.
//
// kubectl runs it for every command, so start-up is kept to what the warm
// path needs: no cobra, no client-go, nothing that initialises much (see
// docs/benchmarks.md, "kubectl plugin").
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args, cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ReadPassword: cli.TerminalPassword,
	})
	stop()
	os.Exit(code)
}
