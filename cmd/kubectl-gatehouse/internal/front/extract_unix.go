//go:build unix

package front

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// exeSuffix is the extracted engine's file name suffix.
const exeSuffix = ""

func owner(fi fs.FileInfo) (uid, gid uint32) {
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// checkPrivateDir checks that the engine folder belongs to the user
// (another user's folder is refused: they could swap the engine) and
// narrows it to 0700 when it is wider.
func checkPrivateDir(root *os.Root, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("not a folder")
	}
	if uid, _ := owner(fi); int(uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by you (uid %d): remove it or give it to yourself, mode 0700", uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := root.Chmod(".", 0o700); err != nil {
			return fmt.Errorf("narrow to 0700: %w", err)
		}
	}
	return nil
}

// checkFile checks that the engine file belongs to the user and that
// nobody else may write it.
func checkFile(fi fs.FileInfo) error {
	if uid, _ := owner(fi); int(uid) != os.Geteuid() {
		return fmt.Errorf("%w: owned by uid %d", errNotEngine, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: mode %v lets others write it", errNotEngine, fi.Mode().Perm())
	}
	return nil
}

// checkPath checks, before the engine is exec'd by path, that no folder on
// the way to it can be changed by another user: each is owned by the user
// or by root, and writable by nobody else unless it is sticky (like /tmp,
// where others cannot rename what is not theirs). dir is resolved
// (no symlinks).
func checkPath(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		uid, _ := owner(fi)
		if int(uid) != os.Geteuid() && uid != 0 {
			return fmt.Errorf("%s is owned by uid %d, who could replace the engine", d, uid)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("%s (mode %v) may be written by others, who could replace the engine", d, fi.Mode().Perm())
		}
		if p := filepath.Dir(d); p == d {
			return nil
		}
	}
}
