package main

import (
	"archive/tar"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

// TestImageServes unpacks the image's filesystem and runs the entrypoint
// in it as the image's user, as a container runtime would (chroot, uid and
// gid 65532, nothing from the host): gatehouse must start on a
// configuration in /etc/gatehouse, keep its SQLite database in
// /var/lib/gatehouse and answer /healthz/ready. It needs root (chroot).
func TestImageServes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	img, err := Build(testBinary(t), runtime.GOARCH, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	files := flatten(t, img)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := files[n]
		p := filepath.Join(root, n)
		mode := os.FileMode(e.hdr.Mode & 0o777)
		if e.hdr.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.WriteFile(p, e.data, 0o600); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(e.hdr.Linkname, p); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, e.hdr.Uid, e.hdr.Gid); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			t.Fatalf("%s: unexpected entry type %c", n, e.hdr.Typeflag)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, e.hdr.Uid, e.hdr.Gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	web, tel := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%d/dex
storage: {type: sqlite3, config: {file: /var/lib/gatehouse/gatehouse.db}}
web: {http: "127.0.0.1:%d"}
telemetry: {http: "127.0.0.1:%d"}
enablePasswordDB: true
staticClients:
  - {id: kubernetes, name: Kubernetes, public: true, redirectURIs: ["http://localhost:8000"]}
`, web, web, tel)
	if err := os.WriteFile(filepath.Join(root, "etc/gatehouse/config.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "/gatehouse", args...)
		cmd.Path = "/gatehouse"
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/", "HOME=/home/nonroot"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: nonrootUID, Gid: nonrootUID}}
		return cmd
	}
	out, err := run(context.Background(), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "gatehouse v0.0.0-test ("+testMeta.Revision[:12]+", ") {
		t.Fatalf("gatehouse version in the image does not name the commit %s: %v: %q", testMeta.Revision[:12], err, out)
	}
	dex := run(context.Background(), "version")
	dex.Path, dex.Args = dexPath, []string{dexPath, "version"}
	if out, err := dex.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "gatehouse v0.0.0-test ") {
		t.Fatalf("%s version: %v: %q", dexPath, err, out)
	}
	t.Run("serve --config", func(t *testing.T) {
		serveInImage(t, run, tel, "serve", "--config", "/etc/gatehouse/config.yaml")
	})
	// Dex's Helm chart: the config without web or telemetry at
	// /etc/dex/config.yaml, the addresses and `dex serve` as arguments to
	// the image's entrypoint.
	if err := os.MkdirAll(filepath.Join(root, "etc/dex"), 0o755); err != nil {
		t.Fatal(err)
	}
	dexCfg := fmt.Sprintf("issuer: http://127.0.0.1:%d/dex\nstorage: {type: sqlite3, config: {file: /var/lib/gatehouse/dex.db}}\nenablePasswordDB: true\n", web)
	if err := os.WriteFile(filepath.Join(root, "etc/dex/config.yaml"), []byte(dexCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("Dex's chart", func(t *testing.T) {
		serveInImage(t, run, tel, "dex", "serve", "--web-http-addr", fmt.Sprintf("127.0.0.1:%d", web), "--telemetry-addr", fmt.Sprintf("127.0.0.1:%d", tel), "/etc/dex/config.yaml")
	})
	fi, err := os.Stat(filepath.Join(root, "var/lib/gatehouse/gatehouse.db"))
	if err != nil {
		t.Fatalf("no database in /var/lib/gatehouse: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != nonrootUID {
		t.Errorf("database owned by %d, want %d", st.Uid, nonrootUID)
	}
}

// serveInImage runs the entrypoint with args until /healthz/ready answers,
// then stops it with SIGTERM, as Kubernetes does.
func serveInImage(t *testing.T, run func(context.Context, ...string) *exec.Cmd, tel int, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := run(ctx, args...)
	logs := &syncbuf.Buffer{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Kill()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", tel))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60s (%v); logs:\n%s", err, logs.String())
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("gatehouse exited: %v; logs:\n%s", err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("no exit after SIGTERM; logs:\n%s", logs.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
