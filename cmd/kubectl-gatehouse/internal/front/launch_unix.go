//go:build unix && !linux

package front

import (
	"errors"
	"fmt"
	"syscall"
)

const startHint = "make ~/Library/Caches/gatehouse (the user cache folder) a folder of yours, mode 0700, on a volume that allows running programs, or install the plain build: " + plainBuild

// start runs the engine from the user cache folder, replacing this
// process; it returns only on failure.
func (l launcher) start(argv, env []string) (int, error) {
	x, err := l.extract()
	if err == nil {
		err = execExtracted(x, argv, env)
	}
	return 0, startError(errors.New("not on this system"), err)
}

// execExtracted execs the verified file by path (there is no fexecve
// here): only the user can change the folder (checkPrivateDir) and no
// other user any folder above it (checkPath).
func execExtracted(x *extracted, argv, env []string) error {
	defer x.File.Close()
	if err := checkPath(x.Dir); err != nil {
		return err
	}
	return fmt.Errorf("exec %s: %w", x.Path, syscall.Exec(x.Path, argv, env))
}
