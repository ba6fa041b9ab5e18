package binaries

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKubeLDFlags(t *testing.T) {
	cases := map[string][]string{
		"v1.37.2": {"k8s.io/component-base/version.gitVersion=v1.37.2", "k8s.io/component-base/version.gitMajor=1", "k8s.io/component-base/version.gitMinor=37", "k8s.io/client-go/pkg/version.gitVersion=v1.37.2"},
		"v1.30.0": {"version.gitMinor=30"},
	}
	for v, wants := range cases {
		got := kubeLDFlags(v)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", v, got, w)
			}
		}
	}
}

// TestLockFile: a second process (here: a second open file) waits for the
// first one's build and gives up after its timeout.
func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	ctx := context.Background()
	unlock, err := lockFile(ctx, path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := lockFile(ctx, path, 1500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "waited") {
		t.Fatalf("second lock while held: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("gave up after %s, before its timeout", d)
	}
	done := make(chan error, 1)
	go func() {
		u, err := lockFile(ctx, path, 10*time.Second)
		if err == nil {
			u()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

// TestEnsureReusesCache: a complete cache entry for the pinned versions is
// used as it is, without building.
func TestEnsureReusesCache(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	ctx := context.Background()
	p, err := Locate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.KubernetesVersion != "v1.37.2" || p.EtcdVersion != "v3.6.13" {
		t.Errorf("pinned versions %s %s", p.KubernetesVersion, p.EtcdVersion)
	}
	if !strings.Contains(p.Dir, "kubernetes-v1.37.2_etcd-v3.6.13_") {
		t.Errorf("cache folder %s is not keyed by the versions", p.Dir)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.Dir, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := Ensure(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Errorf("Ensure %+v, Locate %+v", got, p)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("reuse took %s: it built", d)
	}
}
