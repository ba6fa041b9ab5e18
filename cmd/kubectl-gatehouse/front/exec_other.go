//go:build !unix

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// execEngine runs the engine as a child (no exec(2) here) and passes its
// exit code on.
func execEngine(path string, argv, env []string) int {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "error: run %s: %v\n", path, err)
		return 1
	}
	return 0
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
