// Command front is the optional fast front end of kubectl-gatehouse: a
// small executable that serves get-token's warm path (cached token valid
// beyond the margin) by itself and hands every other run, unchanged, to
// the full plugin installed beside it as kubectl-gatehouse-engine.
//
// Go initialises every package linked into an executable at every start,
// and an HTTPS client alone (net/http, crypto/tls) makes a Go program start
// about 1.45 times slower than a hello-world. The full plugin needs one;
// this front does not link it, so a warm `kubectl` command pays little
// more than starting a process (see docs/benchmarks.md, "kubectl plugin").
// The price is a second file: install this as kubectl-gatehouse (and/or
// kubectl-oidc_login) and the full build as kubectl-gatehouse-engine in the
// same folder. The single-binary install (cmd/kubectl-gatehouse alone)
// remains the default.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/login/warm"
)

// EngineName is the full plugin's file name beside the front.
const EngineName = "kubectl-gatehouse-engine"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "get-token" {
		if done, err := warmGetToken(os.Args[2:]); done {
			if err != nil {
				fmt.Fprintf(os.Stderr, "error: get-token: %v\n", err)
				os.Exit(1)
			}
			return
		}
	}
	engine, err := findEngine()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	// The engine answers under the name kubectl used (kubelogin's or ours).
	env := append(os.Environ(), "GATEHOUSE_INVOKED_AS="+filepath.Base(os.Args[0]))
	os.Exit(execEngine(engine, append([]string{engine}, os.Args[1:]...), env))
}

// warmGetToken serves a cache hit. Anything else (bad flags, no entry,
// expiry within the margin, --force-refresh) goes to the engine, which
// also reports errors.
func warmGetToken(args []string) (bool, error) {
	var o options.Flags
	f := pflag.NewFlagSet("get-token", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	o.Add(f, true)
	if f.Parse(args) != nil || f.NArg() > 0 || o.Validate() != nil || o.ForceRefresh {
		return false, nil
	}
	storage, err := tokencache.ParseStorage(o.CacheStorage)
	if err != nil || storage == tokencache.StorageNone {
		return false, nil
	}
	info, err := execcredential.ReadInfo(os.Getenv("KUBERNETES_EXEC_INFO"))
	if err != nil {
		return false, nil
	}
	o.ExpandHome()
	return warm.Serve(os.Stdout, tokencache.Store{Dir: o.CacheDir, Storage: storage}, o.Key(), info, time.Now(), o.Margin)
}

// findEngine looks beside the front, then on PATH; GATEHOUSE_ENGINE
// overrides both.
func findEngine() (string, error) {
	if e := os.Getenv("GATEHOUSE_ENGINE"); e != "" {
		return e, nil
	}
	name := EngineName
	if os.PathSeparator == '\\' {
		name += ".exe"
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("this is kubectl-gatehouse's fast front end and it needs the full plugin: install kubectl-gatehouse's full build as %s beside it (or on PATH)", name)
}
