package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/tools/internal/gobuild"
)

var commitTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func krewTemplate(t *testing.T) string {
	t.Helper()
	root, err := gobuild.ModuleRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "krew", "gatehouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeSum gives every archive a distinct, well-formed checksum.
func fakeSum(uri string) (string, error) { return sha256Hex([]byte(uri)), nil }

func TestKrewManifest(t *testing.T) {
	out, err := RenderKrew(krewTemplate(t), "v1.2.3", fakeSum)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseKrew(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p.Metadata.Name != "gatehouse" || p.Spec.Version != "v1.2.3" {
		t.Errorf("name %q version %q", p.Metadata.Name, p.Spec.Version)
	}
	want := map[string]bool{}
	for _, pl := range Platforms {
		want[pl.String()] = true
	}
	for _, pl := range p.Spec.Platforms {
		os, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		key := os + "/" + arch
		if !want[key] {
			t.Errorf("platform %s not released or listed twice", key)
		}
		delete(want, key)
		name := ArchiveName("kubectl-gatehouse", "v1.2.3", Platform{os, arch})
		if !strings.HasSuffix(pl.URI, "/releases/download/v1.2.3/"+name) {
			t.Errorf("%s: uri %s, want the release archive %s", key, pl.URI, name)
		}
		if sum, _ := fakeSum(pl.URI); pl.Sha256 != sum {
			t.Errorf("%s: sha256 %s is not the archive's", key, pl.Sha256)
		}
		bin := "kubectl-gatehouse"
		if os == "windows" {
			bin += ".exe"
		}
		if pl.Bin != bin {
			t.Errorf("%s: bin %s, want %s", key, pl.Bin, bin)
		}
	}
	for k := range want {
		t.Errorf("platform %s missing from the manifest", k)
	}
}

func TestKrewManifestRefuses(t *testing.T) {
	good, err := RenderKrew(krewTemplate(t), "v1.2.3", fakeSum)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		old, new    string
		render      func() ([]byte, error)
		wantInError string
	}{
		{name: "unknown key", old: "homepage:", new: "homepag:", wantInError: "unknown field"},
		{name: "version without v", render: func() ([]byte, error) { return RenderKrew(krewTemplate(t), "1.2.3", fakeSum) }, wantInError: "spec.version"},
		{name: "bad checksum", render: func() ([]byte, error) {
			return RenderKrew(krewTemplate(t), "v1.2.3", func(string) (string, error) { return "abc", nil })
		}, wantInError: "sha256"},
		{name: "plain http", old: "uri: https://", new: "uri: http://", wantInError: "not https"},
		{name: "duplicate platform", old: "arch: arm64", new: "arch: amd64", wantInError: "listed twice"},
		{name: "wrong kind", old: "kind: Plugin", new: "kind: Plugins", wantInError: "apiVersion/kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc []byte
			if tt.render != nil {
				var err error
				if doc, err = tt.render(); err != nil {
					t.Fatal(err)
				}
			} else {
				if !bytes.Contains(good, []byte(tt.old)) {
					t.Fatalf("%q not in the manifest", tt.old)
				}
				doc = bytes.Replace(good, []byte(tt.old), []byte(tt.new), 1)
			}
			_, err := ParseKrew(doc)
			if err == nil || !strings.Contains(err.Error(), tt.wantInError) {
				t.Fatalf("error %v, want it to mention %q", err, tt.wantInError)
			}
		})
	}
	if _, err := RenderKrew(krewTemplate(t), "v1", func(string) (string, error) { return "", errors.New("no archive") }); err == nil {
		t.Error("rendered without an archive's checksum")
	}
}

func TestArchivesReproducible(t *testing.T) {
	files := []ArchiveFile{{Name: "kubectl-gatehouse", Mode: 0o755, Data: []byte("binary")}, {Name: "LICENSE", Mode: 0o644, Data: []byte("Apache")}}
	reversed := []ArchiveFile{files[1], files[0]}
	for _, tt := range []struct {
		name string
		pack func([]ArchiveFile, time.Time) ([]byte, error)
		list func(*testing.T, []byte) []string
	}{
		{"tar.gz", TarGz, listTarGz},
		{"zip", Zip, listZip},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.pack(files, commitTime)
			if err != nil {
				t.Fatal(err)
			}
			b, err := tt.pack(reversed, commitTime)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Error("the same files packed twice differ")
			}
			c, err := tt.pack(files, commitTime.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a, c) {
				t.Error("the time is not in the archive")
			}
			got := strings.Join(tt.list(t, a), "\n")
			want := "LICENSE 644 2026-11-28T12:00:00Z\nkubectl-gatehouse 755 2026-11-28T12:00:00Z"
			if got != want {
				t.Errorf("entries:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func listTarGz(t *testing.T, b []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !gz.ModTime.IsZero() || gz.Name != "" {
		t.Errorf("gzip header has time %s name %q", gz.ModTime, gz.Name)
	}
	tr := tar.NewReader(gz)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s owned by %d:%d %q", h.Name, h.Uid, h.Gid, h.Uname)
		}
		out = append(out, h.Name+" "+strconvOctal(h.Mode)+" "+h.ModTime.UTC().Format(time.RFC3339))
	}
	return out
}

func listZip(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range zr.File {
		out = append(out, f.Name+" "+strconvOctal(int64(f.Mode().Perm()))+" "+f.Modified.UTC().Format(time.RFC3339))
	}
	return out
}

func strconvOctal(m int64) string { return fmt.Sprintf("%o", m) }

// TestReleaseHostPlugin runs the release for the plugin on this machine's
// platform, twice: the same checksums both times, SHA256SUMS matching the
// archives, and the unpacked plugin printing the stamped version.
func TestReleaseHostPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kubectl-gatehouse")
	}
	// Pin the time: other commits may land between the two runs.
	t.Setenv("SOURCE_DATE_EPOCH", "1795867200")
	host := Platform{runtime.GOOS, runtime.GOARCH}
	var sums []string
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		o := Options{Out: filepath.Join(d, "release"), Version: "v9.8.7-test", Platforms: []Platform{host}, Binaries: []string{"kubectl-gatehouse"}}
		if err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(o.Out, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, string(b))
	}
	if sums[0] != sums[1] {
		t.Fatalf("two releases of the same source differ:\n%s\n%s", sums[0], sums[1])
	}
	name := ArchiveName("kubectl-gatehouse", "v9.8.7-test", host)
	archive, err := os.ReadFile(filepath.Join(dirs[0], "release", name))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Hex(archive) + "  " + name + "\n"; sums[0] != want {
		t.Fatalf("SHA256SUMS:\n%s\nwant:\n%s", sums[0], want)
	}
	if host.OS == "windows" {
		t.Skip("unpacking zip archives to run them is not done here")
	}
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	bin := filepath.Join(t.TempDir(), "kubectl-gatehouse")
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no kubectl-gatehouse in %s: %v", name, err)
		}
		if h.Name == "kubectl-gatehouse" {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bin, data, 0o755); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	// The released file is the one-file build: the front end with the
	// engine embedded; the engine (which prints the version) is stamped.
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if !strings.Contains(string(info), "-tags=embedengine") || strings.Contains(string(info), "golang.org/x/oauth2") {
		t.Errorf("the released plugin is not the embedengine build:\n%s", info)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl-gatehouse version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "kubectl-gatehouse version v9.8.7-test ") {
		t.Fatalf("kubectl-gatehouse version printed %q, want the stamped v9.8.7-test", out)
	}
}
