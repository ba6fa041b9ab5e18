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
	args := os.Args
	// Run by the fast front end (cmd/kubectl-gatehouse/front), answer under
	// the name kubectl used.
	if name := os.Getenv("GATEHOUSE_INVOKED_AS"); name != "" {
		args = append([]string{name}, args[1:]...)
		os.Unsetenv("GATEHOUSE_INVOKED_AS")
	}
	code := cli.Main(ctx, args, cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ReadPassword: cli.TerminalPassword,
	})
	stop()
	os.Exit(code)
}
