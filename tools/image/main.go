// Command image builds gatehouse's OCI image without a container daemon:
// a static gatehouse binary (CGO off, -trimpath, version stamped) on an
// empty base plus what the binary needs (a non-root user 65532 "nonroot",
// CA certificates, /tmp, a data folder), with go-containerregistry.
//
// The build is reproducible: every timestamp is the commit time (or
// SOURCE_DATE_EPOCH), tar entries are sorted with fixed owners and modes,
// so the same commit gives the same digest on any machine with the same
// Go version.
//
//	go run ./tools/image -layout bin/image -tarball bin/gatehouse-image.tar
//
// writes an OCI image layout (an index with one image per -arch) and, for
// a single architecture, a tarball that `crane push` and `docker load`
// read.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gatehouse-dev/gatehouse/tools/internal/gobuild"
)

// DefaultSource is the repository URL written in the source label.
const DefaultSource = "https://github.com/gatehouse-dev/gatehouse"

type options struct {
	layoutDir string
	tarball   string
	tag       string
	archs     string
	version   string
	source    string
	binary    string
	proxy     string
}

func main() {
	var o options
	flag.StringVar(&o.layoutDir, "layout", "", "write an OCI image layout (index of all -arch images) into this folder, replacing it")
	flag.StringVar(&o.tarball, "tarball", "", "write a single-architecture image tarball (crane push / docker load) to this file")
	flag.StringVar(&o.tag, "tag", "", "image name recorded in the tarball (default gatehouse:<version>)")
	flag.StringVar(&o.archs, "arch", runtime.GOARCH, "comma-separated architectures (linux only): amd64,arm64")
	flag.StringVar(&o.version, "version", "", "version to stamp (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.source, "source", DefaultSource, "repository URL for the org.opencontainers.image.source label")
	flag.StringVar(&o.binary, "binary", "", "use this prebuilt static linux binary instead of building one (single -arch only)")
	flag.StringVar(&o.proxy, "proxy-binary", "", "use this prebuilt static linux gatehouse-proxy instead of building one (single -arch only)")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.layoutDir == "" && o.tarball == "" {
		return errors.New("give -layout DIR, -tarball FILE or both")
	}
	archs := strings.Split(o.archs, ",")
	if (o.tarball != "" || o.binary != "" || o.proxy != "") && len(archs) != 1 {
		return errors.New("-tarball, -binary and -proxy-binary take a single -arch")
	}
	root, err := gobuild.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	src, err := gobuild.ReadSource(ctx, root, o.version)
	if err != nil {
		return err
	}
	meta := Metadata{Version: src.Version, Revision: src.Revision, Created: src.Time, Source: o.source}
	tmp, err := os.MkdirTemp("", "gatehouse-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	images := map[string]v1.Image{}
	for _, arch := range archs {
		// gatehouse, and gatehouse-proxy (its own program: it links
		// kube-apiserver's authenticator, which serve must not carry).
		var data [2][]byte
		for i, b := range []struct{ name, pkg, prebuilt string }{
			{"gatehouse", gobuild.Gatehouse, o.binary},
			{"gatehouse-proxy", gobuild.Proxy, o.proxy},
		} {
			bin := b.prebuilt
			if bin == "" {
				bin = filepath.Join(tmp, b.name+"-"+arch)
				fmt.Fprintf(os.Stderr, "image: building %s %s for linux/%s\n", b.name, meta.Version, arch)
				if err := gobuild.Build(ctx, root, gobuild.Target{Package: b.pkg, GOOS: "linux", GOARCH: arch, Out: bin, Revision: meta.Revision}, meta.Version); err != nil {
					return err
				}
			}
			if data[i], err = readFile(bin); err != nil {
				return err
			}
		}
		img, err := Build(data[0], arch, meta, Program{Name: "gatehouse-proxy", Data: data[1]})
		if err != nil {
			return err
		}
		images[arch] = img
	}
	if o.layoutDir != "" {
		digest, err := WriteLayout(o.layoutDir, Index(images, meta))
		if err != nil {
			return err
		}
		fmt.Printf("%s: OCI layout, index %s\n", o.layoutDir, digest)
	}
	if o.tarball != "" {
		tag := o.tag
		if tag == "" {
			tag = "gatehouse:" + strings.ReplaceAll(meta.Version, "+", "-")
		}
		img := images[archs[0]]
		if err := WriteTarball(o.tarball, tag, img); err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s, image %s\n", o.tarball, tag, digest)
	}
	return nil
}

// WriteLayout writes idx as an OCI image layout in dir (replacing what was
// there) and returns the index digest.
func WriteLayout(dir string, idx v1.ImageIndex) (v1.Hash, error) {
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "gatehouse"})); err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	return d, nil
}

// WriteTarball writes img to file as an image tarball named tag.
func WriteTarball(file, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tarball: tag %q: %w", tag, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	return nil
}
