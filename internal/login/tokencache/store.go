// Package tokencache stores the plugin's tokens between runs: one JSON
// file per key ({"id_token","refresh_token"}, kubelogin's format and file
// name), 0600 in a 0700 folder, written atomically (temporary file then
// rename), guarded by one lock file per key so that parallel kubectl runs
// neither corrupt an entry nor log in twice.
package tokencache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Entry is what one cache file holds.
type Entry struct {
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// ErrNotFound means there is no usable entry for the key: no file, or a
// file that is not a cache entry (corrupt, truncated, foreign). The caller
// logs in again and Save replaces the file.
var ErrNotFound = errors.New("no cached token")

// ErrKeyringUnsupported is returned for --token-cache-storage=keyring.
var ErrKeyringUnsupported = errors.New("--token-cache-storage=keyring is not supported by kubectl-gatehouse (no OS keyring library in this build); use disk (0600 files in a 0700 folder, the default) or none")

// Storage selects where tokens are kept.
type Storage string

// The storages kubelogin offers.
const (
	StorageDisk    Storage = "disk"
	StorageKeyring Storage = "keyring"
	StorageNone    Storage = "none"
)

// ParseStorage checks a --token-cache-storage value.
func ParseStorage(s string) (Storage, error) {
	switch Storage(s) {
	case StorageDisk, StorageNone:
		return Storage(s), nil
	case StorageKeyring:
		return "", ErrKeyringUnsupported
	}
	return "", fmt.Errorf("token-cache-storage must be one of (disk|keyring|none), not %q", s)
}

// Store is a token cache. The zero Storage means disk.
type Store struct {
	Dir     string
	Storage Storage
}

func (s Store) path(k Key) string { return filepath.Join(s.Dir, k.Checksum()) }

// Load reads the entry for k. Any entry that cannot be used, whatever the
// reason, is reported as ErrNotFound (wrapped with the reason).
func (s Store) Load(k Key) (Entry, error) {
	if s.Storage == StorageNone {
		return Entry{}, ErrNotFound
	}
	p := s.path(k)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Entry{}, ErrNotFound
		}
		return Entry{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: %s is not a token cache entry (it will be replaced): %w", ErrNotFound, p, err)
	}
	if e.IDToken == "" && e.RefreshToken == "" {
		return Entry{}, fmt.Errorf("%w: %s holds no token (it will be replaced)", ErrNotFound, p)
	}
	return e, nil
}

// Save writes the entry for k atomically: a reader sees the old entry or
// the new one, never a part. The file is 0600 and the folder 0700.
func (s Store) Save(k Key, e Entry) error {
	if s.Storage == StorageNone {
		return nil
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode token cache entry: %w", err)
	}
	p := s.path(k)
	f, err := os.CreateTemp(s.Dir, filepath.Base(p)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write token cache: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil && !isWindows() {
		f.Close()
		return fmt.Errorf("write token cache: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write token cache %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write token cache %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write token cache %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write token cache: %w", err)
	}
	return nil
}

// Delete removes the entry for k (a missing entry is not an error).
func (s Store) Delete(k Key) error {
	if s.Storage == StorageNone {
		return nil
	}
	if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete token cache entry: %w", err)
	}
	return nil
}

// DeleteAll removes the cache folder: every entry and lock, gatehouse's and
// kubelogin's.
func (s Store) DeleteAll() error {
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("delete token cache %s: %w", s.Dir, err)
	}
	return nil
}

// ensureDir creates the folder 0700, and narrows an existing folder that
// others could read or write.
func (s Store) ensureDir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create token cache folder: %w", err)
	}
	if isWindows() {
		return nil
	}
	fi, err := os.Stat(s.Dir)
	if err != nil {
		return fmt.Errorf("token cache folder: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.Dir, 0o700); err != nil {
			return fmt.Errorf("token cache folder %s is open to other users and cannot be narrowed to 0700: %w", s.Dir, err)
		}
	}
	return nil
}

func isWindows() bool { return os.PathSeparator == '\\' }

// ExpandHome replaces a leading ~ with the home folder, as kubelogin does
// for its path flags.
func ExpandHome(p string) string {
	if !strings.HasPrefix(p, "~") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}

// DefaultDir is kubelogin's default: $KUBECACHEDIR/oidc-login, else
// ~/.kube/cache/oidc-login (unexpanded).
func DefaultDir() string {
	if d, ok := os.LookupEnv("KUBECACHEDIR"); ok {
		return filepath.Join(d, "oidc-login")
	}
	return filepath.Join("~", ".kube", "cache", "oidc-login")
}
