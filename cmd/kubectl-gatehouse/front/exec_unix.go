//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// execEngine replaces this process with the engine: same pid, stdin,
// stdout, stderr and signals.
func execEngine(path string, argv, env []string) int {
	err := syscall.Exec(path, argv, env)
	fmt.Fprintf(os.Stderr, "error: run %s: %v\n", path, err)
	return 1
}

func lookPath(name string) (string, error) {
	for _, dir := range filepathList(os.Getenv("PATH")) {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func filepathList(path string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == ':' {
			if i > start {
				out = append(out, path[start:i])
			}
			start = i + 1
		}
	}
	return out
}
