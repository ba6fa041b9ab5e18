//go:build unix

package ship

import (
	"os"
	"syscall"
)

// devIno is a file's device and inode: its identity across renames.
func devIno(info os.FileInfo) (uint64, uint64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // Dev is int32 on some platforms
	}
	return 0, 0
}
