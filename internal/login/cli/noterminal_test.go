//go:build linux

package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
)

// fakeAPIServer stands for kube-apiserver: it answers /api when the
// bearer token is an ID token for the client from one of the issuers.
type fakeAPIServer struct {
	*httptest.Server
	issuers sync.Map // issuer URL -> client ID
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	t.Helper()
	a := &fakeAPIServer{}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var claims struct{ Iss, Aud string }
		b, err := jwtpayload.Payload(tok)
		if ok && err == nil && json.Unmarshal(b, &claims) == nil {
			if aud, known := a.issuers.Load(claims.Iss); known && aud == claims.Aud {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}`)
				return
			}
		}
		http.Error(w, `{"kind":"Status","status":"Failure","code":401,"reason":"Unauthorized"}`, http.StatusUnauthorized)
	}))
	t.Cleanup(a.Close)
	return a
}

// stdinFor returns what the process's standard input is: the slave side
// of a new pseudo-terminal (a person at a terminal) or the read end of a
// pipe closed at the other end (Lens, an IDE, a script with stdin closed).
// With a terminal, typed is written to it as the person would type.
func stdinFor(t *testing.T, tty bool) (stdin *os.File, typed io.Writer) {
	t.Helper()
	if !tty {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		t.Cleanup(func() { r.Close() })
		return r, nil
	}
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, master) }() // the echo
	t.Cleanup(func() { slave.Close(); master.Close() })
	return slave, master
}

// person answers what the plugin asks on stderr as a user would: the
// authcode-keyboard URL is logged in to and the redirect URL pasted; the
// password prompt gets the password. It keeps all of stderr.
type person struct {
	t     *testing.T
	srv   *issuertest.Server
	typed io.Writer
	mu    sync.Mutex
	all   strings.Builder
	done  chan struct{}
}

var keyboardURL = regexp.MustCompile(`in your browser: (\S+)`)

func (p *person) read(r io.Reader) {
	defer close(p.done)
	var pending string // the unfinished line: the password prompt has no newline
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		p.mu.Lock()
		p.all.Write(buf[:n])
		p.mu.Unlock()
		pending += string(buf[:n])
		for {
			line, rest, ok := strings.Cut(pending, "\n")
			if !ok {
				break
			}
			pending = rest
			if m := keyboardURL.FindStringSubmatch(line); m != nil && p.typed != nil {
				resp, _, err := p.srv.LoginPage(p.srv.Browser(), m[1])
				if err != nil {
					p.t.Errorf("keyboard login: %v", err)
					continue
				}
				loc, _ := resp.Location()
				fmt.Fprintf(p.typed, "%s\n", loc)
			}
		}
		if strings.HasSuffix(pending, "Password: ") && p.typed != nil {
			pending = ""
			fmt.Fprintf(p.typed, "%s\n", p.srv.Password)
		}
		if err != nil {
			return
		}
	}
}

func (p *person) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

type grantCase struct {
	name  string
	args  []string
	stdin string // what reads standard input, "" for nothing
}

func grantCases(srv *issuertest.Server) []grantCase {
	return []grantCase{
		{"authcode", nil, ""},
		{"device-code", []string{"--grant-type=device-code"}, ""},
		{"authcode-keyboard", []string{"--grant-type=authcode-keyboard", "--oidc-redirect-url=http://localhost:8000"}, "--grant-type=authcode-keyboard"},
		{"password prompt", []string{"--username=" + srv.Username}, "--username without --password"},
	}
}

// kubectl (client-go's exec credential provider, the code kubectl, k9s,
// Headlamp and client-go based IDE plugins run) starts the plugin in
// every combination of exec API version, interactiveMode and standard
// input. client-go decides spec.interactive and whether the plugin gets
// standard input; the plugin must log in through the browser whatever it
// says, and refuse, naming the flag and the kubeconfig field, only the
// flows that read standard input when it has none.
func TestKubectlRunsThePlugin(t *testing.T) {
	bin := pluginBinary(t)
	api := newFakeAPIServer(t)
	dir := t.TempDir()
	script := browserScript(t, dir, "browser.sh")
	// One issuer for each row: its login limits count successful logins
	// too (issue 11), and one row logs in four times.
	issuerFor := func(t *testing.T) (*issuertest.Server, map[string]string) {
		srv := issuertest.Start(t, issuertest.Options{})
		api.issuers.Store(srv.URL, srv.ClientID)
		return srv, map[string]string{
			"GATEHOUSE_TEST_BROWSER": "http", "GATEHOUSE_TEST_BROWSER_LOG": filepath.Join(dir, "browser.log"),
			"GATEHOUSE_TEST_ISSUER": srv.URL, "GATEHOUSE_TEST_CA": srv.CAFile,
			"GATEHOUSE_TEST_USER": srv.Username, "GATEHOUSE_TEST_PASS": srv.Password,
		}
	}
	caData := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))

	type row struct {
		apiVersion, mode string
		tty              bool
	}
	var rows []row
	for _, v := range []string{"v1", "v1beta1"} {
		for _, m := range []string{"", "Never", "IfAvailable", "Always"} {
			for _, tty := range []bool{true, false} {
				rows = append(rows, row{v, m, tty})
			}
		}
	}
	n := 0
	for _, rw := range rows {
		srv, browserEnv := issuerFor(t)
		for _, g := range grantCases(srv) {
			n++
			mode := rw.mode
			if mode == "" {
				mode = "unset"
			}
			name := fmt.Sprintf("%s/%s/tty=%v/%s", rw.apiVersion, mode, rw.tty, g.name)
			t.Run(name, func(t *testing.T) {
				// What client-go does, from its exec package and clientcmd.
				v1MissingMode := rw.apiVersion == "v1" && rw.mode == ""
				alwaysNoTTY := rw.mode == "Always" && !rw.tty
				interactive := rw.tty && rw.mode != "Never"

				args := append([]string{"get-token",
					"--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID, "--oidc-client-secret=" + srv.ClientSecret,
					"--certificate-authority=" + srv.CAFile, "--token-cache-dir=" + filepath.Join(dir, fmt.Sprintf("cache-%d", n)),
					"--browser-command=" + script, "--listen-address=127.0.0.1:0", "--authentication-timeout-sec=60"}, g.args...)
				execCfg := map[string]any{
					"apiVersion": "client.authentication.k8s.io/" + rw.apiVersion,
					"command":    bin, "args": args,
					"env": func() (out []map[string]string) {
						for k, v := range browserEnv {
							out = append(out, map[string]string{"name": k, "value": v})
						}
						return out
					}(),
				}
				if rw.mode != "" {
					execCfg["interactiveMode"] = rw.mode
				}
				kc, _ := json.Marshal(map[string]any{
					"apiVersion": "v1", "kind": "Config", "current-context": "c",
					"clusters": []any{map[string]any{"name": "c", "cluster": map[string]any{"server": api.URL, "certificate-authority-data": caData}}},
					"users":    []any{map[string]any{"name": "u", "user": map[string]any{"exec": execCfg}}},
					"contexts": []any{map[string]any{"name": "c", "context": map[string]any{"cluster": "c", "user": "u"}}},
				})

				// The process's stdin and stderr are what client-go hands
				// the plugin (it reads os.Stdin and os.Stderr).
				stdin, typed := stdinFor(t, rw.tty)
				er, ew, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				p := &person{t: t, srv: srv, typed: typed, done: make(chan struct{})}
				go p.read(er)
				oldIn, oldErr := os.Stdin, os.Stderr
				os.Stdin, os.Stderr = stdin, ew
				status, getErr := func() (int, error) {
					defer func() { os.Stdin, os.Stderr = oldIn, oldErr }()
					cfg, err := clientcmd.Load(kc)
					if err != nil {
						return 0, err
					}
					rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
					if err != nil {
						return 0, err
					}
					hc, err := rest.HTTPClientFor(rc)
					if err != nil {
						return 0, err
					}
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					defer cancel()
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.URL+"/api", nil)
					resp, err := hc.Do(req)
					if err != nil {
						return 0, err
					}
					resp.Body.Close()
					return resp.StatusCode, nil
				}()
				ew.Close()
				<-p.done
				er.Close()
				stderr := p.stderr()

				switch {
				case v1MissingMode:
					if getErr == nil || !strings.Contains(getErr.Error(), "interactiveMode must be specified") {
						t.Fatalf("client-go should refuse a v1 exec config without interactiveMode, got %v", getErr)
					}
				case alwaysNoTTY:
					if getErr == nil || !strings.Contains(getErr.Error(), "standard input is not a terminal") {
						t.Fatalf("client-go should refuse interactiveMode Always without a terminal, got %v", getErr)
					}
					if stderr != "" {
						t.Fatalf("the plugin ran: %q", stderr)
					}
				case g.stdin != "" && !interactive:
					if getErr == nil {
						t.Fatalf("a flow that reads standard input got a token without it (status %d)", status)
					}
					for _, want := range []string{"login required", g.stdin, "interactiveMode", "--grant-type=authcode"} {
						if !strings.Contains(stderr, want) {
							t.Errorf("the refusal does not mention %q:\n%s", want, stderr)
						}
					}
				default:
					if getErr != nil || status != http.StatusOK {
						t.Fatalf("kubectl's request: status %d, %v\nplugin stderr:\n%s", status, getErr, stderr)
					}
				}
			})
		}
	}

	// KUBERNETES_EXEC_INFO absent: a person (or a script) runs the plugin
	// by hand. It answers v1beta1 and treats standard input as given.
	for _, tty := range []bool{true, false} {
		srv, browserEnv := issuerFor(t)
		for _, g := range grantCases(srv) {
			n++
			t.Run(fmt.Sprintf("no KUBERNETES_EXEC_INFO/tty=%v/%s", tty, g.name), func(t *testing.T) {
				stdin, typed := stdinFor(t, tty)
				cmd := exec.Command(bin, append([]string{"get-token",
					"--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID, "--oidc-client-secret=" + srv.ClientSecret,
					"--certificate-authority=" + srv.CAFile, "--token-cache-dir=" + filepath.Join(dir, fmt.Sprintf("cache-%d", n)),
					"--browser-command=" + script, "--listen-address=127.0.0.1:0", "--authentication-timeout-sec=60"}, g.args...)...)
				cmd.Env = os.Environ()
				for k, v := range browserEnv {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				cmd.Stdin = stdin
				var out strings.Builder
				cmd.Stdout = &out
				er, err := cmd.StderrPipe()
				if err != nil {
					t.Fatal(err)
				}
				p := &person{t: t, srv: srv, typed: typed, done: make(chan struct{})}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				p.read(er)
				runErr := cmd.Wait()
				stderr := p.stderr()
				switch {
				case g.stdin != "" && !tty:
					want := "standard input ended"
					if strings.HasPrefix(g.name, "password") {
						want = "stdin is not a terminal"
					}
					if runErr == nil || !strings.Contains(stderr, want) {
						t.Fatalf("exit %v, stderr %q; want an error saying %q", runErr, stderr, want)
					}
				default:
					if runErr != nil {
						t.Fatalf("get-token: %v\n%s", runErr, stderr)
					}
					var ec struct{ APIVersion string }
					if err := json.Unmarshal([]byte(out.String()), &ec); err != nil || ec.APIVersion != "client.authentication.k8s.io/v1beta1" {
						t.Fatalf("ExecCredential %q: %v", out.String(), err)
					}
				}
			})
		}
	}
}
