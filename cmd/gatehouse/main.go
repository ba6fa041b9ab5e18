// Command gatehouse is the gatehouse server and admin CLI: the OpenID
// Connect issuer (serve), cluster wiring (cluster), kubeconfigs
// (kubeconfig) and the audit trail (audit).
//
// It also answers as Dex: run as `dex` (a link of that name), or with
// `dex` as its first argument the way Dex's Helm chart starts Dex's image
// (`args: [dex, serve, --web-http-addr, ..., /etc/dex/config.yaml]`, with
// the image's entrypoint in front), it takes Dex's command line and, as
// Dex's image entrypoint does, renders the config file as a template.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	args, dex := dexInvocation(os.Args)
	root := newRoot(dex)
	root.SetArgs(args)
	if dex {
		root.Use = "dex"
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, root.Name()+":", err)
		os.Exit(1)
	}
}

// dexInvocation returns the arguments to run and whether the binary was
// started as Dex's image starts Dex: as a program named dex, or with
// "dex" (or a path to it, as Dex's entrypoint also accepts) as the first
// argument, which is then dropped.
func dexInvocation(argv []string) ([]string, bool) {
	args := argv[1:]
	if filepath.Base(argv[0]) == "dex" {
		return args, true
	}
	if len(args) > 0 && filepath.Base(args[0]) == "dex" {
		return args[1:], true
	}
	return args, false
}
