// Package cli is kubectl-gatehouse's command line: it parses flags (the
// same as kubelogin's where kubelogin has them) and wires the use cases.
// stdout carries only the ExecCredential (get-token) or the command's
// report; every message goes to stderr.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache/keyring"
	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Version is set by the linker (-X) in release builds.
var Version = "dev"

// Env is the process's surroundings; tests replace parts of it.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// HTTPClient for the issuer (nil: built from the TLS flags).
	HTTPClient *http.Client
	// ActionsClient reaches GitHub Actions' token service (nil:
	// http.DefaultClient; tests pass one trusting their fake's CA).
	ActionsClient *http.Client
	// Opener replaces the browser (tests).
	Opener flow.Opener
	// ReadPassword prompts without echo (nil: no prompt).
	ReadPassword func(ctx context.Context, prompt string) (string, error)
	// Keyring for --token-cache-storage=keyring (nil: the OS keyring).
	Keyring tokencache.Keyring
	// Kubectl is the kubectl command standalone mode reads the kubeconfig
	// with (default "kubectl").
	Kubectl string
}

// KubeloginName is the executable name under which the plugin answers as
// kubelogin (`kubectl oidc-login ...`).
const KubeloginName = "kubectl-oidc_login"

// isKubeloginName reports whether the plugin runs as kubelogin: under its
// kubectl plugin name or its own (a kubeconfig may run `kubelogin
// get-token ...`). Under any other name it is kubectl-gatehouse, which
// adds whoami and logout.
func isKubeloginName(name string) bool { return name == KubeloginName || name == "kubelogin" }

// completePrefix is how kubectl (1.26 and later) asks a plugin to complete
// its arguments: it runs kubectl_complete-<plugin> ARGS.
const completePrefix = "kubectl_complete-"

// Main runs the command line args (args[0] is the program) and returns the
// exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Keyring == nil {
		env.Keyring = keyring.OS{}
	}
	if env.Kubectl == "" {
		env.Kubectl = "kubectl"
	}
	name := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
	err := run(ctx, name, args, env)
	flushLogs()
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0 // the flag set printed the help
		}
		// Errors carry the issuer's, kubectl's and the upstream's words.
		fmt.Fprintf(env.Stderr, "error: %s\n", termsafe.Lines(err.Error()))
		return 1
	}
	return 0
}

func run(ctx context.Context, name string, args []string, env Env) error {
	if plugin, ok := strings.CutPrefix(name, completePrefix); ok {
		// kubectl_complete-gatehouse ARGS is kubectl-gatehouse __complete ARGS.
		name = "kubectl-" + strings.ReplaceAll(plugin, "-", "_")
		args = append([]string{name, cobra.ShellCompRequestCmd}, args[1:]...)
	}
	kubelogin := isKubeloginName(name)
	if len(args) < 2 {
		if kubelogin {
			return standalone(ctx, name, nil, env) // kubelogin with no arguments logs in for the kubeconfig
		}
		usage(env.Stderr, name)
		return errors.New("a command is required")
	}
	cmd, rest := args[1], args[2:]
	if strings.HasPrefix(cmd, "-") && cmd != "-h" && cmd != "--help" && cmd != "--version" {
		// Flags before the command (kubelogin's klog flags are on every
		// command: `kubelogin -v1 get-token ...`), or none: standalone
		// mode. Found the way kubelogin's cobra finds it.
		c, r, err := commandTree(name, env).Find(args[1:])
		if err != nil {
			return err
		}
		if c.Parent() == nil {
			return standalone(ctx, name, args[1:], env)
		}
		cmd, rest = c.Name(), r
	}
	switch cmd {
	case "get-token":
		return getToken(ctx, args, rest, env)
	case "setup":
		return setup(ctx, name, rest, env)
	case "clean":
		return clean(rest, env)
	case "version":
		return version(rest, env)
	case "--version":
		fmt.Fprintf(env.Stdout, "kubectl-gatehouse version %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		return help(ctx, name, rest, env)
	case "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return complete(name, args[1:], env)
	}
	if !kubelogin {
		switch cmd {
		case "whoami":
			return whoami(ctx, rest, env)
		case "logout":
			return logout(ctx, rest, env)
		}
	}
	usage(env.Stderr, name)
	return fmt.Errorf("unknown command %q", cmd)
}

func usage(w io.Writer, name string) {
	if isKubeloginName(name) {
		fmt.Fprint(w, `kubectl oidc-login (kubectl-gatehouse, kubelogin-compatible)

Usage:
  kubectl oidc-login [flags]      log in for the kubeconfig's oidc auth-provider (standalone mode)
  kubectl oidc-login [command]

Commands:
  get-token   Run as a kubectl credential plugin
  setup       Log in and show what the cluster will make of the token
  clean       Delete the token cache (files and keyring)
  completion  Generate the autocompletion script for the specified shell
  version     Print the version
  help        Help about any command

Run "kubectl oidc-login COMMAND --help" for a command's flags.
`)
		return
	}
	fmt.Fprint(w, `kubectl gatehouse: log in to Kubernetes through gatehouse (or any OIDC issuer)

Commands:
  get-token   Run as a kubectl credential plugin (kubelogin's flags)
  setup       Log in, print the claims, the username and groups the API server derives, and RBAC commands
  whoami      Ask the cluster who you are (SelfSubjectReview); --can-i lists what you may do
  logout      Revoke the refresh token at the issuer and delete the cache entry
  clean       Delete the whole token cache (files and keyring)
  completion  Generate the autocompletion script for the specified shell
  version     Print the version

Run "kubectl gatehouse COMMAND --help" for a command's flags. See docs/kubectl-plugin.md.
`)
}

func newFlagSet(name string, env Env) *pflag.FlagSet {
	f := pflag.NewFlagSet(name, pflag.ContinueOnError)
	f.SetOutput(env.Stderr)
	f.SortFlags = false
	return f
}

// getTokenFlags registers get-token's flags: kubelogin's, gatehouse's
// two, and klog's.
func getTokenFlags(f *pflag.FlagSet) *options.Flags {
	var o options.Flags
	o.Add(f, true)
	addLogFlags(f)
	return &o
}

func getToken(ctx context.Context, argv, args []string, env Env) error {
	f := newFlagSet("get-token", env)
	o := getTokenFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("get-token takes no arguments, got %q", f.Args())
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	storage, err := tokencache.ParseStorage(o.CacheStorage)
	if err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	info, err := execcredential.ReadInfo(env.Getenv("KUBERNETES_EXEC_INFO"))
	if err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	o.ExpandHome()
	lockTimeout := o.LockTimeout
	if lockTimeout == 0 {
		lockTimeout = time.Duration(o.TimeoutSec)*time.Second + 30*time.Second
	}
	tokenKey, err := o.TokenKey(env.Getenv)
	if err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	login := newLogin(o, env)
	var exchange *usecase.Exchange
	if x := o.Exchange; x.Audience != "" || x.SubjectTokenSource != "" {
		exchange = &usecase.Exchange{
			Key:       tokenKey,
			Exchanger: &flow.Exchanger{Login: login, Flags: x, Getenv: env.Getenv, ActionsClient: env.ActionsClient},
			CI:        x.SubjectTokenSource != "",
		}
	}
	u := &usecase.GetToken{
		Cache:        tokencache.Store{Dir: o.CacheDir, Storage: storage, Keyring: env.Keyring},
		Key:          o.Key(),
		Exchange:     exchange,
		Now:          env.Now,
		Margin:       o.Margin,
		LockTimeout:  lockTimeout,
		ForceRefresh: o.ForceRefresh,
		Info:         info,
		Auth:         login,
		Stdout:       env.Stdout,
		Stderr:       env.Stderr,
		Logf:         vlog,
		Rerun:        shellQuote(argv),
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	return nil
}

func cleanFlags(f *pflag.FlagSet) *string {
	var dir string
	f.StringVar(&dir, "token-cache-dir", tokencache.DefaultDir(), "Path to a directory of the token cache")
	addLogFlags(f)
	return &dir
}

// clean is kubelogin's: it deletes the cache folder, then kubelogin's
// keyring items, where a missing keyring is reported but not an error.
func clean(args []string, env Env) error {
	f := newFlagSet("clean", env)
	dir := cleanFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("clean takes no arguments, got %q", f.Args())
	}
	*dir = tokencache.ExpandHome(*dir)
	store := tokencache.Store{Dir: *dir, Keyring: env.Keyring}
	if err := store.DeleteAll(); err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	fmt.Fprintf(env.Stderr, "Deleted the token cache from %s\n", *dir)
	if err := store.DeleteKeyring(); err != nil {
		fmt.Fprintf(env.Stderr, "Could not delete the token cache from the keyring: %v\n", err)
	} else {
		fmt.Fprintln(env.Stderr, "Deleted the token cache from the keyring")
	}
	return nil
}

func version(args []string, env Env) error {
	f := newFlagSet("version", env)
	addLogFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("version takes no arguments, got %q", f.Args())
	}
	fmt.Fprintf(env.Stdout, "kubectl-gatehouse version %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func logout(ctx context.Context, args []string, env Env) error {
	f := newFlagSet("logout", env)
	o := getTokenFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	storage, err := tokencache.ParseStorage(o.CacheStorage)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	o.ExpandHome()
	login := newLogin(o, env)
	defer login.Close()
	u := &usecase.Logout{
		Cache: tokencache.Store{Dir: o.CacheDir, Storage: storage, Keyring: env.Keyring}, Key: o.Key(),
		Login: login, Stderr: env.Stderr,
	}
	if o.Exchange.Audience != "" && o.Exchange.SubjectTokenSource == "" {
		k, err := o.TokenKey(env.Getenv)
		if err != nil {
			return fmt.Errorf("logout: %w", err)
		}
		u.Exchanged = append(u.Exchanged, k)
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
