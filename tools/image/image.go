package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The non-root user the image runs as (distroless's "nonroot").
const (
	nonrootUID  = 65532
	nonrootName = "nonroot"
)

// Paths inside the image.
const (
	binaryPath = "/gatehouse"
	// dexPath is where Dex's image has its binary; here a link to gatehouse.
	dexPath   = "/usr/local/bin/dex"
	caBundle  = "/etc/ssl/certs/ca-certificates.crt"
	dataDir   = "/var/lib/gatehouse"
	configDir = "/etc/gatehouse"
)

// Ports the default configuration layout uses: Dex's web ports (5556 http,
// 5554 https) and gatehouse's telemetry port (/metrics, /healthz).
var exposedPorts = []string{"5554/tcp", "5556/tcp", "5558/tcp"}

// Metadata describes what an image was built from; it becomes the OCI
// labels and the image's creation time.
type Metadata struct {
	// Version is the release version stamped into the binary.
	Version string
	// Revision is the VCS commit.
	Revision string
	// Created is the commit time: every timestamp in the image is this
	// one, so the same commit gives the same digest.
	Created time.Time
	// Source is the repository URL.
	Source string
}

// Labels returns the OCI annotation keys the image carries as labels.
func (m Metadata) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "gatehouse",
		"org.opencontainers.image.description": "SSO to Kubernetes through GitHub teams: a Dex-compatible OpenID Connect issuer with an audit trail",
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.url":         m.Source,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// file is one tar entry of a layer.
type file struct {
	name     string // absolute path in the image
	mode     int64  // permission bits (plus sticky)
	dir      bool
	link     string // symbolic link target, when set
	uid, gid int
	data     []byte
}

// BaseFiles returns the files a static binary needs besides itself: user
// and group databases with the non-root user, CA certificates, a
// world-writable /tmp, and folders for the config and the SQLite data.
//
// The CA bundle is the NSS root store of golang.org/x/crypto/x509roots/fallback
// at the version go.mod pins, written as PEM: unlike the build machine's
// /etc/ssl/certs, it is the same on every machine (so the digest does not
// depend on where the image was built) and it moves with a reviewed go.mod
// change. Roots that NSS constrains (distrust-after dates) are left out,
// because a PEM file cannot carry the constraint.
func BaseFiles() ([]file, error) {
	certs, err := caBundlePEM()
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n",
		nonrootName, nonrootUID, nonrootUID, nonrootName, nonrootName)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\n%s:x:%d:\n", nonrootName, nonrootUID)
	return []file{
		{name: "/etc", mode: 0o755, dir: true},
		{name: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, data: []byte(group)},
		{name: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "/etc/ssl", mode: 0o755, dir: true},
		{name: "/etc/ssl/certs", mode: 0o755, dir: true},
		{name: caBundle, mode: 0o644, data: certs},
		{name: configDir, mode: 0o755, dir: true},
		{name: "/home", mode: 0o755, dir: true},
		{name: "/home/" + nonrootName, mode: 0o700, dir: true, uid: nonrootUID, gid: nonrootUID},
		{name: "/tmp", mode: 0o1777, dir: true},
		{name: "/var", mode: 0o755, dir: true},
		{name: "/var/lib", mode: 0o755, dir: true},
		{name: dataDir, mode: 0o700, dir: true, uid: nonrootUID, gid: nonrootUID},
	}, nil
}

// caBundlePEM returns the unconstrained NSS roots as PEM, in the bundle's
// (stable) order.
func caBundlePEM() ([]byte, error) {
	var buf bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(r.Certificate); err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("CA bundle: no roots")
	}
	return buf.Bytes(), nil
}

// layer builds a gzip-compressed OCI layer from files, sorted by name,
// owned by the given ids, every timestamp set to mtime.
func layer(files []file, mtime time.Time) (v1.Layer, error) {
	sorted := append([]file(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range sorted {
		name := strings.TrimPrefix(path.Clean(f.name), "/")
		hdr := &tar.Header{
			Name:    name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime.UTC().Truncate(time.Second),
			Format:  tar.FormatPAX,
		}
		switch {
		case f.dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case f.link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.link
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.data))
		}
		// PAX would record atime/ctime if set; they are left zero.
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", f.name, err)
		}
		if !f.dir && f.link == "" {
			if _, err := tw.Write(f.data); err != nil {
				return nil, fmt.Errorf("layer: %s: %w", f.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	// Compress once, here: the gzip stream has no name or time in its
	// header, and go-containerregistry takes gzip input as the compressed
	// layer as it is, instead of compressing again on every write.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	compressed := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}

// Program is a further static binary the image carries beside gatehouse,
// at "/"+Name (on the image's PATH), e.g. gatehouse-proxy, which the Helm
// chart runs as `command: [gatehouse-proxy]`.
type Program struct {
	Name string
	Data []byte
}

// Build assembles the image for one architecture from a static gatehouse
// binary (and the further programs): a base layer (BaseFiles) and a layer
// with the binaries, on an empty base, with the entrypoint, user, ports
// and labels set.
func Build(binary []byte, arch string, meta Metadata, programs ...Program) (v1.Image, error) {
	if meta.Created.IsZero() {
		return nil, errors.New("image: metadata has no creation time")
	}
	if dyn, err := hasInterpreter(binary); err != nil {
		return nil, err
	} else if dyn {
		return nil, errors.New("image: the binary is dynamically linked (PT_INTERP); build it with CGO_ENABLED=0")
	}
	for _, p := range programs {
		if p.Name == "" || strings.Contains(p.Name, "/") || "/"+p.Name == binaryPath {
			return nil, fmt.Errorf("image: program name %q: want a plain file name other than %s", p.Name, binaryPath)
		}
		if dyn, err := hasInterpreter(p.Data); err != nil {
			return nil, fmt.Errorf("image: %s: %w", p.Name, err)
		} else if dyn {
			return nil, fmt.Errorf("image: %s is dynamically linked (PT_INTERP); build it with CGO_ENABLED=0", p.Name)
		}
	}
	base, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	baseLayer, err := layer(base, meta.Created)
	if err != nil {
		return nil, err
	}
	// The binary, and Dex's path to its binary as a link to it: Dex's
	// Helm chart runs `dex serve ...` (as arguments to the entrypoint,
	// which gatehouse understands), and a `command: [/usr/local/bin/dex]`
	// written for Dex's image finds it.
	binFiles := []file{
		{name: binaryPath, mode: 0o755, data: binary},
		{name: "/usr", mode: 0o755, dir: true},
		{name: "/usr/local", mode: 0o755, dir: true},
		{name: path.Dir(dexPath), mode: 0o755, dir: true},
		{name: dexPath, mode: 0o777, link: binaryPath},
	}
	for _, p := range programs {
		binFiles = append(binFiles, file{name: "/" + p.Name, mode: 0o755, data: p.Data})
	}
	binLayer, err := layer(binFiles, meta.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: meta.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: baseLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "gatehouse tools/image: passwd, group, CA certificates, /tmp, " + dataDir, Comment: "base",
		}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "gatehouse tools/image: " + binaryPath + " " + meta.Version, Comment: "binary",
		}},
	)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	cf.OS = "linux"
	cf.Created = created
	ports := map[string]struct{}{}
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		Entrypoint:   []string{binaryPath},
		Cmd:          []string{"serve", "--config", configDir + "/config.yaml"},
		User:         fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		WorkingDir:   "/",
		Env:          []string{"PATH=/:" + path.Dir(dexPath), "SSL_CERT_FILE=" + caBundle},
		ExposedPorts: ports,
		Labels:       meta.Labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

// Index wraps per-architecture images (built with the same metadata) in
// an OCI image index annotated with the same labels.
func Index(images map[string]v1.Image, meta Metadata) v1.ImageIndex {
	archs := make([]string, 0, len(images))
	for a := range images {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range archs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: images[a],
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: "linux", Architecture: a},
			},
		})
	}
	return mutate.Annotations(idx, meta.Labels()).(v1.ImageIndex)
}

// hasInterpreter reports whether the ELF binary asks for a dynamic loader
// (a PT_INTERP program header): a static binary has none.
func hasInterpreter(binary []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return false, fmt.Errorf("image: the binary is not ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// readFile returns a file's content, for the binary.
func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return b, nil
}
