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

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
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
	// Opener replaces the browser (tests).
	Opener flow.Opener
	// ReadPassword prompts without echo (nil: no prompt).
	ReadPassword func(ctx context.Context, prompt string) (string, error)
}

// KubeloginName is the executable name under which the plugin answers as
// kubelogin (`kubectl oidc-login ...`).
const KubeloginName = "kubectl-oidc_login"

// Main runs the command line args (args[0] is the program) and returns the
// exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	name := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
	if err := run(ctx, name, args, env); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0 // the flag set printed the help
		}
		fmt.Fprintf(env.Stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, name string, args []string, env Env) error {
	if len(args) < 2 {
		usage(env.Stderr, name)
		return errors.New("a command is required")
	}
	cmd, rest := args[1], args[2:]
	kubelogin := name == KubeloginName
	switch cmd {
	case "get-token":
		return getToken(ctx, args, rest, env)
	case "setup":
		return setup(ctx, rest, env)
	case "clean":
		return clean(rest, env)
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "kubectl-gatehouse version %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		usage(env.Stdout, name)
		return nil
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
	if name == KubeloginName {
		fmt.Fprint(w, `kubectl oidc-login (kubectl-gatehouse, kubelogin-compatible)

Commands:
  get-token   Run as a kubectl credential plugin
  setup       Log in and show what the cluster will make of the token
  clean       Delete the token cache
  version     Print the version
`)
		return
	}
	fmt.Fprint(w, `kubectl gatehouse: log in to Kubernetes through gatehouse (or any OIDC issuer)

Commands:
  get-token   Run as a kubectl credential plugin (kubelogin's flags)
  setup       Log in, print the claims, the username and groups the API server derives, and RBAC commands
  whoami      Ask the cluster who you are (SelfSubjectReview); --can-i lists what you may do
  logout      Revoke the refresh token at the issuer and delete the cache entry
  clean       Delete the whole token cache
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

func getToken(ctx context.Context, argv, args []string, env Env) error {
	var o options.Flags
	f := newFlagSet("get-token", env)
	o.Add(f, true)
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
	u := &usecase.GetToken{
		Cache:        tokencache.Store{Dir: o.CacheDir, Storage: storage},
		Key:          o.Key(),
		Now:          env.Now,
		Margin:       o.Margin,
		LockTimeout:  lockTimeout,
		ForceRefresh: o.ForceRefresh,
		Info:         info,
		Auth:         newLogin(&o, env),
		Stdout:       env.Stdout,
		Stderr:       env.Stderr,
		Verbose:      o.Verbosity > 0,
		Rerun:        shellQuote(argv),
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("get-token: %w", err)
	}
	return nil
}

func clean(args []string, env Env) error {
	var dir string
	f := newFlagSet("clean", env)
	f.StringVar(&dir, "token-cache-dir", tokencache.DefaultDir(), "Path to a directory of the token cache")
	var v int
	f.IntVarP(&v, "v", "v", 0, "Log level")
	if err := f.Parse(args); err != nil {
		return err
	}
	dir = tokencache.ExpandHome(dir)
	if err := (tokencache.Store{Dir: dir}).DeleteAll(); err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	fmt.Fprintf(env.Stderr, "Deleted the token cache at %s\n", dir)
	return nil
}

func logout(ctx context.Context, args []string, env Env) error {
	var o options.Flags
	f := newFlagSet("logout", env)
	o.Add(f, true)
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
	login := newLogin(&o, env)
	defer login.Close()
	u := &usecase.Logout{
		Cache: tokencache.Store{Dir: o.CacheDir, Storage: storage}, Key: o.Key(),
		Login: login, Stderr: env.Stderr,
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
