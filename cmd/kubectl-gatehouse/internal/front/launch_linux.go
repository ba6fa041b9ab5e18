package front

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const startHint = "point XDG_CACHE_HOME at a folder of yours on a file system that allows running programs (not mounted noexec), or install the plain build: " + plainBuild

// start runs the engine from memory, else from the user cache folder.
// Either way it replaces this process and returns only on failure.
func (l launcher) start(argv, env []string) (int, error) {
	memErr := errors.New("skipped")
	if !l.noMemory {
		memErr = execMemory(l.engine, argv, env)
	}
	x, err := l.extract()
	if err == nil {
		err = execExtracted(x, argv, env)
	}
	return 0, startError(memErr, err)
}

// execMemory copies the engine into a sealed in-memory file and execs it.
//
// Measured on Linux 6.18: MFD_CLOEXEC closes the file in the engine (the
// kernel has opened the executable by then; without it the engine would
// inherit the descriptor); the writable descriptor does not make exec fail
// with ETXTBSY. With vm.memfd_noexec=1 a memfd created without MFD_EXEC is
// not executable (exec: EACCES); with vm.memfd_noexec=2, memfd_create with
// MFD_EXEC fails with EACCES and one without it is not executable: both
// end in the fallback. Before Linux 6.3 MFD_EXEC is unknown (EINVAL) and
// every memfd is executable.
func execMemory(data []byte, argv, env []string) error {
	const name = "kubectl-gatehouse-engine"
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write memfd: %w", err)
		}
		b = b[n:]
	}
	// Nothing may change the engine once written (F_SEAL_EXEC, Linux 6.3:
	// nor its mode).
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals|unix.F_SEAL_EXEC); errors.Is(err, unix.EINVAL) {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
	}
	if err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return fmt.Errorf("exec memfd: %w", syscall.Exec("/proc/self/fd/"+strconv.Itoa(fd), argv, env))
}

// execExtracted execs the verified file through its descriptor, so that
// what runs is what was checked; by path only when /proc is missing.
func execExtracted(x *extracted, argv, env []string) error {
	defer x.File.Close()
	err := syscall.Exec("/proc/self/fd/"+strconv.Itoa(int(x.File.Fd())), argv, env)
	if errors.Is(err, syscall.ENOENT) {
		if err := checkPath(x.Dir); err != nil {
			return err
		}
		err = syscall.Exec(x.Path, argv, env)
	}
	return fmt.Errorf("exec %s: %w", x.Path, err)
}
