package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// proxyBinary is the program `gatehouse proxy` runs. The proxy links
// k8s.io/apiserver's authenticator and filters, which TestDependencies
// keeps out of this binary (serve's idle memory), so it is its own.
const proxyBinary = "gatehouse-proxy"

func newProxyCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "proxy [flags]",
		Short:              "Run gatehouse-proxy: team logins and the audit trail for clusters whose API server you cannot configure",
		Long:               "Runs gatehouse-proxy (installed beside gatehouse or on PATH) with the same arguments; `gatehouse proxy --help` shows its flags. See docs/proxy.md.",
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := findProxy()
			if err != nil {
				return err
			}
			return syscall.Exec(path, append([]string{path}, args...), os.Environ())
		},
	}
}

// findProxy looks beside the running executable, then on PATH.
func findProxy() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), proxyBinary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(proxyBinary)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("%s is not installed beside gatehouse or on PATH: build it with `make build` (bin/%s) or use the image, which has both", proxyBinary, proxyBinary)
		}
		return "", err
	}
	return p, nil
}
