// Command fakeengine stands in for the engine in the front's tests: it
// reports on stdout what it was started with (argv, pid, executable, one
// environment variable, stdin when asked), writes a line on stderr and
// exits with the code in FAKE_ENGINE_EXIT. With "wait-signal" as its first
// argument it prints "ready" and exits 42 on SIGTERM.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// Report is what the fake engine prints.
type Report struct {
	Args  []string
	Pid   int
	Exe   string
	Env   string
	Stdin string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "wait-signal" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		os.Exit(42)
	}
	r := Report{Args: os.Args, Pid: os.Getpid(), Env: os.Getenv("FAKE_ENGINE_ENV")}
	r.Exe, _ = os.Readlink("/proc/self/exe")
	if len(os.Args) > 1 && os.Args[1] == "read-stdin" {
		b, _ := io.ReadAll(os.Stdin)
		r.Stdin = string(b)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(99)
	}
	fmt.Fprintln(os.Stderr, "fake engine: a line on stderr")
	code, _ := strconv.Atoi(os.Getenv("FAKE_ENGINE_EXIT"))
	os.Exit(code)
}
