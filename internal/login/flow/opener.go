// Package flow runs the interactive logins: authorization code with PKCE
// on a loopback listener, the same with the code typed in
// (authcode-keyboard), the device authorization grant, and the password
// grant. Each flow ends when it succeeds, fails, times out or ctx is
// cancelled (Ctrl-C), and leaves no listener, goroutine or child process
// of its own behind (the desktop's browser, once opened, is the user's).
package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
)

// Opener shows a URL to the user. Open returns a function that releases
// whatever Open started; the flow calls it before it returns. An error
// means no browser was opened; the flow then asks the user to open the
// URL and goes on waiting.
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

// Open starts the command. If it fails later, one line says so.
func (o CommandOpener) Open(ctx context.Context, url string) (func(), error) {
	cmd := exec.Command(o.Command, url)
	cmd.Stdout = o.Stderr
	cmd.Stderr = o.Stderr
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("--browser-command: %w", err)
	}
	return watch(cmd, o.Stderr, "--browser-command "+o.Command, true), nil
}

// SystemOpener opens the desktop's default browser (xdg-open, open,
// rundll32). Before it tries, it checks that there is a desktop to open
// it on: on Linux and the BSDs a display (DISPLAY, WAYLAND_DISPLAY), a
// BROWSER (which xdg-open honours; VS Code's remote sessions set it) or
// WSL. The opener's own output is kept off the terminal: when it fails,
// one line says so (xdg-open alone prints a line per browser it did not
// find). The browser it starts is the user's: it is never stopped.
type SystemOpener struct {
	Stderr io.Writer
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
}

// ErrNoBrowser is wrapped by the errors of an Opener that found no way to
// open a browser.
var ErrNoBrowser = errors.New("cannot open a browser")

// Open starts the desktop's opener; it returns at once.
func (o SystemOpener) Open(ctx context.Context, url string) (func(), error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name, args := "xdg-open", []string{url}
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler", url}
	case "android": // Termux's xdg-open needs no display
	default:
		if why := noDesktop(getenv); why != "" {
			return nil, fmt.Errorf("%w: %s", ErrNoBrowser, why)
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not installed", ErrNoBrowser, name)
	}
	cmd := exec.Command(path, args...)
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoBrowser, name, err)
	}
	return watch(cmd, o.Stderr, name, false), nil
}

// noDesktop says why a browser cannot be opened on a Unix without macOS's
// or Windows' desktop, or "" when xdg-open has a chance.
func noDesktop(getenv func(string) string) string {
	for _, k := range []string{"DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "WSL_DISTRO_NAME"} {
		if getenv(k) != "" {
			return ""
		}
	}
	where := "no desktop session"
	if getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "" {
		where = "an SSH session"
	}
	return "no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (" + where + ")"
}

// watch reaps cmd and reports on stderr, in one line, an exit with an
// error that happens before release is called. With stop, release kills
// cmd's process group and waits for it; without, release only silences
// the report and cmd is left to run (a desktop browser).
func watch(cmd *exec.Cmd, stderr io.Writer, name string, stop bool) func() {
	var mu sync.Mutex
	released := false
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		mu.Lock()
		if err != nil && !released {
			fmt.Fprintf(stderr, "Could not open the browser: %s failed (%v); open the URL above yourself. Waiting for the login.\n", name, err)
		}
		mu.Unlock()
		close(done)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			released = true
			mu.Unlock()
			if !stop {
				return
			}
			select {
			case <-done:
				return
			default:
			}
			killProcessGroup(cmd)
			<-done
		})
	}
}

// cappedBuffer keeps the first 4 KiB written to it (an opener's chatter).
type cappedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := 4096 - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// PrintOpener only prints the URL (--skip-open-browser).
type PrintOpener struct{ Stderr io.Writer }

// Open prints the URL.
func (o PrintOpener) Open(ctx context.Context, url string) (func(), error) {
	fmt.Fprintf(o.Stderr, "Please visit the following URL in your browser: %s\n", url)
	return func() {}, nil
}

// show opens url with o and tells the user on stderr. printURL says
// whether the URL still has to be printed (the device flow has printed
// its own); hint, when set, is added to the line that says no browser
// could be opened. It returns the function that releases the browser.
func show(ctx context.Context, o Opener, stderr io.Writer, url string, printURL bool, hint string) func() {
	if o == nil {
		o = PrintOpener{Stderr: stderr}
	}
	if _, printOnly := o.(PrintOpener); printOnly && !printURL {
		return func() {}
	}
	release, err := o.Open(ctx, url)
	if release == nil {
		release = func() {}
	}
	if _, printOnly := o.(PrintOpener); printOnly {
		return release
	}
	switch {
	case err != nil && printURL:
		fmt.Fprintf(stderr, "%s. Open this URL in a browser on this machine to log in%s:\n%s\n", capitalize(err.Error()), hint, url)
	case err != nil:
		fmt.Fprintf(stderr, "%s.\n", capitalize(err.Error()))
	case printURL:
		fmt.Fprintf(stderr, "Opening the browser to log in; if it does not open, visit:\n%s\n", url)
	}
	return release
}

func capitalize(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

var errTimeout = errors.New("authentication timed out (--authentication-timeout-sec)")
