//go:build linux

package cli_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// When no browser can be opened, get-token says so in one line at once
// and goes on waiting for the redirect: the user opens the printed URL
// (here: the test does, once it has read the line) and the login ends
// normally. kubectl runs it without a terminal (interactive: false), as
// an IDE or k9s does. The default browser is xdg-open found on PATH.
func TestNoBrowser(t *testing.T) {
	bin := pluginBinary(t)
	srv := issuertest.Start(t, issuertest.Options{})
	tests := []struct {
		name string
		env  []string
		// xdgOpen is the xdg-open on PATH: "" none, "fails" one that
		// prints what xdg-open prints without a browser and exits 3,
		// "browser" the browser stand-in.
		xdgOpen string
		// wantLine is the one line that explains; "" when the browser opens.
		wantLine  string
		wantOther []string
		// xdgRuns: whether xdg-open must have been run.
		xdgRuns bool
	}{
		{name: "no display", wantLine: "Cannot open a browser: no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (no desktop session)", xdgOpen: "browser"},
		{name: "SSH session", env: []string{"SSH_CONNECTION=192.0.2.1 50000 192.0.2.2 22"}, xdgOpen: "browser",
			wantLine: "Cannot open a browser: no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (an SSH session)", wantOther: []string{"ssh -L", "--grant-type=device-code"}},
		{name: "xdg-open missing", env: []string{"DISPLAY=:0"}, wantLine: "Cannot open a browser: xdg-open is not installed"},
		{name: "xdg-open finds no browser", env: []string{"DISPLAY=:0"}, xdgOpen: "fails", xdgRuns: true,
			wantLine: "Could not open the browser: xdg-open failed (exit status 3)"},
		{name: "BROWSER set, no display (VS Code remote)", env: []string{"BROWSER=/somewhere/browser.sh"}, xdgOpen: "browser", xdgRuns: true},
		{name: "desktop", env: []string{"WAYLAND_DISPLAY=wayland-0"}, xdgOpen: "browser", xdgRuns: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pathDir := filepath.Join(dir, "bin")
			if err := os.MkdirAll(pathDir, 0o755); err != nil {
				t.Fatal(err)
			}
			runs := filepath.Join(dir, "xdg-open-runs")
			switch tt.xdgOpen {
			case "browser":
				browserScript(t, pathDir, "xdg-open")
			case "fails":
				// What Debian's xdg-open prints with no browser installed.
				script := "#!/bin/sh\necho run >> " + runs + "\n"
				for _, b := range []string{"www-browser", "links2", "elinks", "links", "lynx", "w3m"} {
					script += "echo \"/usr/bin/xdg-open: 882: " + b + ": not found\" >&2\n"
				}
				script += "echo \"xdg-open: no method available for opening '$1'\" >&2\nexit 3\n"
				if err := os.WriteFile(filepath.Join(pathDir, "xdg-open"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			logFile := filepath.Join(dir, "browser.log")
			cmd := exec.Command(bin, "get-token", "--oidc-issuer-url="+srv.URL, "--oidc-client-id="+srv.ClientID,
				"--oidc-client-secret="+srv.ClientSecret, "--certificate-authority="+srv.CAFile,
				"--token-cache-dir="+filepath.Join(dir, "cache"), "--listen-address=127.0.0.1:0", "--authentication-timeout-sec=60")
			cmd.Env = append([]string{"PATH=" + pathDir, "HOME=" + dir,
				"GATEHOUSE_TEST_BROWSER=http", "GATEHOUSE_TEST_BROWSER_LOG=" + logFile,
				"GATEHOUSE_TEST_ISSUER=" + srv.URL, "GATEHOUSE_TEST_CA=" + srv.CAFile,
				"GATEHOUSE_TEST_USER=" + srv.Username, "GATEHOUSE_TEST_PASS=" + srv.Password,
				"KUBERNETES_EXEC_INFO=" + execInfoV1NonInteract}, tt.env...)
			var out strings.Builder
			cmd.Stdout = &out
			er, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var lines []string
			var wg sync.WaitGroup
			sc := bufio.NewScanner(er)
			sc.Buffer(make([]byte, 64<<10), 64<<10)
			var authURL string
			told, opened := false, false
			for sc.Scan() {
				line := sc.Text()
				mu.Lock()
				lines = append(lines, line)
				mu.Unlock()
				if strings.HasPrefix(line, "https://") {
					authURL = line
				}
				if tt.wantLine != "" && strings.Contains(line, tt.wantLine) {
					told = true
				}
				// Told that no browser opened, the user copies the URL
				// into a browser on this machine.
				if told && authURL != "" && !opened {
					opened = true
					wg.Add(1)
					go func() {
						defer wg.Done()
						userOpens(t, srv, authURL)
					}()
				}
			}
			err = cmd.Wait()
			wg.Wait()
			stderr := strings.Join(lines, "\n")
			if err != nil {
				t.Fatalf("get-token: %v\n%s", err, stderr)
			}
			tokenV1(t, out.String())
			if tt.wantLine != "" {
				n := 0
				for _, l := range lines {
					if strings.Contains(l, tt.wantLine) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("stderr has %d lines with %q, want 1:\n%s", n, tt.wantLine, stderr)
				}
			}
			for _, w := range tt.wantOther {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "not found") || strings.Contains(stderr, "no method available") {
				t.Errorf("xdg-open's own output reached the terminal:\n%s", stderr)
			}
			_, statErr := os.Stat(runs)
			ran := statErr == nil || countLines(logFile) > 0
			if ran != tt.xdgRuns {
				t.Errorf("xdg-open ran: %v, want %v", ran, tt.xdgRuns)
			}
		})
	}
}

// userOpens logs in at url and follows the redirect to the plugin, as a
// person who copied the URL into a browser does.
func userOpens(t *testing.T, srv *issuertest.Server, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, _, err := srv.LoginPage(srv.Browser(), url)
	if err != nil {
		t.Errorf("login at the printed URL: %v", err)
		return
	}
	loc, err := resp.Location()
	if err != nil {
		t.Errorf("no redirect: %v", err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("redirect to the plugin: %v", err)
		return
	}
	r.Body.Close()
}
