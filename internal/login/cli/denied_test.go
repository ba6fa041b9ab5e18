package cli_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

// A refused login ends at once: the issuer's error response (RFC 6749
// 4.1.2.1) with this login's state stops the wait, the reason is printed
// on stderr (one line, terminal-safe) and shown on the loopback page, and
// get-token exits 1. The timeout is 10 minutes and the test's context 2:
// a run that waited for the timeout would fail as "cancelled".
func TestDeniedLoginEndsAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		tamper  func(*url.URL)
		wantErr []string
		// wantPage is on the loopback page.
		wantPage   []string
		wantStatus int
	}{
		{
			name: "access_denied from the issuer (not in the allowed orgs)",
			tamper: errorResponse(url.Values{"error": {"access_denied"},
				"error_description": {"Not a member of an allowed organization (exampleorg); signed in to GitHub as mallory"}}),
			wantErr:    []string{"the issuer refused the login (access_denied): Not a member of an allowed organization (exampleorg); signed in to GitHub as mallory"},
			wantPage:   []string{"Login refused", "Not a member of an allowed organization (exampleorg); signed in to GitHub as mallory", "access_denied"},
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "any RFC 6749 error, with error_uri",
			tamper:     errorResponse(url.Values{"error": {"temporarily_unavailable"}, "error_uri": {"https://status.example/"}}),
			wantErr:    []string{"(temporarily_unavailable) (see https://status.example/)"},
			wantPage:   []string{"no reason given", "temporarily_unavailable"},
			wantStatus: http.StatusForbidden,
		},
		{
			name: "escape sequences and newlines in the description are not passed to the terminal",
			tamper: errorResponse(url.Values{"error": {"access_denied"},
				"error_description": {"denied\x1b]0;pwned\x07\nerror: fake second line\u202e"}}),
			wantErr:    []string{`"denied\x1b]0;pwned\a\nerror: fake second line\u202e"`},
			wantPage:   []string{"Login refused"},
			wantStatus: http.StatusForbidden,
		},
		{
			// No tampering: the issuer itself redirects with
			// invalid_scope, this login's state and its iss.
			name:       "the issuer's own error redirect",
			args:       []string{"--oidc-extra-scope=no-such-scope"},
			wantErr:    []string{"the issuer refused the login (invalid_scope)", "no-such-scope"},
			wantPage:   []string{"invalid_scope"},
			wantStatus: http.StatusForbidden,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, time.Hour)
			r.br.tamperRedirect = tt.tamper
			var status atomic.Int32
			var page atomic.Value
			r.br.landed = func(s int, p string) { status.Store(int32(s)); page.Store(p) }
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := r.args(append([]string{"--authentication-timeout-sec=600"}, tt.args...)...)
			res := r.run(ctx, execInfoV1NonInteract, args)
			if res.code == 0 || res.stdout != "" {
				t.Fatalf("a refused login gave a token: exit %d, stdout %q", res.code, res.stdout)
			}
			if strings.Contains(res.stderr, "timed out") || strings.Contains(res.stderr, "cancelled") {
				t.Fatalf("the refusal did not end the login: %q", res.stderr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr %q does not say %q", res.stderr, w)
				}
			}
			_, errLine, _ := strings.Cut(res.stderr, "\nerror: ")
			if errLine == "" || strings.ContainsAny(strings.TrimSuffix(errLine, "\n"), "\x1b\x07\n\u202e") {
				t.Errorf("the error is not one terminal-safe line: %q", res.stderr)
			}
			got, _ := page.Load().(string)
			if int(status.Load()) != tt.wantStatus {
				t.Errorf("loopback page status %d, want %d: %s", status.Load(), tt.wantStatus, got)
			}
			for _, w := range tt.wantPage {
				if !strings.Contains(got, w) {
					t.Errorf("loopback page does not show %q: %s", w, got)
				}
			}
			if strings.ContainsAny(got, "\x1b\x07\u202e") || strings.Contains(got, "<script") {
				t.Errorf("loopback page carries raw input: %q", got)
			}
		})
	}
}

func errorResponse(v url.Values) func(*url.URL) {
	return func(u *url.URL) {
		q := u.Query()
		q.Del("code")
		for k, vs := range v {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
}

// A web page open in any browser on this machine can send requests to
// the loopback listener while a login waits. Without this login's state
// such a request, error or code, must neither end the login nor take the
// place of the real answer; the terminal gets one warning however many
// there are.
func TestForgedErrorDoesNotEndLogin(t *testing.T) {
	forged := []struct {
		name  string
		query func(real url.Values) url.Values
	}{
		{"error without state", func(real url.Values) url.Values {
			return url.Values{"error": {"access_denied"}, "error_description": {"forged"}}
		}},
		{"error with a wrong state and the right iss", func(real url.Values) url.Values {
			return url.Values{"error": {"access_denied"}, "state": {"guessed"}, "iss": real["iss"]}
		}},
		{"error with an empty state", func(real url.Values) url.Values {
			return url.Values{"error": {"server_error"}, "state": {""}}
		}},
		{"code with a wrong state", func(real url.Values) url.Values {
			return url.Values{"code": real["code"], "state": {"guessed"}, "iss": real["iss"]}
		}},
		{"error with the state prefix", func(real url.Values) url.Values {
			return url.Values{"error": {"access_denied"}, "state": {real.Get("state")[:10]}}
		}},
	}
	r := newRig(t, time.Hour)
	r.br.before = func(real *url.URL) {
		for _, f := range forged {
			for range 20 {
				u := *real
				u.RawQuery = f.query(real.Query()).Encode()
				resp, err := http.Get(u.String())
				if err != nil {
					t.Errorf("%s: %v", f.name, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: answered %d, want 400", f.name, resp.StatusCode)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := r.run(ctx, execInfoV1NonInteract, r.args("--authentication-timeout-sec=600"))
	if res.code != 0 {
		t.Fatalf("the forged requests ended the login: exit %d: %s", res.code, res.stderr)
	}
	tokenV1(t, res.stdout)
	if n := strings.Count(res.stderr, "warning: ignored a request"); n != 1 {
		t.Errorf("%d warnings for the forged requests, want 1:\n%s", n, res.stderr)
	}
}

// kubectl calls a failing plugin again for every request it retries (five
// times for kubectl get), and k9s polls: within usecase.RefusalWindow a
// refused login is answered with the same reason without a new browser.
// After the window, or with another cache entry, the browser opens again.
func TestRefusalRemembered(t *testing.T) {
	r := newRig(t, time.Hour)
	r.br.tamperRedirect = errorResponse(url.Values{"error": {"access_denied"}, "error_description": {"not in exampleorg"}})
	ctx := context.Background()
	args := r.args("--authentication-timeout-sec=600")
	first := r.run(ctx, execInfoV1NonInteract, args)
	if first.code == 0 || !strings.Contains(first.stderr, "not in exampleorg") {
		t.Fatalf("first: exit %d, %q", first.code, first.stderr)
	}
	for i := range 4 { // kubectl's retries
		r.clock.Add(2 * time.Second)
		res := r.run(ctx, execInfoV1NonInteract, args)
		if res.code == 0 || !strings.Contains(res.stderr, "the issuer refused the login (access_denied): not in exampleorg") || !strings.Contains(res.stderr, "ago") {
			t.Fatalf("retry %d: exit %d, %q", i, res.code, res.stderr)
		}
	}
	if n := r.br.opened.Load(); n != 1 {
		t.Fatalf("the browser opened %d times within the window, want 1", n)
	}
	// Another cache entry (other scopes) is another login.
	other := r.run(ctx, execInfoV1NonInteract, append(args, "--oidc-extra-scope=email"))
	if other.code == 0 || r.br.opened.Load() != 2 {
		t.Fatalf("another entry: exit %d, browser %d", other.code, r.br.opened.Load())
	}
	// After the window the browser opens again, and a successful login
	// forgets the refusal.
	r.clock.Add(usecase.RefusalWindow)
	r.br.tamperRedirect = nil
	if res := r.run(ctx, execInfoV1NonInteract, args); res.code != 0 {
		t.Fatalf("after the window: exit %d: %s", res.code, res.stderr)
	}
	if n := r.br.opened.Load(); n != 3 {
		t.Fatalf("the browser opened %d times, want 3", n)
	}
	entries, _ := os.ReadDir(r.dir)
	var notes []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".refused") {
			notes = append(notes, e.Name())
		}
	}
	if len(notes) != 1 { // the other entry's
		t.Errorf("refusal notes %v, want the other entry's only (a successful login forgets its own)", notes)
	}
}
