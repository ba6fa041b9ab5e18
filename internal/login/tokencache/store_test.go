package tokencache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = Key{IssuerURL: "https://issuer.example", ClientID: "kubernetes"}

func TestSaveLoadPermissions(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "a", "cache")}
	if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load on empty cache = %v", err)
	}
	want := Entry{IDToken: "a.b.c", RefreshToken: "r"}
	if err := s.Save(testKey, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(testKey)
	if err != nil || got != want {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	fi, _ := os.Stat(s.Dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode())
	}
	fi, _ = os.Stat(filepath.Join(s.Dir, testKey.Checksum()))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", fi.Mode())
	}
}

// Attacks on the cache's permissions: a folder or file others can read
// (left by an older tool or a careless umask), and a symlink planted at the
// entry's path.
func TestCachePermissionAttacks(t *testing.T) {
	t.Run("open folder is narrowed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(dir, 0o777)
		if err := (Store{Dir: dir}).Save(testKey, Entry{IDToken: "x"}); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(dir)
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("dir mode %v, want 0700", fi.Mode())
		}
	})
	t.Run("world-readable entry is replaced by a 0600 one", func(t *testing.T) {
		s := Store{Dir: t.TempDir()}
		p := filepath.Join(s.Dir, testKey.Checksum())
		if err := os.WriteFile(p, []byte(`{"id_token":"old"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, 0o644)
		if err := s.Save(testKey, Entry{IDToken: "new"}); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("file mode %v, want 0600", fi.Mode())
		}
	})
	t.Run("symlink at the entry path is replaced, its target untouched", func(t *testing.T) {
		s := Store{Dir: t.TempDir()}
		target := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(s.Dir, testKey.Checksum())); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(testKey, Entry{IDToken: "secret-token"}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(target); string(b) != "precious" {
			t.Fatalf("the symlink's target was overwritten: %q", b)
		}
		fi, _ := os.Lstat(filepath.Join(s.Dir, testKey.Checksum()))
		if fi.Mode()&os.ModeSymlink != 0 {
			t.Fatal("the entry is still a symlink")
		}
	})
}

func TestLoadUnusable(t *testing.T) {
	for _, content := range []string{"", "garbage", `{"id_token":`, `[1,2]`, `{}`, `{"other":"tool"}`} {
		t.Run(content, func(t *testing.T) {
			s := Store{Dir: t.TempDir()}
			if err := os.WriteFile(filepath.Join(s.Dir, testKey.Checksum()), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Load = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestStorage(t *testing.T) {
	for _, name := range []string{"disk", "keyring", "none"} {
		if st, err := ParseStorage(name); err != nil || string(st) != name {
			t.Fatalf("%s: %v %v", name, st, err)
		}
	}
	if _, err := ParseStorage("cloud"); err == nil {
		t.Fatal("unknown storage accepted")
	}
	s := Store{Dir: t.TempDir(), Storage: StorageNone}
	if err := s.Save(testKey, Entry{IDToken: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
		t.Fatal("storage none kept a token")
	}
	if entries, _ := os.ReadDir(s.Dir); len(entries) != 0 {
		t.Fatalf("storage none wrote %d files", len(entries))
	}
}

// fakeKeyring is an in-memory keyring that behaves like go-keyring's
// Secret Service provider: items by (service, user), ErrNotFound when
// absent, and an error for everything while "locked".
type fakeKeyring struct {
	items  map[[2]string]string
	locked error
}

func (k *fakeKeyring) Get(service, user string) (string, error) {
	if k.locked != nil {
		return "", k.locked
	}
	v, ok := k.items[[2]string{service, user}]
	if !ok {
		return "", fmt.Errorf("%w: secret not found in keyring", ErrNotFound)
	}
	return v, nil
}

func (k *fakeKeyring) Set(service, user, secret string) error {
	if k.locked != nil {
		return k.locked
	}
	if k.items == nil {
		k.items = map[[2]string]string{}
	}
	k.items[[2]string{service, user}] = secret
	return nil
}

func (k *fakeKeyring) Delete(service, user string) error {
	if k.locked != nil {
		return k.locked
	}
	if _, ok := k.items[[2]string{service, user}]; !ok {
		return fmt.Errorf("%w: secret not found in keyring", ErrNotFound)
	}
	delete(k.items, [2]string{service, user})
	return nil
}

func (k *fakeKeyring) DeleteAll(service string) error {
	if k.locked != nil {
		return k.locked
	}
	for key := range k.items {
		if key[0] == service {
			delete(k.items, key)
		}
	}
	return nil
}

// The keyring storage keeps kubelogin's JSON under kubelogin's service and
// item names, and nothing but the lock on disk.
func TestKeyringStorage(t *testing.T) {
	kr := &fakeKeyring{}
	s := Store{Dir: t.TempDir(), Storage: StorageKeyring, Keyring: kr}
	if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty keyring: %v", err)
	}
	e := Entry{IDToken: "id", RefreshToken: "refresh"}
	if err := s.Save(testKey, e); err != nil {
		t.Fatal(err)
	}
	item := "kubelogin/tokencache/" + testKey.Checksum()
	if got := kr.items[[2]string{"kubelogin", item}]; got != `{"id_token":"id","refresh_token":"refresh"}` {
		t.Fatalf("keyring item %s = %q", item, got)
	}
	if got, err := s.Load(testKey); err != nil || got != e {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	unlock, err := s.Lock(context.Background(), testKey, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = unlock()
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 || entries[0].Name() != testKey.Checksum()+".lock" {
		t.Fatalf("the keyring storage wrote %v to the cache folder; want only the lock", entries)
	}
	// An entry kubelogin wrote is read; a foreign one is no entry.
	kr.items[[2]string{"kubelogin", item}] = `{"id_token":"from-kubelogin"}`
	if got, err := s.Load(testKey); err != nil || got.IDToken != "from-kubelogin" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	kr.items[[2]string{"kubelogin", item}] = `not json`
	if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("foreign item: %v", err)
	}
	if err := s.Delete(testKey); err != nil || len(kr.items) != 0 {
		t.Fatalf("Delete: %v, left %v", err, kr.items)
	}
	if err := s.Delete(testKey); err != nil {
		t.Fatalf("Delete of a missing item: %v", err)
	}
	// DeleteKeyring removes every kubelogin item and nothing else.
	kr.items[[2]string{"kubelogin", "kubelogin/tokencache/a"}] = "x"
	kr.items[[2]string{"other", "kept"}] = "y"
	if err := s.DeleteKeyring(); err != nil || len(kr.items) != 1 {
		t.Fatalf("DeleteKeyring: %v, left %v", err, kr.items)
	}
	// A keyring that cannot be reached: no entry on Load (log in), a clear
	// error on Save.
	kr.locked = errors.New("The name org.freedesktop.secrets was not provided by any .service files")
	if _, err := s.Load(testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unreachable keyring Load: %v", err)
	}
	if err := s.Save(testKey, e); err == nil || !strings.Contains(err.Error(), "--token-cache-storage=disk") {
		t.Fatalf("unreachable keyring Save: %v", err)
	}
	if err := (Store{Dir: t.TempDir(), Storage: StorageKeyring}).Save(testKey, e); err == nil {
		t.Fatal("saved to no keyring")
	}
}

func TestLockExcludesAndTimesOut(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	ctx := context.Background()
	unlock, err := s.Lock(ctx, testKey, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description: a second Lock in
	// this process contends like another process would.
	if _, err := s.Lock(ctx, testKey, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock = %v, want a timeout", err)
	} else if !strings.Contains(err.Error(), "browser") {
		t.Errorf("timeout error does not explain: %v", err)
	}
	other := testKey
	other.ClientID = "other"
	u2, err := s.Lock(ctx, other, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("another key's lock is blocked: %v", err)
	}
	_ = u2()
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	u3, err := s.Lock(ctx, testKey, time.Second)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	_ = u3()
}

// Readers never see a partial entry while writers replace it.
func TestConcurrentSaveLoad(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Save(testKey, Entry{IDToken: "start"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := s.Save(testKey, Entry{IDToken: fmt.Sprintf("%s-%d-%d", strings.Repeat("t", 4096), w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := s.Load(testKey); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 {
		t.Errorf("%d files left, want 1 (no temp files)", len(entries))
	}
}
