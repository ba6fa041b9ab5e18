package front

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// dirName is the folder under the user cache folder that holds the
// extracted engine.
const dirName = "gatehouse"

// extracted is the engine's file in the user cache folder, open and
// verified: it holds exactly the embedded bytes.
type extracted struct {
	// File is open for reading; on Linux the engine is exec'd through it,
	// so that what runs is what was verified.
	File *os.File
	// Path is the file's path (exec'd where there is no /proc/self/fd).
	Path string
	// Dir is the folder's resolved path.
	Dir string
}

// extract returns the engine's file in the cache folder, writing it when
// it is missing and replacing it when it is not the embedded engine (a
// half-written file, or one that was modified: it is never run).
//
// The folder must be a directory owned by the user, nobody else may write
// it (it is made 0700), and everything below it is opened through an
// os.Root on it, so another user can neither swap the file nor point a
// symlink elsewhere. Concurrent runs each write their own temporary file
// and rename it into place; a reader sees a whole file or none.
func (l launcher) extract() (*extracted, error) {
	sum := sha256.Sum256(l.engine)
	name := "engine-" + hex.EncodeToString(sum[:]) + exeSuffix
	root, dir, err := l.openDir()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	path := filepath.Join(dir, name)
	f, err := openVerified(root, name, sum, int64(len(l.engine)))
	if err == nil {
		return &extracted{File: f, Path: path, Dir: dir}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		// Say so: a changed file in a folder only the user can write is
		// worth knowing about. It is replaced, never run.
		fmt.Fprintf(os.Stderr, "warning: %s: %v; writing it again\n", path, err)
	}
	if err := writeEngine(root, name, l.engine); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	f, err = openVerified(root, name, sum, int64(len(l.engine)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	removeStale(root, name)
	return &extracted{File: f, Path: path, Dir: dir}, nil
}

// openDir creates (0700) and opens the engine folder, after checking that
// the user owns it and nobody else can write it.
func (l launcher) openDir() (*os.Root, string, error) {
	base := l.cacheRoot
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return nil, "", fmt.Errorf("no user cache folder: %w", err)
		}
	}
	dir := filepath.Join(base, dirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, dir, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, dir, err
	}
	fi, err := root.Stat(".")
	if err == nil {
		err = checkPrivateDir(root, fi)
	}
	if err != nil {
		root.Close()
		return nil, dir, fmt.Errorf("%s: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return root, dir, nil
}

// errNotEngine reports a file that is not the embedded engine.
var errNotEngine = errors.New("not this kubectl-gatehouse's engine")

// openVerified opens name in root and checks that it is a regular file
// (not a symlink) that only the user can write, holding exactly size bytes
// whose SHA-256 is sum. The checks read through the returned file.
func openVerified(root *os.Root, name string, sum [sha256.Size]byte, size int64) (*os.File, error) {
	lfi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !lfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: a %s, not a file", errNotEngine, lfi.Mode().Type())
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(fi, lfi) {
		err = fmt.Errorf("%w: replaced while being opened", errNotEngine)
	}
	if err == nil {
		err = checkFile(fi)
	}
	if err == nil && fi.Size() != size {
		err = fmt.Errorf("%w: %d bytes, want %d", errNotEngine, fi.Size(), size)
	}
	if err == nil {
		h := sha256.New()
		if _, err = io.Copy(h, f); err == nil {
			if got := h.Sum(nil); string(got) != string(sum[:]) {
				err = fmt.Errorf("%w: SHA-256 %x, want %x", errNotEngine, got, sum)
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeEngine writes data to a new temporary file in root (0700, only the
// user may write it) and renames it to name.
func writeEngine(root *os.Root, name string, data []byte) error {
	var f *os.File
	var tmp string
	for i := 0; ; i++ {
		tmp = ".engine-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".tmp"
		var err error
		f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == 10 {
			return err
		}
	}
	_, err := f.Write(data)
	if err == nil && runtime.GOOS != "windows" {
		// The umask may have narrowed the mode; 0700 is what exec needs.
		err = f.Chmod(0o700)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}

// removeStale removes the engines of other versions and temporary files
// left by runs that died an hour or more ago. Errors are ignored (on
// windows a running engine cannot be removed; the next extraction tries
// again).
func removeStale(root *os.Root, keep string) {
	d, err := root.Open(".")
	if err != nil {
		return
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == keep:
		case strings.HasPrefix(n, "engine-"):
			root.Remove(n)
		case strings.HasPrefix(n, ".engine-") && strings.HasSuffix(n, ".tmp"):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				root.Remove(n)
			}
		}
	}
}
