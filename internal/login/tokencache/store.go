// Package tokencache stores the plugin's tokens between runs: one JSON
// file per key ({"id_token","refresh_token"}, kubelogin's format and file
// name), 0600 in a 0700 folder, written atomically (temporary file then
// rename), guarded by one lock file per key so that parallel kubectl runs
// neither corrupt an entry nor log in twice. With the keyring storage the
// same JSON is kept in the OS keyring under kubelogin's service and item
// names, and the lock file stays on disk, as kubelogin does.
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
	case StorageDisk, StorageNone, StorageKeyring:
		return Storage(s), nil
	}
	return "", fmt.Errorf("token-cache-storage must be one of (disk|keyring|none), not %q", s)
}

// Keyring is the OS keyring (go-keyring's interface; the plugin's engine
// passes internal/login/tokencache/keyring). Get must wrap ErrNotFound
// when there is no such item.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
	Delete(service, user string) error
	DeleteAll(service string) error
}

// kubelogin's keyring names (pkg/tokencache/repository at v1.36.3): every
// entry is an item of service "kubelogin" whose user name is the prefix
// and the key's checksum, so a user who switches keeps the session
// kubelogin kept there.
const (
	KeyringService    = "kubelogin"
	KeyringItemPrefix = "kubelogin/tokencache/"
)

// Store is a token cache. The zero Storage means disk. Keyring is needed
// for StorageKeyring only.
type Store struct {
	Dir     string
	Storage Storage
	Keyring Keyring
}

func (s Store) path(k Key) string { return filepath.Join(s.Dir, k.Checksum()) }

// errNoKeyring is returned when the program links no keyring.
var errNoKeyring = errors.New("--token-cache-storage=keyring: this program has no keyring")

// Load reads the entry for k. Any entry that cannot be used, whatever the
// reason, is reported as ErrNotFound (wrapped with the reason).
func (s Store) Load(k Key) (Entry, error) {
	var b []byte
	var where string
	switch s.Storage {
	case StorageNone:
		return Entry{}, ErrNotFound
	case StorageKeyring:
		if s.Keyring == nil {
			return Entry{}, fmt.Errorf("%w: %w", ErrNotFound, errNoKeyring)
		}
		where = "keyring item " + KeyringItemPrefix + k.Checksum()
		secret, err := s.Keyring.Get(KeyringService, KeyringItemPrefix+k.Checksum())
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return Entry{}, err
			}
			return Entry{}, fmt.Errorf("%w: read the keyring: %w", ErrNotFound, err)
		}
		b = []byte(secret)
	default:
		where = s.path(k)
		var err error
		if b, err = os.ReadFile(where); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Entry{}, ErrNotFound
			}
			return Entry{}, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return decode(b, where)
}

func decode(b []byte, p string) (Entry, error) {
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
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode token cache entry: %w", err)
	}
	if s.Storage == StorageKeyring {
		if s.Keyring == nil {
			return errNoKeyring
		}
		if err := s.Keyring.Set(KeyringService, KeyringItemPrefix+k.Checksum(), string(b)); err != nil {
			return fmt.Errorf("write the token to the keyring (item %s%s): %w; is a Secret Service (GNOME Keyring, KWallet, KeePassXC) running and unlocked? Or use --token-cache-storage=disk", KeyringItemPrefix, k.Checksum(), err)
		}
		return nil
	}
	if err := s.ensureDir(); err != nil {
		return err
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
	switch s.Storage {
	case StorageNone:
		return nil
	case StorageKeyring:
		if s.Keyring == nil {
			return errNoKeyring
		}
		if err := s.Keyring.Delete(KeyringService, KeyringItemPrefix+k.Checksum()); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete the token from the keyring: %w", err)
		}
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

// DeleteKeyring removes every item of kubelogin's keyring service: every
// entry, gatehouse's and kubelogin's.
func (s Store) DeleteKeyring() error {
	if s.Keyring == nil {
		return errNoKeyring
	}
	if err := s.Keyring.DeleteAll(KeyringService); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("keyring delete: %w", err)
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
