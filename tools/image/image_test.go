package main

import (
	"archive/tar"
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gatehouse-dev/gatehouse/tools/internal/gobuild"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// testBinary builds the gatehouse binary once per test process, the way
// the tool does, into a temporary folder removed by TestMain.
func testBinary(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the gatehouse binary")
	}
	binOnce.Do(func() {
		root, err := gobuild.ModuleRoot(context.Background())
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "gatehouse")
		binErr = gobuild.Build(context.Background(), root, gobuild.Target{
			Package: gobuild.Gatehouse, GOOS: "linux", GOARCH: runtime.GOARCH, Out: binPath, Revision: testMeta.Revision,
		}, "v0.0.0-test")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "gatehouse-image-test-")
	if err != nil {
		panic(err)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var testMeta = Metadata{
	Version:  "v0.0.0-test",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Created:  time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
	Source:   DefaultSource,
}

// entry is one file read back from an image's flattened filesystem.
type entry struct {
	hdr  tar.Header
	data []byte
}

func flatten(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = entry{hdr: *h, data: b}
	}
	return files
}

func TestImageReproducibleAndInspected(t *testing.T) {
	bin := testBinary(t)
	img1, err := Build(bin, runtime.GOARCH, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := Build(append([]byte(nil), bin...), runtime.GOARCH, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := img1.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := img2.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("same input, different digests: %s and %s", d1, d2)
	}
	later := testMeta
	later.Created = later.Created.Add(time.Second)
	img3, err := Build(bin, runtime.GOARCH, later)
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := img3.Digest(); d3 == d1 {
		t.Fatal("a different commit time gave the same digest: timestamps are not in the image")
	}

	cf, err := img1.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/gatehouse" {
		t.Errorf("entrypoint %q", got)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "serve --config /etc/gatehouse/config.yaml" {
		t.Errorf("cmd %q", got)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(testMeta.Created) {
		t.Errorf("created %s, want the commit time %s", cf.Created.Time, testMeta.Created)
	}
	for _, p := range []string{"5556/tcp", "5554/tcp", "5558/tcp"} {
		if _, ok := cf.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed", p)
		}
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":   DefaultSource,
		"org.opencontainers.image.version":  "v0.0.0-test",
		"org.opencontainers.image.revision": testMeta.Revision,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.title":    "gatehouse",
		"org.opencontainers.image.created":  "2026-11-28T12:00:00Z",
	}
	for k, v := range wantLabels {
		if got := cf.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if cf.Config.Labels["org.opencontainers.image.description"] == "" {
		t.Error("no description label")
	}

	files := flatten(t, img1)
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/env"} {
		if _, ok := files[shell]; ok {
			t.Errorf("%s is in the image", shell)
		}
	}
	g, ok := files["/gatehouse"]
	if !ok {
		t.Fatal("no /gatehouse")
	}
	if g.hdr.Mode&0o777 != 0o755 || g.hdr.Uid != 0 {
		t.Errorf("/gatehouse mode %o uid %d", g.hdr.Mode, g.hdr.Uid)
	}
	if dyn, err := hasInterpreter(g.data); err != nil {
		t.Fatal(err)
	} else if dyn {
		t.Error("/gatehouse has a PT_INTERP program header: it is not static")
	}
	if d := files[dexPath]; d.hdr.Typeflag != tar.TypeSymlink || d.hdr.Linkname != binaryPath {
		t.Errorf("%s: type %c link %q, want a link to %s (Dex's binary path)", dexPath, d.hdr.Typeflag, d.hdr.Linkname, binaryPath)
	}
	if !strings.Contains(strings.Join(cf.Config.Env, " "), "PATH=/:/usr/local/bin") {
		t.Errorf("env %q: dex is not on PATH", cf.Config.Env)
	}
	if !strings.Contains(string(files["/etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", files["/etc/passwd"].data)
	}
	if !strings.Contains(string(files["/etc/group"].data), "nonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot group:\n%s", files["/etc/group"].data)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files[caBundle].data) || strings.Count(string(files[caBundle].data), "BEGIN CERTIFICATE") < 100 {
		t.Errorf("%s does not hold a CA bundle", caBundle)
	}
	if tmp := files["/tmp"]; tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: type %c mode %o, want a 1777 folder", tmp.hdr.Typeflag, tmp.hdr.Mode)
	}
	if d := files[dataDir]; d.hdr.Uid != 65532 || d.hdr.Typeflag != tar.TypeDir {
		t.Errorf("%s: uid %d type %c, want a folder owned by 65532", dataDir, d.hdr.Uid, d.hdr.Typeflag)
	}
	for n, e := range files {
		if !e.hdr.ModTime.Equal(testMeta.Created) {
			t.Errorf("%s: mtime %s, want the commit time", n, e.hdr.ModTime)
		}
	}

	// What is written to disk reads back as the same image.
	dir := t.TempDir()
	if _, err := WriteLayout(filepath.Join(dir, "oci"), Index(map[string]v1.Image{runtime.GOARCH: img1}, testMeta)); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := outer.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("layout index: %v %v", im, err)
	}
	inner, err := outer.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	back, err := inner.Image(d1)
	if err != nil {
		t.Fatalf("image %s not in the layout: %v", d1, err)
	}
	if db, _ := back.Digest(); db != d1 {
		t.Errorf("layout image digest %s, want %s", db, d1)
	}
	tb := filepath.Join(dir, "image.tar")
	if err := WriteTarball(tb, "gatehouse:test", img1); err != nil {
		t.Fatal(err)
	}
	fromTar, err := tarball.ImageFromPath(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A tarball keeps the config and layers, not the OCI manifest (readers
	// rebuild a Docker one), so compare the config digest.
	c1, err := img1.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if ct, err := fromTar.ConfigName(); err != nil || ct != c1 {
		t.Errorf("tarball image config %s (%v), want %s", ct, err, c1)
	}
}

// TestHasInterpreter shows the static check can fail: a dynamically linked
// system program has PT_INTERP.
func TestHasInterpreter(t *testing.T) {
	for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/true"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f, err := elf.NewFile(strings.NewReader(string(b)))
		if err != nil {
			continue
		}
		f.Close()
		dyn, err := hasInterpreter(b)
		if err != nil {
			t.Fatal(err)
		}
		if !dyn {
			t.Errorf("%s: no PT_INTERP found in a dynamically linked program", p)
		}
		if _, err := Build(b, runtime.GOARCH, testMeta); err == nil {
			t.Errorf("Build accepted the dynamically linked %s", p)
		}
		if _, err := Build(testBinary(t), runtime.GOARCH, testMeta, Program{Name: "gatehouse-proxy", Data: b}); err == nil {
			t.Errorf("Build accepted the dynamically linked %s as gatehouse-proxy", p)
		}
		return
	}
	t.Skip("no dynamically linked ELF program found")
}

// TestImageCarriesProxy: gatehouse-proxy (which the chart runs as
// `command: [gatehouse-proxy]`) lies on the image's PATH, executable, in the
// binaries' layer; bad program names are refused.
func TestImageCarriesProxy(t *testing.T) {
	bin := testBinary(t)
	img, err := Build(bin, runtime.GOARCH, testMeta, Program{Name: "gatehouse-proxy", Data: bin})
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, img)
	p, ok := files["/gatehouse-proxy"]
	if !ok {
		t.Fatal("no /gatehouse-proxy")
	}
	if p.hdr.Typeflag != tar.TypeReg || p.hdr.Mode&0o777 != 0o755 || p.hdr.Uid != 0 || len(p.data) != len(bin) {
		t.Errorf("/gatehouse-proxy: type %c mode %o uid %d size %d", p.hdr.Typeflag, p.hdr.Mode, p.hdr.Uid, len(p.data))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var onPath bool
	for _, e := range cf.Config.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			onPath = slices.Contains(strings.Split(v, ":"), "/")
		}
	}
	if !onPath {
		t.Errorf("/ is not on the image's PATH (%q): `command: [gatehouse-proxy]` would not find it", cf.Config.Env)
	}
	for _, name := range []string{"", "gatehouse", "bin/gatehouse-proxy"} {
		if _, err := Build(bin, runtime.GOARCH, testMeta, Program{Name: name, Data: bin}); err == nil {
			t.Errorf("Build accepted the program name %q", name)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name   string
		binary []byte
		meta   Metadata
	}{
		{"no creation time", []byte("\x7fELF"), Metadata{Version: "v"}},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), testMeta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Build(tt.binary, "amd64", tt.meta); err == nil {
				t.Fatal("Build accepted it")
			}
		})
	}
}
