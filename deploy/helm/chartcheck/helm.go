// Package chartcheck checks gatehouse's Helm chart (deploy/helm/gatehouse):
// it builds the helm command from the Go module proxy once into a cache
// outside the repository, renders the chart for named value sets, decodes
// every manifest strictly into Kubernetes API types, evaluates every pod
// spec against the "restricted" Pod Security Standard with the
// pod-security-admission library, and validates the rendered
// configuration with gatehouse's own config loader. ServerDryRun applies
// the rendered manifests to a real kube-apiserver (the end-to-end suite's)
// with a server-side dry run in a namespace that enforces "restricted".
//
// helm's versions are pinned by tools/helm/go.mod (helm 3) and
// tools/helm4/go.mod (helm 4); the chart is checked with both. The cache
// folder is
// $GATEHOUSE_E2E_CACHE, else $HOME/.cache/gatehouse-e2e, the same as the
// end-to-end suite's control plane.
package chartcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// CacheEnv names the cache folder.
const CacheEnv = "GATEHOUSE_E2E_CACHE"

// KubeVersion is the Kubernetes version charts are rendered for, the one
// the end-to-end suite runs (k8s.io/kubernetes v1.37).
const KubeVersion = "1.37.0"

// sourceDir returns this package's folder, found from this file.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("chartcheck: cannot locate source file")
	}
	return filepath.Dir(file), nil
}

// ChartDir returns the chart's folder, deploy/helm/gatehouse.
func ChartDir() (string, error) {
	d, err := sourceDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d, "..", "gatehouse")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("chartcheck: chart not found: %w", err)
	}
	return filepath.Clean(dir), nil
}

// cacheRoot returns $GATEHOUSE_E2E_CACHE, else $HOME/.cache/gatehouse-e2e.
func cacheRoot() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("chartcheck: no %s and no home folder: %w", CacheEnv, err)
	}
	return filepath.Join(home, ".cache", "gatehouse-e2e"), nil
}

// HelmMajors are the helm major versions the chart is checked with.
var HelmMajors = []int{3, 4}

// EnsureHelm returns the path of helm 3, see EnsureHelmMajor.
func EnsureHelm(ctx context.Context) (string, error) { return EnsureHelmMajor(ctx, 3) }

// EnsureHelmMajor returns the path of the helm command of a major version
// (3 or 4) built from the version pinned in tools/helm/go.mod (3) or
// tools/helm4/go.mod (4), building it into the cache first when it is not
// there (a few minutes, once). A file lock makes concurrent callers wait
// for one build.
func EnsureHelmMajor(ctx context.Context, major int) (string, error) {
	d, err := sourceDir()
	if err != nil {
		return "", err
	}
	var toolDir, module string
	switch major {
	case 3:
		toolDir, module = filepath.Join(d, "tools", "helm"), "helm.sh/helm/v3"
	case 4:
		toolDir, module = filepath.Join(d, "tools", "helm4"), "helm.sh/helm/v4"
	default:
		return "", fmt.Errorf("chartcheck: no helm %d", major)
	}
	version, err := goOut(ctx, toolDir, "list", "-m", "-f", "{{.Version}}", module)
	if err != nil {
		return "", err
	}
	kube, err := goOut(ctx, toolDir, "list", "-m", "-f", "{{.Version}}", "k8s.io/client-go")
	if err != nil {
		return "", err
	}
	goVersion, err := goOut(ctx, toolDir, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, fmt.Sprintf("helm-%s_%s_%s-%s", version, goVersion, runtime.GOOS, runtime.GOARCH))
	bin := filepath.Join(dir, "helm")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("chartcheck: %w", err)
	}
	unlock, err := lock(ctx, dir+".lock", 30*time.Minute)
	if err != nil {
		return "", err
	}
	defer unlock()
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	ldflags := "-s -w -X " + module + "/internal/version.version=" + version
	if major == 3 {
		// helm 3's Makefile stamps the Kubernetes version it renders for
		// by default from the client-go it links (v0.37 -> 1.37); helm 4
		// reads it from its build info.
		if parts := strings.SplitN(strings.TrimPrefix(kube, "v"), ".", 3); len(parts) == 3 {
			for _, pkg := range []string{module + "/pkg/lint/rules", module + "/pkg/chartutil"} {
				ldflags += fmt.Sprintf(" -X %s.k8sVersionMajor=1 -X %s.k8sVersionMinor=%s", pkg, pkg, parts[1])
			}
		}
	}
	tmp := bin + ".tmp"
	if _, err := goOut(ctx, toolDir, "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, module+"/cmd/helm"); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("chartcheck: build helm %s: %w", version, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("chartcheck: %w", err)
	}
	return bin, nil
}

// goOut runs the go command in dir (its own module, with -mod=mod so its
// go.sum may lag) and returns the trimmed standard output.
func goOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// lock takes an exclusive flock on path, polling until timeout.
func lock(ctx context.Context, path string, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chartcheck: lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("chartcheck: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("chartcheck: waited %s for the helm build holding %s", timeout, path)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("chartcheck: waiting for lock: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
