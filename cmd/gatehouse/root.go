package main

import (
	"github.com/spf13/cobra"
)

// newRootCommand builds the command tree. Each subcommand lives in its own
// file and registers itself here.
func newRootCommand() *cobra.Command { return newRoot(false) }

// newRoot builds the command tree; dexImage: see newServeCommand.
func newRoot(dexImage bool) *cobra.Command {
	root := &cobra.Command{
		Use:           "gatehouse",
		Short:         "Single sign-on to Kubernetes through GitHub teams or any OIDC provider, with a central audit trail",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand())
	root.AddCommand(newServeCommand(dexImage))
	root.AddCommand(newAuditCommand())
	root.AddCommand(newClusterCommand())
	root.AddCommand(newKubeconfigCommand())
	root.AddCommand(newMigrateCommand())
	root.AddCommand(newProxyCommand())
	return root
}
