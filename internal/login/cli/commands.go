package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commandTree is the plugin's command line as a cobra command tree, with
// the flags of each command registered by the same functions its parser
// uses. It is built only for what cobra does better than a flag set:
// shell completion (`completion bash|zsh|fish|powershell`, and the hidden
// `__complete` that the scripts and kubectl call) and finding the command
// among flags that come before it (`kubelogin -v1 get-token ...`), the way
// kubelogin (a cobra program) finds it. It is never built for a plain
// `get-token ...` run: building it costs every command its flags.
func commandTree(name string, env Env) *cobra.Command {
	run := func(*cobra.Command, []string) error { return nil }
	with := func(c *cobra.Command, add func(*pflag.FlagSet)) *cobra.Command {
		f := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
		add(f)
		c.Flags().AddFlagSet(f)
		c.RunE = run
		c.SilenceErrors, c.SilenceUsage = true, true
		return c
	}
	root := with(&cobra.Command{Use: name, Short: "Log in to the OpenID Connect provider", Args: cobra.NoArgs},
		func(f *pflag.FlagSet) { standaloneFlags(f) })
	root.Version = Version // --version, as kubelogin's root has
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(
		with(&cobra.Command{Use: "get-token [flags]", Short: "Run as a kubectl credential plugin", Args: cobra.NoArgs},
			func(f *pflag.FlagSet) { getTokenFlags(f) }),
		with(&cobra.Command{Use: "setup", Short: "Log in and show what the cluster will make of the token", Args: cobra.NoArgs},
			func(f *pflag.FlagSet) { setupFlags(f) }),
		with(&cobra.Command{Use: "clean [flags]", Short: "Delete the token cache", Args: cobra.NoArgs},
			func(f *pflag.FlagSet) { cleanFlags(f) }),
		with(&cobra.Command{Use: "version", Short: "Print the version information", Args: cobra.NoArgs}, addLogFlags),
	)
	if !isKubeloginName(name) {
		root.AddCommand(
			with(&cobra.Command{Use: "whoami", Short: "Ask the cluster who you are", Args: cobra.NoArgs},
				func(f *pflag.FlagSet) { whoamiFlags(f) }),
			with(&cobra.Command{Use: "logout", Short: "Revoke the refresh token and delete the cache entry", Args: cobra.NoArgs},
				func(f *pflag.FlagSet) { getTokenFlags(f) }),
		)
	}
	return root
}

// complete runs cobra's completion commands: `completion SHELL` prints the
// script for the name the plugin runs under (kubectl-oidc_login,
// kubectl-gatehouse, kubelogin), which calls back `NAME __complete ...`.
func complete(name string, args []string, env Env) error {
	root := commandTree(name, env)
	root.SetArgs(args)
	return root.Execute()
}

// help is `help [COMMAND]`: the usage, or the command's flags.
func help(ctx context.Context, name string, args []string, env Env) error {
	if len(args) == 0 {
		usage(env.Stdout, name)
		return nil
	}
	switch args[0] {
	case "get-token", "setup", "clean", "version", "whoami", "logout":
		return run(ctx, name, []string{name, args[0], "--help"}, env)
	case "completion":
		return complete(name, []string{"completion", "--help"}, env)
	}
	usage(env.Stderr, name)
	return fmt.Errorf("unknown help topic %q", args[0])
}
