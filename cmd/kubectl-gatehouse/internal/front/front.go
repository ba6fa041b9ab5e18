// Package front is the small part of the one-file kubectl-gatehouse: it
// serves get-token's warm path (a cached ID token that outlives the margin)
// by itself and hands every other run, unchanged, to the full plugin (the
// engine), whose executable is embedded in the same file.
//
// Go initialises every package linked into an executable at every start,
// and the full plugin links an HTTPS client and the OIDC libraries. This
// package links only the token cache, the JWT exp decoder and the
// ExecCredential writer (TestFrontDependencies in cmd/kubectl-gatehouse
// keeps it so), so a warm kubectl command costs little more than starting
// a process.
//
// Starting the engine (Main, on anything but a cache hit):
//
//   - Linux: the engine is copied into an anonymous in-memory file
//     (memfd_create, sealed against writes) and exec'd through
//     /proc/self/fd; nothing is written to disk. When the kernel refuses
//     (vm.memfd_noexec=2, an LSM, no /proc), it falls back to extraction.
//   - Every OS: extraction to os.UserCacheDir()/gatehouse/engine-<sha256>
//     (a 0700 folder owned by the user; the file 0700, written to a
//     temporary file and renamed), verified against the SHA-256 of the
//     embedded bytes through the same open file that is then run. On unix
//     the engine replaces this process (exec: same pid, stdin, stdout,
//     stderr, signals, exit code); elsewhere it runs as a child whose exit
//     code is passed on.
//
// The engine gets the same argv (argv[0] included, so it answers under the
// name kubectl used: kubectl-oidc_login or kubectl-gatehouse) and the same
// environment.
package front

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/klogflag"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/login/warm"
)

// Main runs the plugin for args (os.Args) with the engine executable
// engine, and returns the exit code. On unix it does not return when it
// starts the engine: the engine replaces the process.
func Main(args []string, engine []byte) int {
	return launcher{engine: engine}.main(args)
}

// launcher starts the engine. The zero values of the fields other than
// engine are what releases use; the package's tests set them.
type launcher struct {
	engine []byte
	// cacheRoot replaces os.UserCacheDir().
	cacheRoot string
	// noMemory skips the in-memory file (Linux), to test extraction.
	noMemory bool
}

func (l launcher) main(args []string) int {
	if len(args) > 1 && args[1] == "get-token" {
		if done, err := warmGetToken(args[2:]); done {
			if err != nil {
				fmt.Fprintf(os.Stderr, "error: get-token: %v\n", err)
				return 1
			}
			return 0
		}
	}
	code, err := l.start(args, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	return code
}

// warmGetToken serves a cache hit from the disk cache. Anything else (bad
// flags, no entry, expiry within the margin, --force-refresh, no cache, the
// keyring, -v 1 and up, where kubelogin logs what it does) goes to the
// engine, which also reports errors. klog's other flags are accepted as
// kubelogin accepts them: at -v 0 a cache hit logs nothing.
func warmGetToken(args []string) (bool, error) {
	var o options.Flags
	var logFlags klogflag.Flags
	f := pflag.NewFlagSet("get-token", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	o.Add(f, true)
	logFlags.Add(f)
	if f.Parse(args) != nil || f.NArg() > 0 || o.Validate() != nil || o.ForceRefresh || logFlags.Verbose() {
		return false, nil
	}
	storage, err := tokencache.ParseStorage(o.CacheStorage)
	if err != nil || storage != tokencache.StorageDisk {
		return false, nil
	}
	info, err := execcredential.ReadInfo(os.Getenv("KUBERNETES_EXEC_INFO"))
	if err != nil {
		return false, nil
	}
	o.ExpandHome()
	key, err := o.TokenKey(os.Getenv) // the exchanged token's entry with --exchange-audience or --subject-token-source
	if err != nil {
		return false, nil
	}
	return warm.Serve(os.Stdout, tokencache.Store{Dir: o.CacheDir, Storage: storage}, key, info, time.Now(), o.Margin)
}

// plainBuild is the install that needs no engine (slower to start).
const plainBuild = "go install github.com/gatehouse-dev/gatehouse/cmd/kubectl-gatehouse@latest"

// startError says why the engine could not start, both ways, and what to
// do about it.
func startError(memory, file error) error {
	return fmt.Errorf("cannot start kubectl-gatehouse's engine (from memory: %v; from the user cache folder: %w): %s", memory, file, startHint)
}
