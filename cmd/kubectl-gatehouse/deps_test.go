package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages the command links for goos with tags.
func deps(t *testing.T, goos, tags string) []string {
	t.Helper()
	// -e: the embedengine build embeds engine.bin, which the tests do not
	// need to exist.
	cmd := exec.Command("go", "list", "-e", "-deps", "-tags", tags, ".")
	cmd.Env = append(os.Environ(), "GOOS="+goos)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// TestDependencies guards the plugin's start-up: kubectl runs it for every
// command and Go initialises every linked package at every start. It also
// keeps the plugin apart from the server (ARCHITECTURE: the plugin imports
// none of the server's packages).
func TestDependencies(t *testing.T) {
	forbidden := map[string]string{
		"github.com/gatehouse-dev/gatehouse/internal/issuer":    "server package",
		"github.com/gatehouse-dev/gatehouse/internal/storage":   "server package",
		"github.com/gatehouse-dev/gatehouse/internal/config":    "server package",
		"github.com/gatehouse-dev/gatehouse/internal/keys":      "server package",
		"github.com/gatehouse-dev/gatehouse/internal/connector": "server package",
		"github.com/gatehouse-dev/gatehouse/internal/web":       "server package",
		"github.com/gatehouse-dev/gatehouse/internal/cluster":   "server package",
		"github.com/gatehouse-dev/gatehouse/internal/audit":     "server package",
		"k8s.io/":                  "Kubernetes libraries initialise API schemes at start-up",
		"encoding/gob":             "0.4 ms of init (the cache key's gob is written by hand)",
		"go.yaml.in/":              "0.1 ms of init (apiserversim parses its YAML subset)",
		"sigs.k8s.io/yaml":         "0.1 ms of init",
		"github.com/google/cel-go": "CEL is evaluated by the API server (whoami)",
		"github.com/chromedp":      "test-only",
	}
	// klog (kubelogin's logging flags, with their meaning) is the one
	// Kubernetes library allowed: it registers no API types. cobra is
	// linked for shell completion only; its tree is built only for
	// completion and for flags before the command (internal/login/cli).
	// Their package initialisation is measured in docs/benchmarks.md.
	allowed := "k8s.io/klog/v2"
	for _, pkg := range deps(t, "linux", "") {
		if pkg == allowed || strings.HasPrefix(pkg, allowed+"/") {
			continue
		}
		for prefix, why := range forbidden {
			if pkg == prefix || strings.HasPrefix(pkg, prefix) {
				t.Errorf("kubectl-gatehouse links %s: %s", pkg, why)
			}
		}
	}
}

// TestFrontDependencies: the one-file build (embedengine) is the front
// end, and it must not link the HTTPS client or the login code: that is
// its whole point. os/exec is allowed where there is no exec(2).
func TestFrontDependencies(t *testing.T) {
	const front = "github.com/gatehouse-dev/gatehouse/cmd/kubectl-gatehouse/internal/front"
	for _, goos := range []string{"linux", "darwin", "windows"} {
		t.Run(goos, func(t *testing.T) {
			linksFront := false
			for _, pkg := range deps(t, goos, "embedengine") {
				linksFront = linksFront || pkg == front
				switch {
				case pkg == "net/http", pkg == "crypto/tls", pkg == "crypto/x509", pkg == "os/exec" && goos != "windows",
					strings.HasPrefix(pkg, "golang.org/x/oauth2"), strings.HasPrefix(pkg, "github.com/coreos/go-oidc"),
					strings.HasPrefix(pkg, "github.com/go-jose/"),
					strings.HasPrefix(pkg, "github.com/spf13/cobra"), strings.HasPrefix(pkg, "github.com/zalando/go-keyring"),
					strings.HasPrefix(pkg, "github.com/godbus/"), strings.HasPrefix(pkg, "github.com/danieljoos/wincred"),
					strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/kubeconfig"),
					strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/cli"),
					strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/flow"),
					strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"),
					strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/usecase"),
					strings.HasPrefix(pkg, "k8s.io/"), pkg == "encoding/gob":
					t.Errorf("the front links %s", pkg)
				}
			}
			if !linksFront {
				t.Errorf("the embedengine build does not link %s", front)
			}
		})
	}
}
