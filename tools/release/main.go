// Command release cross-compiles kubectl-gatehouse for linux, darwin and
// windows and gatehouse for linux and darwin, on amd64 and arm64, packs
// each into an archive
// (tar.gz; zip for windows) with the LICENSE, writes SHA256SUMS, and
// renders the Krew manifest template (deploy/krew/gatehouse.yaml) with the
// archives' URLs and checksums.
//
// kubectl-gatehouse is released as one file that starts fast: for each
// platform the plain build of cmd/kubectl-gatehouse (the engine) is built
// first, then the package again with the embedengine tag, the engine
// embedded through go build -overlay (nothing is written into the source
// tree, so releases and local builds do not clobber each other).
//
// Everything is reproducible: binaries are built with -trimpath and CGO
// off, the version stamped with -ldflags -X; archive entries are sorted,
// owned by 0:0, with fixed modes and the commit time (or
// SOURCE_DATE_EPOCH) as their time, and gzip headers carry no time. The
// same commit and Go version give the same SHA256SUMS.
//
//	go run ./tools/release -out bin/release [-version v1.2.3]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/tools/internal/gobuild"
)

// Platform is one os/arch pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the release targets.
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// Program is a released program: its package and the platforms it is
// released for.
type Program struct {
	Package   string
	Platforms []Platform
	// Engine, when set, is a file of Package (relative to the module root)
	// that Package embeds with EngineTag: the plain build of Package for
	// the same platform, supplied with -overlay.
	Engine    string
	EngineTag string
}

// Binaries are the programs released, by archive name prefix. The plugin
// runs on every platform; the server and admin CLI on linux and darwin
// (its audit shipper reads Unix file metadata and does not build for
// windows).
var Binaries = map[string]Program{
	"gatehouse":         {Package: gobuild.Gatehouse, Platforms: Platforms[:4]},
	"kubectl-gatehouse": {Package: gobuild.Plugin, Platforms: Platforms, Engine: "cmd/kubectl-gatehouse/engine.bin", EngineTag: "embedengine"},
	// gatehouse-proxy (docs/proxy.md) runs in a cluster: linux only.
	"gatehouse-proxy": {Package: gobuild.Proxy, Platforms: Platforms[:2]},
}

// Options configure a release run.
type Options struct {
	// Out is the folder for archives, SHA256SUMS and the Krew manifest.
	Out string
	// Version overrides git describe.
	Version string
	// Platforms default to all of Platforms.
	Platforms []Platform
	// Binaries are names from Binaries; default all three.
	Binaries []string
	// KrewTemplate is rendered into Out when set.
	KrewTemplate string
	// Log receives progress lines.
	Log func(format string, args ...any)
}

func main() {
	var o Options
	var platforms, binaries string
	flag.StringVar(&o.Out, "out", "bin/release", "output folder (emptied first)")
	flag.StringVar(&o.Version, "version", "", "version to stamp (default: git describe --tags --always --dirty)")
	flag.StringVar(&platforms, "platforms", "", "comma-separated os/arch list (default: all six)")
	flag.StringVar(&binaries, "binaries", "gatehouse,gatehouse-proxy,kubectl-gatehouse", "comma-separated programs to release")
	flag.StringVar(&o.KrewTemplate, "krew", "deploy/krew/gatehouse.yaml", "Krew manifest template to render with the archives' checksums (empty: skip)")
	flag.Parse()
	if platforms != "" {
		for _, p := range strings.Split(platforms, ",") {
			osName, arch, ok := strings.Cut(p, "/")
			if !ok {
				fmt.Fprintf(os.Stderr, "release: platform %q is not os/arch\n", p)
				os.Exit(2)
			}
			o.Platforms = append(o.Platforms, Platform{osName, arch})
		}
	}
	o.Binaries = strings.Split(binaries, ",")
	o.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "release: "+format+"\n", args...) }
	if err := Run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// ArchiveName is the file name of a program's archive for a platform.
func ArchiveName(program, version string, p Platform) string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("%s_%s_%s_%s%s", program, version, p.OS, p.Arch, ext)
}

// Run builds and packs every binary for every platform into o.Out.
func Run(ctx context.Context, o Options) error {
	if o.Out == "" {
		return errors.New("no output folder")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = Platforms
	}
	if len(o.Binaries) == 0 {
		o.Binaries = []string{"gatehouse", "gatehouse-proxy", "kubectl-gatehouse"}
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	root, err := gobuild.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	src, err := gobuild.ReadSource(ctx, root, o.Version)
	if err != nil {
		return err
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	tmp, err := os.MkdirTemp("", "gatehouse-release-")
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer os.RemoveAll(tmp)

	sums := map[string]string{}
	for _, name := range o.Binaries {
		prog, ok := Binaries[name]
		if !ok {
			return fmt.Errorf("release: unknown program %q", name)
		}
		for _, p := range o.Platforms {
			if !slices.Contains(prog.Platforms, p) {
				o.Log("%s is not released for %s", name, p)
				continue
			}
			pkg := prog.Package
			exe := name
			if p.OS == "windows" {
				exe += ".exe"
			}
			bin := filepath.Join(tmp, p.OS+"-"+p.Arch, exe)
			o.Log("building %s %s for %s", name, src.Version, p)
			target := gobuild.Target{Package: pkg, GOOS: p.OS, GOARCH: p.Arch, Out: bin}
			if prog.Engine != "" {
				if target.Overlay, err = buildEngine(ctx, root, filepath.Join(tmp, p.OS+"-"+p.Arch), prog, target, src.Version); err != nil {
					return err
				}
				target.Tags = []string{prog.EngineTag}
			}
			if err := gobuild.Build(ctx, root, target, src.Version); err != nil {
				return err
			}
			data, err := os.ReadFile(bin)
			if err != nil {
				return fmt.Errorf("release: %w", err)
			}
			files := []ArchiveFile{{Name: exe, Mode: 0o755, Data: data}, {Name: "LICENSE", Mode: 0o644, Data: license}}
			archive := ArchiveName(name, src.Version, p)
			var packed []byte
			if p.OS == "windows" {
				packed, err = Zip(files, src.Time)
			} else {
				packed, err = TarGz(files, src.Time)
			}
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(o.Out, archive), packed, 0o644); err != nil {
				return fmt.Errorf("release: %w", err)
			}
			sums[archive] = sha256Hex(packed)
		}
	}
	if err := os.WriteFile(filepath.Join(o.Out, "SHA256SUMS"), []byte(SHA256Sums(sums)), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	o.Log("wrote %d archives and SHA256SUMS to %s", len(sums), o.Out)
	if o.KrewTemplate != "" && !versionRe.MatchString(src.Version) {
		o.Log("%s is not a release version (vX.Y.Z): the Krew manifest needs one, so it is not rendered", src.Version)
	} else if o.KrewTemplate != "" {
		tmpl := o.KrewTemplate
		if !filepath.IsAbs(tmpl) {
			tmpl = filepath.Join(root, tmpl)
		}
		text, err := os.ReadFile(tmpl)
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		manifest, err := RenderKrew(string(text), src.Version, func(uri string) (string, error) {
			base := uri[strings.LastIndex(uri, "/")+1:]
			sum, ok := sums[base]
			if !ok {
				return "", fmt.Errorf("the manifest names %s, which this run did not build", base)
			}
			return sum, nil
		})
		if err != nil {
			return err
		}
		if _, err := ParseKrew(manifest); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.Out, filepath.Base(tmpl)), manifest, 0o644); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		o.Log("wrote the Krew manifest %s", filepath.Join(o.Out, filepath.Base(tmpl)))
	}
	return nil
}

// buildEngine builds the plain prog.Package for t's platform into dir and
// returns an overlay file that supplies it as prog.Engine.
func buildEngine(ctx context.Context, root, dir string, prog Program, t gobuild.Target, version string) (string, error) {
	t.Out = filepath.Join(dir, "engine")
	if err := gobuild.Build(ctx, root, t, version); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, filepath.FromSlash(prog.Engine)): t.Out}})
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	path := filepath.Join(dir, "engine-overlay.json")
	if err := os.WriteFile(path, overlay, 0o644); err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	return path, nil
}
