package chartcheck

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// docsBlock returns the first yaml block of docs/deploy.md that starts
// with prefix, written to a file.
func docsBlock(t *testing.T, prefix string) string {
	t.Helper()
	return docsFileBlock(t, "deploy.md", prefix)
}

// docsFileBlock returns the first yaml block of docs/<page> that starts
// with prefix, written to a file.
func docsFileBlock(t *testing.T, page, prefix string) string {
	t.Helper()
	return docsBlockWith(t, page, prefix, "")
}

// docsBlockWith is docsFileBlock for the first such block that also
// contains the string with.
func docsBlockWith(t *testing.T, page, prefix, with string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(chartDir(t), "..", "..", "..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range yamlBlock.FindAllStringSubmatch(string(doc), -1) {
		if strings.HasPrefix(m[1], prefix) && strings.Contains(m[1], with) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(f, []byte(m[1]), 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("docs/%s has no yaml block starting %q with %q", page, prefix, with)
	return ""
}

// TestDocsValues renders the values docs/deploy.md shows: the install
// (section 5), plus the audit trail (9), plus PostgreSQL with three
// replicas (10); each config must load and each pod pass "restricted".
func TestDocsValues(t *testing.T) {
	helm := helmBin(t)
	install := docsBlock(t, "config:\n  issuer:")
	audit := docsBlock(t, "config:\n  audit:")
	sink := docsBlock(t, "auditSink:")
	ha := docsBlock(t, "replicaCount: 3")
	tests := []struct {
		name     string
		files    []string
		replicas int32
	}{
		{"install", []string{install}, 1},
		{"audit", []string{install, audit, sink}, 1},
		{"ha", []string{install, ha}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Template(context.Background(), helm, chartDir(t), namespace, nil, tt.files)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			deployments := Find(objs, "Deployment")
			if want := map[bool]int{true: 2, false: 1}[tt.name == "audit"]; len(deployments) != want {
				t.Fatalf("%d Deployments, want %d (the audit sink runs in its own)", len(deployments), want)
			}
			for _, o := range deployments {
				d := o.Typed.(*appsv1.Deployment)
				if !strings.HasSuffix(d.Name, "-audit-sink") && *d.Spec.Replicas != tt.replicas {
					t.Errorf("replicas %d, want %d", *d.Spec.Replicas, tt.replicas)
				}
				if err := Restricted(&d.Spec.Template); err != nil {
					t.Error(err)
				}
				if err := Hardened(&d.Spec.Template); err != nil {
					t.Error(err)
				}
			}
			checkConfig(t, objs)
			sinks := 0
			for _, s := range Find(objs, "Service") {
				if strings.HasSuffix(s.Typed.(*corev1.Service).Name, "-audit-sink") {
					sinks++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.name == "audit"]; sinks != want {
				t.Errorf("%d audit-sink Services, want %d", sinks, want)
			}
		})
	}
}
