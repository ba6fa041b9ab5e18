package chartcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// DryRunOptions say where ServerDryRun applies the chart.
type DryRunOptions struct {
	// Kubectl is the kubectl program (the end-to-end suite's).
	Kubectl string
	// Kubeconfig is an admin kubeconfig for the cluster.
	Kubeconfig string
	// Helm is the helm program; empty: EnsureHelm.
	Helm string
	// Namespace is created (or updated) with the pod-security labels
	// enforce, warn and audit set to restricted; default
	// "gatehouse-chartcheck".
	Namespace string
	// Env is added to kubectl's environment (e.g. HOME).
	Env []string
}

// prepare checks opts for caller and returns the namespace (default
// defaultNS), the helm program (EnsureHelm when not given) and the
// chart's folder.
func (opts DryRunOptions) prepare(ctx context.Context, caller, defaultNS string) (ns, helm, chart string, err error) {
	if opts.Kubectl == "" || opts.Kubeconfig == "" {
		return "", "", "", fmt.Errorf("chartcheck: %s needs Kubectl and Kubeconfig", caller)
	}
	ns = opts.Namespace
	if ns == "" {
		ns = defaultNS
	}
	helm = opts.Helm
	if helm == "" {
		if helm, err = EnsureHelm(ctx); err != nil {
			return "", "", "", err
		}
	}
	chart, err = ChartDir()
	return ns, helm, chart, err
}

// builtinGroup reports whether an apiVersion is served by every
// kube-apiserver (no CRD needed).
func builtinGroup(apiVersion string) bool {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return true // core "v1"
	}
	return !strings.Contains(group, ".") || strings.HasSuffix(group, ".k8s.io")
}

// ServerDryRun renders the chart for every value set (ValueSets) into
// opts.Namespace and applies each rendering to the cluster with
// `kubectl apply --server-side --dry-run=server`, so that kube-apiserver's
// own validation and admission (PodSecurity "restricted" among them) judge
// every object without creating any. The namespace is labelled
// pod-security.kubernetes.io/{enforce,warn,audit}=restricted (warn makes
// Deployments' pod templates answer too). An error, or any "Warning:" line
// kubectl prints, fails the check. Objects of custom resources
// (cert-manager, prometheus-operator) are left out: a bare test cluster has
// no CRDs for them.
func ServerDryRun(ctx context.Context, opts DryRunOptions) error {
	ns, helm, chart, err := opts.prepare(ctx, "ServerDryRun", "gatehouse-chartcheck")
	if err != nil {
		return err
	}
	sets, err := ValueSets()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "chartcheck-dryrun-")
	if err != nil {
		return fmt.Errorf("chartcheck: %w", err)
	}
	defer os.RemoveAll(dir)

	nsDoc := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/warn-version: latest
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/audit-version: latest
`, ns)
	nsFile := filepath.Join(dir, "namespace.yaml")
	if err := os.WriteFile(nsFile, []byte(nsDoc), 0o600); err != nil {
		return fmt.Errorf("chartcheck: %w", err)
	}
	if _, err := kubectl(ctx, opts, "apply", "--server-side", "--field-manager=chartcheck", "-f", nsFile); err != nil {
		return err
	}

	var errs []error
	for _, vs := range sets {
		out, err := Template(ctx, helm, chart, ns, vs.APIVersions, []string{vs.File})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", vs.Name, err))
			continue
		}
		objs, err := Decode(out)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", vs.Name, err))
			continue
		}
		var docs []string
		for _, o := range objs {
			var tm struct {
				APIVersion string `json:"apiVersion"`
			}
			if err := yaml.Unmarshal(o.Raw, &tm); err != nil {
				return fmt.Errorf("chartcheck: %w", err)
			}
			if builtinGroup(tm.APIVersion) {
				docs = append(docs, string(o.Raw))
			}
		}
		file := filepath.Join(dir, vs.Name+".yaml")
		// JSON documents are YAML; one per line-separated document.
		if err := os.WriteFile(file, []byte(strings.Join(docs, "\n---\n")), 0o600); err != nil {
			return fmt.Errorf("chartcheck: %w", err)
		}
		stderr, err := kubectl(ctx, opts, "apply", "--server-side", "--dry-run=server", "--field-manager=chartcheck",
			"--namespace", ns, "-f", file)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", vs.Name, err))
			continue
		}
		for _, line := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "Warning:") {
				errs = append(errs, fmt.Errorf("%s: kube-apiserver warned: %s", vs.Name, strings.TrimSpace(line)))
			}
		}
	}
	return errors.Join(errs...)
}

// kubectl runs kubectl with opts' kubeconfig and returns its standard
// error (warnings).
func kubectl(ctx context.Context, opts DryRunOptions, args ...string) (string, error) {
	_, stderr, err := runKubectl(ctx, opts, args...)
	return stderr, err
}

// runKubectl runs kubectl with opts' kubeconfig and returns its standard
// output and standard error.
func runKubectl(ctx context.Context, opts DryRunOptions, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, opts.Kubectl, append([]string{"--kubeconfig=" + opts.Kubeconfig}, args...)...)
	cmd.Env = append(append([]string{}, os.Environ()...), opts.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), nil
}
