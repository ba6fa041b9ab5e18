package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies guards the plugin's start-up: kubectl runs it for every
// command and Go initialises every linked package at every start. It also
// keeps the plugin apart from the server (ARCHITECTURE: the plugin imports
// none of the server's packages).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
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
		"github.com/spf13/cobra":   "cobra builds its command tree at every start",
		"encoding/gob":             "0.4 ms of init (the cache key's gob is written by hand)",
		"go.yaml.in/":              "0.1 ms of init (apiserversim parses its YAML subset)",
		"sigs.k8s.io/yaml":         "0.1 ms of init",
		"github.com/google/cel-go": "CEL is evaluated by the API server (whoami)",
		"github.com/chromedp":      "test-only",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for prefix, why := range forbidden {
			if pkg == prefix || strings.HasPrefix(pkg, prefix) {
				t.Errorf("kubectl-gatehouse links %s: %s", pkg, why)
			}
		}
	}
}
