//go:build !embedengine

package main

import (
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setProcessName sets the name ps, top and pgrep show. Linux takes it from
// the executable's path, and the one-file build starts this engine through
// /proc/self/fd/N, which would name it "N"; one prctl costs about a
// microsecond.
func setProcessName(argv0 string) {
	p, err := unix.BytePtrFromString(filepath.Base(argv0))
	if err != nil {
		return
	}
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0)
	runtime.KeepAlive(p)
}
