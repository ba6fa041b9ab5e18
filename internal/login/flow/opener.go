// Package flow runs the interactive logins: authorization code with PKCE
// on a loopback listener, the same with the code typed in
// (authcode-keyboard), the device authorization grant, and the password
// grant. Each flow ends when it succeeds, fails, times out or ctx is
// cancelled (Ctrl-C), and leaves no listener, goroutine or child process
// behind.
package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sync"
)

// Opener shows a URL to the user. Open returns a function that releases
// whatever Open started; the flow calls it before it returns.
type Opener interface {
	Open(ctx context.Context, url string) (release func(), err error)
}

// CommandOpener runs Command URL (kubelogin's --browser-command). The
// command's output goes to Stderr (stdout is reserved for the
// ExecCredential). It is stopped, with its process group, when the flow
// ends: a headless browser never outlives the login.
type CommandOpener struct {
	Command string
	Stderr  io.Writer
}

// Open starts the command.
func (o CommandOpener) Open(ctx context.Context, url string) (func(), error) {
	return startCommand(o.Stderr, o.Command, url)
}

// SystemOpener opens the desktop's default browser (xdg-open, open,
// rundll32).
type SystemOpener struct{ Stderr io.Writer }

// Open starts the desktop's opener; it returns at once.
func (o SystemOpener) Open(ctx context.Context, url string) (func(), error) {
	switch runtime.GOOS {
	case "darwin":
		return startCommand(o.Stderr, "open", url)
	case "windows":
		return startCommand(o.Stderr, "rundll32", "url.dll,FileProtocolHandler", url)
	}
	return startCommand(o.Stderr, "xdg-open", url)
}

func startCommand(stderr io.Writer, name string, args ...string) (func(), error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return func() {}, fmt.Errorf("open the browser with %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			select {
			case <-done:
				return
			default:
			}
			killProcessGroup(cmd)
			<-done
		})
	}, nil
}

// PrintOpener only prints the URL (--skip-open-browser).
type PrintOpener struct{ Stderr io.Writer }

// Open prints the URL.
func (o PrintOpener) Open(ctx context.Context, url string) (func(), error) {
	fmt.Fprintf(o.Stderr, "Please visit the following URL in your browser: %s\n", url)
	return func() {}, nil
}

// openOrPrint opens url and falls back to printing it.
func openOrPrint(ctx context.Context, o Opener, stderr io.Writer, url string) func() {
	if o == nil {
		o = PrintOpener{Stderr: stderr}
	}
	if _, printOnly := o.(PrintOpener); !printOnly {
		fmt.Fprintf(stderr, "Opening the browser to log in; if it does not open, visit:\n%s\n", url)
	}
	release, err := o.Open(ctx, url)
	if err != nil {
		fmt.Fprintf(stderr, "error: could not open the browser: %v\n\nPlease visit the following URL in your browser manually: %s\n", err, url)
	}
	if release == nil {
		release = func() {}
	}
	return release
}

var errTimeout = errors.New("authentication timed out (--authentication-timeout-sec)")
