package cli_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/cli"
)

// urlWatcher is a stderr that hands over the URL the plugin prints.
type urlWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	urls chan string
	sent bool
}

var printedURL = regexp.MustCompile(`in your browser: (\S+)`)

func (w *urlWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := printedURL.FindStringSubmatch(w.buf.String()); m != nil && !w.sent {
		w.sent = true
		w.urls <- m[1]
	}
	return len(p), nil
}

func (w *urlWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var oobCode = regexp.MustCompile(`<output id="code"[^>]*>([^<]+)</output>`)

func TestAuthCodeKeyboard(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// answer turns the login's result into what the user types.
		answer  func(t *testing.T, page string, loc *url.URL) string
		wantErr string
	}{
		{
			name: "out-of-band code typed in",
			answer: func(t *testing.T, page string, _ *url.URL) string {
				m := oobCode.FindStringSubmatch(page)
				if m == nil {
					t.Fatalf("no code on the out-of-band page:\n%s", page)
				}
				return strings.TrimSpace(m[1])
			},
		},
		{
			name: "whole redirect URL pasted",
			args: []string{"--oidc-redirect-url=http://localhost:8000"},
			answer: func(t *testing.T, _ string, loc *url.URL) string {
				return loc.String()
			},
		},
		{
			name: "pasted redirect URL with another login's state",
			args: []string{"--oidc-redirect-url=http://localhost:8000"},
			answer: func(t *testing.T, _ string, loc *url.URL) string {
				setQuery("state", "other-login")(loc)
				return loc.String()
			},
			wantErr: "state does not match",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, time.Hour)
			stdinR, stdinW := io.Pipe()
			defer stdinW.Close()
			stderr := &urlWatcher{urls: make(chan string, 1)}
			var out bytes.Buffer
			go func() {
				raw, ok := <-stderr.urls
				if !ok {
					return
				}
				resp, page, err := r.srv.LoginPage(r.srv.Browser(), raw)
				if err != nil {
					t.Errorf("login: %v", err)
					stdinW.Close()
					return
				}
				loc, _ := resp.Location()
				_, _ = io.WriteString(stdinW, tt.answer(t, page, loc)+"\n")
			}()
			args := append(r.args("--grant-type=authcode-keyboard", "--authentication-timeout-sec=30"), tt.args...)
			code := cli.Main(context.Background(), args, cli.Env{
				Stdin: stdinR, Stdout: &out, Stderr: stderr, Now: r.clock.Now,
				Getenv: func(k string) string { return map[string]string{"KUBERNETES_EXEC_INFO": execInfoV1}[k] },
			})
			if tt.wantErr != "" {
				if code == 0 || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Fatalf("exit %d, stderr %q", code, stderr.String())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			tokenV1(t, out.String())
		})
	}
}
