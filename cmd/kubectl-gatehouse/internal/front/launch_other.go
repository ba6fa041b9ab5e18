//go:build !unix

package front

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
)

const startHint = `make %LocalAppData%\gatehouse a folder you may write and run programs from, or install the plain build: ` + plainBuild

// start runs the engine from the user cache folder as a child (there is no
// exec(2) here) with this process's stdin, stdout, stderr and environment,
// and returns its exit code.
func (l launcher) start(argv, env []string) (int, error) {
	x, err := l.extract()
	if err != nil {
		return 0, startError(errors.New("not on this system"), err)
	}
	defer x.File.Close()
	cmd := &exec.Cmd{Path: x.Path, Args: argv, Env: env, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	// Ctrl-C reaches every process of the console, the engine included:
	// the engine decides what it means; this process waits for its exit
	// code instead of dying first.
	signal.Notify(make(chan os.Signal, 1), os.Interrupt)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, startError(errors.New("not on this system"), fmt.Errorf("run %s: %w", x.Path, err))
	}
	return 0, nil
}
