// Command gatehouse is the gatehouse server and admin CLI: the OpenID
// Connect issuer (serve), cluster wiring (cluster), kubeconfigs
// (kubeconfig) and the audit trail (audit).
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(1)
	}
}
