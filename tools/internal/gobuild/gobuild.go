// Package gobuild builds gatehouse's binaries reproducibly for the image
// and release tools: static (CGO off), -trimpath, stripped, the version
// stamped with -ldflags -X, and reads what a build is made from (version,
// commit, commit time) from git.
package gobuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Module is the main module's path.
const Module = "github.com/gatehouse-dev/gatehouse"

// Packages of the binaries.
const (
	Gatehouse = Module + "/cmd/gatehouse"
	Plugin    = Module + "/cmd/kubectl-gatehouse"
	Proxy     = Module + "/cmd/gatehouse-proxy"
)

// Variables set with -X: the server's version package and the plugin's
// own (the plugin imports none of the server's packages).
var versionVars = []string{
	Module + "/internal/version.Version",
	Module + "/internal/login/cli.Version",
}

// Source is what a build is made from.
type Source struct {
	// Version is stamped into the binaries (git describe, or "dev").
	Version string
	// Revision is the full commit id ("unknown" outside git).
	Revision string
	// Time is the commit time (the Unix epoch outside git), used for every
	// timestamp in images and archives.
	Time time.Time
}

// ReadSource reads the version, commit and commit time of the git work
// tree at dir. version, when not empty, replaces git describe's answer.
// SOURCE_DATE_EPOCH, when set, replaces the commit time, as the
// reproducible-builds convention asks.
func ReadSource(ctx context.Context, dir, version string) (Source, error) {
	src := Source{Version: version, Revision: "unknown", Time: time.Unix(0, 0).UTC()}
	if out, err := git(ctx, dir, "rev-parse", "HEAD"); err == nil {
		src.Revision = out
		ct, err := git(ctx, dir, "log", "-1", "--format=%ct")
		if err != nil {
			return Source{}, err
		}
		sec, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return Source{}, fmt.Errorf("gobuild: commit time %q: %w", ct, err)
		}
		src.Time = time.Unix(sec, 0).UTC()
		if src.Version == "" {
			if d, err := git(ctx, dir, "describe", "--tags", "--always", "--dirty"); err == nil {
				src.Version = d
			}
		}
	}
	if src.Version == "" {
		src.Version = "dev"
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return Source{}, fmt.Errorf("gobuild: SOURCE_DATE_EPOCH %q: %w", e, err)
		}
		src.Time = time.Unix(sec, 0).UTC()
	}
	return src, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gobuild: git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// LDFlags returns the linker flags of a release build of version.
func LDFlags(version string) string {
	var b strings.Builder
	b.WriteString("-s -w")
	for _, v := range versionVars {
		fmt.Fprintf(&b, " -X %s=%s", v, version)
	}
	return b.String()
}

// Target is one binary for one platform.
type Target struct {
	Package string // import path: Gatehouse, Plugin or Proxy
	GOOS    string
	GOARCH  string
	Out     string // output file
	// Tags are build tags (go build -tags).
	Tags []string
	// Overlay is a go build -overlay file (JSON) that supplies generated
	// files, such as the plugin's embedded engine, without writing them
	// into the source tree.
	Overlay string
	// Revision, when set, is stamped as the server's commit
	// (internal/version.Revision), which `gatehouse version` prints.
	Revision string
}

// Build compiles t in the module at dir with CGO off, -trimpath and the
// version stamped. Builds are reproducible: the same source, Go version
// and target give the same bytes.
func Build(ctx context.Context, dir string, t Target, version string) error {
	if err := os.MkdirAll(filepath.Dir(t.Out), 0o755); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	ldflags := LDFlags(version)
	if t.Revision != "" && t.Revision != "unknown" {
		ldflags += " -X " + Module + "/internal/version.Revision=" + t.Revision
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", t.Out}
	if len(t.Tags) > 0 {
		args = append(args, "-tags", strings.Join(t.Tags, ","))
	}
	if t.Overlay != "" {
		args = append(args, "-overlay", t.Overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, t.Package)...)
	cmd.Dir = dir
	// -buildvcs=false: a dirty work tree would otherwise change the
	// binary's embedded build info; the version and commit are in the
	// stamped version and in the image labels instead.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH, "GOFLAGS=", "GOWORK=off")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gobuild: go build %s for %s/%s: %w: %s", t.Package, t.GOOS, t.GOARCH, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// ModuleRoot returns the main module's folder, found with go env GOMOD
// from the current folder.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("gobuild: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("gobuild: not inside a module")
	}
	return filepath.Dir(gomod), nil
}
