// Package binaries builds the control-plane programs the end-to-end suite
// runs (kube-apiserver and kubectl from k8s.io/kubernetes, etcd from
// go.etcd.io/etcd/server/v3) once, into a cache folder outside the
// repository, and reuses them afterwards.
//
// The versions are the ones pinned by the e2e module's go.mod (Kubernetes)
// and by tools/etcd/go.mod (etcd, which needs its own module because
// Kubernetes requires a newer etcd than the one pinned). The cache folder is
// $GATEHOUSE_E2E_CACHE, or $HOME/.cache/gatehouse-e2e; inside it each set of
// versions has its own subfolder, so changing a pin builds anew. A file lock
// makes parallel test processes wait for one build instead of building twice.
package binaries

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// CacheEnv is the environment variable that names the cache folder.
const CacheEnv = "GATEHOUSE_E2E_CACHE"

// Paths are the absolute paths of the built programs.
type Paths struct {
	// Dir is the versioned cache subfolder holding the programs.
	Dir           string
	KubeAPIServer string
	Kubectl       string
	Etcd          string
	// KubernetesVersion and EtcdVersion are the module versions built.
	KubernetesVersion string
	EtcdVersion       string
}

// CacheRoot returns the cache folder: $GATEHOUSE_E2E_CACHE, else
// $HOME/.cache/gatehouse-e2e.
func CacheRoot() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("binaries: no %s and no home folder: %w", CacheEnv, err)
	}
	return filepath.Join(home, ".cache", "gatehouse-e2e"), nil
}

// ModuleDir returns the root folder of the e2e module (the folder holding
// its go.mod), found from this source file's location.
func ModuleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("binaries: cannot locate source file")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("binaries: e2e module not found at %s: %w", dir, err)
	}
	return filepath.Clean(dir), nil
}

// program is one binary to build: its import path, the module folder to
// build it in, and the module whose version it carries.
type program struct {
	name    string
	pkg     string
	dir     string
	module  string
	ldflags func(version string) string
}

func kubeLDFlags(version string) string {
	major, minor := "", ""
	if v := strings.TrimPrefix(version, "v"); v != version {
		parts := strings.SplitN(v, ".", 3)
		if len(parts) >= 2 {
			major, minor = parts[0], parts[1]
		}
	}
	var b strings.Builder
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
			pkg, version, pkg, major, pkg, minor, pkg)
	}
	return "-s -w" + b.String()
}

func programs(moduleDir string) []program {
	etcdDir := filepath.Join(moduleDir, "tools", "etcd")
	return []program{
		{name: "kube-apiserver", pkg: "k8s.io/kubernetes/cmd/kube-apiserver", dir: moduleDir, module: "k8s.io/kubernetes", ldflags: kubeLDFlags},
		{name: "kubectl", pkg: "k8s.io/kubernetes/cmd/kubectl", dir: moduleDir, module: "k8s.io/kubernetes", ldflags: kubeLDFlags},
		{name: "etcd", pkg: "go.etcd.io/etcd/server/v3", dir: etcdDir, module: "go.etcd.io/etcd/server/v3", ldflags: func(string) string { return "-s -w" }},
	}
}

// Options tune Ensure.
type Options struct {
	// Log receives progress lines (build start and end); nil discards them.
	Log io.Writer
	// LockTimeout bounds the wait for another process's build; zero means 45 minutes.
	LockTimeout time.Duration
}

// Locate returns where the programs for the pinned versions are (or will
// be) in the cache, without building anything.
func Locate(ctx context.Context) (Paths, error) {
	moduleDir, err := ModuleDir()
	if err != nil {
		return Paths{}, err
	}
	root, err := CacheRoot()
	if err != nil {
		return Paths{}, err
	}
	versions := map[string]string{}
	for _, p := range programs(moduleDir) {
		if _, ok := versions[p.module]; ok {
			continue
		}
		v, err := moduleVersion(ctx, p.dir, p.module)
		if err != nil {
			return Paths{}, err
		}
		versions[p.module] = v
	}
	goVersion := runtime.Version()
	if out, err := goCmd(ctx, moduleDir, "env", "GOVERSION"); err == nil {
		goVersion = strings.TrimSpace(out)
	}
	key := fmt.Sprintf("kubernetes-%s_etcd-%s_%s_%s-%s",
		versions["k8s.io/kubernetes"], versions["go.etcd.io/etcd/server/v3"], goVersion, runtime.GOOS, runtime.GOARCH)
	dir := filepath.Join(root, key)
	return Paths{
		Dir:               dir,
		KubeAPIServer:     filepath.Join(dir, "kube-apiserver"),
		Kubectl:           filepath.Join(dir, "kubectl"),
		Etcd:              filepath.Join(dir, "etcd"),
		KubernetesVersion: versions["k8s.io/kubernetes"],
		EtcdVersion:       versions["go.etcd.io/etcd/server/v3"],
	}, nil
}

// Ensure returns the paths of the cached programs, building them first
// when the cache has no complete build for the pinned versions.
func Ensure(ctx context.Context, opts Options) (Paths, error) {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	paths, err := Locate(ctx)
	if err != nil {
		return Paths{}, err
	}
	moduleDir, err := ModuleDir()
	if err != nil {
		return Paths{}, err
	}
	progs := programs(moduleDir)
	versions := map[string]string{"k8s.io/kubernetes": paths.KubernetesVersion, "go.etcd.io/etcd/server/v3": paths.EtcdVersion}
	dir := paths.Dir
	stamp := filepath.Join(dir, ".complete")
	if _, err := os.Stat(stamp); err == nil {
		return paths, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Paths{}, fmt.Errorf("binaries: create cache folder: %w", err)
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = 45 * time.Minute
	}
	unlock, err := lockFile(ctx, dir+".lock", timeout)
	if err != nil {
		return Paths{}, err
	}
	defer unlock()
	// Another process may have finished the build while we waited.
	if _, err := os.Stat(stamp); err == nil {
		return paths, nil
	}
	for _, p := range progs {
		out := filepath.Join(dir, p.name)
		if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			fmt.Fprintf(logw, "binaries: reusing %s\n", out)
			continue
		}
		start := time.Now()
		fmt.Fprintf(logw, "binaries: building %s (%s %s) into %s\n", p.name, p.module, versions[p.module], dir)
		tmp := out + ".tmp"
		if _, err := goCmd(ctx, p.dir, "build", "-trimpath", "-ldflags", p.ldflags(versions[p.module]), "-o", tmp, p.pkg); err != nil {
			_ = os.Remove(tmp)
			return Paths{}, fmt.Errorf("binaries: build %s: %w", p.name, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			return Paths{}, fmt.Errorf("binaries: install %s: %w", p.name, err)
		}
		fmt.Fprintf(logw, "binaries: built %s in %s\n", p.name, time.Since(start).Round(time.Second))
	}
	if err := os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return Paths{}, fmt.Errorf("binaries: write stamp: %w", err)
	}
	return paths, nil
}

func moduleVersion(ctx context.Context, dir, module string) (string, error) {
	out, err := goCmd(ctx, dir, "list", "-m", "-f", "{{.Version}}", module)
	if err != nil {
		return "", fmt.Errorf("binaries: version of %s: %w", module, err)
	}
	v := strings.TrimSpace(out)
	if v == "" {
		return "", fmt.Errorf("binaries: %s has no version in %s", module, dir)
	}
	return v, nil
}

// goCmd runs the go command in dir with a clean build environment and
// returns its standard output.
func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	// go test and go run put their own toolchain first on PATH. -mod=mod:
	// the e2e go.sum may lag behind dependencies the main module adds.
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// lockFile takes an exclusive flock on path, polling until timeout or ctx
// ends, and returns the function that releases it.
func lockFile(ctx context.Context, path string, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("binaries: open lock: %w", err)
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
			return nil, fmt.Errorf("binaries: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("binaries: waited %s for another build holding %s", timeout, path)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("binaries: waiting for lock: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
