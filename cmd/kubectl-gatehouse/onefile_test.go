package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// The one-file build is built here as make build and tools/release build
// it: the engine first (the plain build, or testdata's fake engine), then
// this package with -tags embedengine, engine.bin given with -overlay (the
// generated file in the source folder is neither needed nor touched).

var buildDir string

func TestMain(m *testing.M) {
	if os.Getenv(browserEnv) != "" {
		os.Exit(helperBrowser(os.Args[len(os.Args)-1])) // run as the --browser-command
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var builds sync.Map // name -> func() (string, error)

// built builds name once per test run with build(dir) and returns its path.
func built(t *testing.T, name string, build func(dir string) (string, error)) string {
	t.Helper()
	f, _ := builds.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp(buildDir, name+"-")
		if err != nil {
			return "", err
		}
		return build(dir)
	}))
	p, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goBuild(out string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// oneFile builds the one-file plugin with the engine built from enginePkg.
func oneFile(t *testing.T, enginePkg string) string {
	t.Helper()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "kubectl-gatehouse-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	return built(t, "onefile-"+strings.NewReplacer("/", "_", ".", "_").Replace(enginePkg), func(dir string) (string, error) {
		engine := filepath.Join(dir, "engine")
		if err := goBuild(engine, enginePkg); err != nil {
			return "", err
		}
		src, err := filepath.Abs("engine.bin")
		if err != nil {
			return "", err
		}
		overlay, err := json.Marshal(map[string]map[string]string{"Replace": {src: engine}})
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o600); err != nil {
			return "", err
		}
		bin := filepath.Join(dir, "kubectl-gatehouse")
		return bin, goBuild(bin, "-tags", "embedengine", "-overlay", filepath.Join(dir, "overlay.json"), ".")
	})
}

// fakeReport is what internal/front/testdata/fakeengine prints.
type fakeReport struct {
	Args  []string
	Pid   int
	Exe   string
	Env   string
	Stdin string
}

type result struct {
	stdout, stderr string
	code, pid      int
}

// runAs runs bin under the name argv0 (a symlink in a new folder).
func runAs(t *testing.T, bin, argv0, stdin string, env []string, args ...string) (string, result) {
	t.Helper()
	link := filepath.Join(t.TempDir(), argv0)
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", argv0, err)
	}
	r := result{stdout: out.String(), stderr: errb.String(), pid: cmd.Process.Pid}
	if ee != nil {
		r.code = ee.ExitCode()
	}
	return link, r
}

func tokenExpiring(exp time.Time) string {
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".c2ln"
}

// cacheToken writes a cache entry for get-token's args.
func cacheToken(t *testing.T, args []string, token string) {
	t.Helper()
	var o options.Flags
	f := pflag.NewFlagSet("get-token", pflag.ContinueOnError)
	o.Add(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := (tokencache.Store{Dir: o.CacheDir}).Save(o.Key(), tokencache.Entry{IDToken: token, RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
}

type execCredential struct {
	APIVersion string `json:"apiVersion"`
	Status     struct {
		Token string `json:"token"`
	} `json:"status"`
}

// TestOneFile checks what the front does with each run, against a fake
// engine that reports how it was started: a cache hit is served without
// the engine; anything else execs the engine with the same argv (the name
// kubectl used included), environment, stdin, stdout, stderr, pid and exit
// code.
func TestOneFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("checks exec(2): same pid")
	}
	bin := oneFile(t, "./internal/front/testdata/fakeengine")
	cache := t.TempDir()
	getToken := []string{"get-token", "--oidc-issuer-url=https://issuer.example", "--oidc-client-id=kubernetes",
		"--oidc-extra-scope=groups,profile", "--token-cache-dir=" + cache}
	token := tokenExpiring(time.Now().Add(time.Hour))
	cacheToken(t, getToken[1:], token)
	with := func(extra ...string) []string { return append(append([]string(nil), getToken...), extra...) }
	v1 := `KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`

	tests := []struct {
		name       string
		argv0      string
		args       []string
		stdin      string
		env        []string
		wantEngine bool
		wantCode   int
		wantAPI    string // warm runs: the ExecCredential's apiVersion
	}{
		{name: "cache hit", argv0: "kubectl-gatehouse", args: getToken, env: []string{v1}, wantAPI: "client.authentication.k8s.io/v1"},
		{name: "cache hit as kubelogin, no exec info", argv0: "kubectl-oidc_login", args: getToken, wantAPI: "client.authentication.k8s.io/v1beta1"},
		{name: "no entry", argv0: "kubectl-gatehouse", args: append(with(), "--oidc-client-id=other"), env: []string{v1, "FAKE_ENGINE_EXIT=3"}, wantEngine: true, wantCode: 3},
		{name: "expires within the margin", argv0: "kubectl-oidc_login", args: with("--token-expiry-margin=2h"), env: []string{v1}, wantEngine: true},
		{name: "force refresh", argv0: "kubectl-gatehouse", args: with("--force-refresh"), env: []string{v1}, wantEngine: true},
		{name: "no cache", argv0: "kubectl-gatehouse", args: with("--token-cache-storage=none"), env: []string{v1}, wantEngine: true},
		{name: "keyring", argv0: "kubectl-oidc_login", args: with("--token-cache-storage=keyring"), env: []string{v1}, wantEngine: true},
		{name: "klog flags at -v 0", argv0: "kubectl-oidc_login", args: with("-v0", "--logtostderr=false", "--log_dir=/nonexistent", "--log_file_max_size=10", "--stderrthreshold=WARNING",
			"--alsologtostderr", "--skip_headers", "--add_dir_header", "--one_output", "--log_backtrace_at=get_token.go:51", "--skip_log_headers", "--vmodule=get_token=0",
			"--alsologtostderrthreshold=ERROR", "--legacy_stderr_threshold_behavior=true"), env: []string{v1}, wantAPI: "client.authentication.k8s.io/v1"},
		{name: "-v1: kubelogin logs the cache hit", argv0: "kubectl-oidc_login", args: with("-v1"), env: []string{v1}, wantEngine: true},
		{name: "--vmodule", argv0: "kubectl-oidc_login", args: with("--vmodule=get_token=1"), env: []string{v1}, wantEngine: true},
		{name: "bad klog value", argv0: "kubectl-oidc_login", args: with("--stderrthreshold=LOUD"), env: []string{v1, "FAKE_ENGINE_EXIT=1"}, wantEngine: true, wantCode: 1},
		{name: "bad flag", argv0: "kubectl-oidc_login", args: with("--no-such-flag"), env: []string{v1, "FAKE_ENGINE_EXIT=1"}, wantEngine: true, wantCode: 1},
		{name: "bad exec info", argv0: "kubectl-gatehouse", args: getToken, env: []string{`KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v2"}`}, wantEngine: true},
		{name: "version", argv0: "kubectl-gatehouse", args: []string{"version"}, wantEngine: true},
		{name: "setup as kubelogin", argv0: "kubectl-oidc_login", args: []string{"setup", "--oidc-issuer-url=https://issuer.example"}, env: []string{"FAKE_ENGINE_EXIT=2"}, wantEngine: true, wantCode: 2},
		{name: "no arguments", argv0: "kubectl-gatehouse", wantEngine: true},
		{name: "stdin", argv0: "kubectl-gatehouse", args: []string{"read-stdin"}, stdin: "typed by the user\n", wantEngine: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link, r := runAs(t, bin, tt.argv0, tt.stdin, append([]string{"FAKE_ENGINE_ENV=passed"}, tt.env...), tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
			}
			if !tt.wantEngine {
				var ec execCredential
				if err := json.Unmarshal([]byte(r.stdout), &ec); err != nil || ec.Status.Token != token || ec.APIVersion != tt.wantAPI {
					t.Errorf("not the cached token's ExecCredential (%s): %q %v", tt.wantAPI, r.stdout, err)
				}
				if r.stderr != "" {
					t.Errorf("stderr %q", r.stderr)
				}
				return
			}
			var rep fakeReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("the engine did not run: stdout %q, stderr %q", r.stdout, r.stderr)
			}
			if want := append([]string{link}, tt.args...); strings.Join(rep.Args, "\x00") != strings.Join(want, "\x00") {
				t.Errorf("engine argv %q, want %q", rep.Args, want)
			}
			if rep.Pid != r.pid || rep.Env != "passed" || rep.Stdin != tt.stdin {
				t.Errorf("engine pid %d (front %d), FAKE_ENGINE_ENV %q, stdin %q", rep.Pid, r.pid, rep.Env, rep.Stdin)
			}
			if runtime.GOOS == "linux" && !strings.HasPrefix(rep.Exe, "/memfd:kubectl-gatehouse-engine") {
				t.Errorf("engine runs from %q, want a memfd", rep.Exe)
			}
			if r.stderr != "fake engine: a line on stderr\n" {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

// TestOneFileSignal: the engine replaces the front, so a signal sent to
// the process kubectl started reaches it.
func TestOneFileSignal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix signals")
	}
	bin := oneFile(t, "./internal/front/testdata/fakeengine")
	cmd := exec.Command(bin, "wait-signal")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		t.Fatalf("read %q: %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Fatalf("wait: %v, want the engine's exit code 42 for SIGTERM", err)
	}
}

// TestOneFileEngine runs the real engine through the one-file build
// against an in-process issuer.
func TestOneFileEngine(t *testing.T) {
	bin := oneFile(t, ".")
	srv := issuertest.Start(t, issuertest.Options{})
	cache := t.TempDir()
	base := []string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID,
		"--oidc-client-secret=" + srv.ClientSecret, "--oidc-extra-scope=groups,profile", "--token-cache-dir=" + cache,
		"--certificate-authority=" + srv.CAFile}
	password := append(append([]string(nil), base...), "--username="+srv.Username, "--password="+srv.Password)
	nonInteractive := []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`}
	token := func(r result) string {
		t.Helper()
		var ec execCredential
		if err := json.Unmarshal([]byte(r.stdout), &ec); err != nil || ec.Status.Token == "" || ec.APIVersion != "client.authentication.k8s.io/v1" {
			t.Fatalf("not an ExecCredential: %q (%v); exit %d, stderr %q", r.stdout, err, r.code, r.stderr)
		}
		return ec.Status.Token
	}

	_, r := runAs(t, bin, "kubectl-gatehouse", "", nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kubectl-gatehouse version ") {
		t.Errorf("version: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// No cached token, kubectl says not interactive, and a login that
	// reads standard input: one line, exit 1.
	_, r = runAs(t, bin, "kubectl-gatehouse", "", nonInteractive, append(base, "--grant-type=authcode-keyboard")...)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "login required") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("non-interactive miss: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Log in (engine), then the cached token (front), then a refresh
	// (engine) when the margin asks for one.
	_, r = runAs(t, bin, "kubectl-oidc_login", "", nonInteractive, password...)
	first := token(r)
	_, r = runAs(t, bin, "kubectl-oidc_login", "", nonInteractive, password...)
	if got := token(r); got != first {
		t.Error("the second run did not print the cached token")
	}
	_, r = runAs(t, bin, "kubectl-gatehouse", "", nonInteractive, append(password, "--token-expiry-margin=100h")...)
	if got := token(r); got == first {
		t.Error("no refresh within the margin")
	}

	// The engine answers under the name kubectl used.
	_, r = runAs(t, bin, "kubectl-oidc_login", "", nil, "logout")
	if r.code != 1 || !strings.Contains(r.stderr, `unknown command "logout"`) {
		t.Errorf("kubectl-oidc_login logout: exit %d, %q", r.code, r.stderr)
	}
	_, r = runAs(t, bin, "kubectl-gatehouse", "", nil, "logout", "--no-such-flag")
	if r.code == 0 || strings.Contains(r.stderr, "unknown command") {
		t.Errorf("kubectl-gatehouse logout: exit %d, %q", r.code, r.stderr)
	}
}

// TestOneFileProcessName: on Linux the engine, exec'd through
// /proc/self/fd/N, names itself after argv[0] for ps, top and pgrep.
func TestOneFileProcessName(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	bin := oneFile(t, ".")
	// An issuer that accepts connections and never answers keeps the
	// engine waiting in its discovery request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	// Interactive (no KUBERNETES_EXEC_INFO): a non-interactive run with
	// no cached token stops before the network.
	cmd := exec.Command(bin, "get-token", "--oidc-issuer-url=https://"+ln.Addr().String(), "--oidc-client-id=c",
		"--token-cache-dir="+t.TempDir(), "--skip-open-browser")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { cmd.Process.Kill(); <-exited }()
	var c net.Conn
	select {
	case c = <-accepted:
		defer c.Close()
	case err := <-exited:
		exited <- err
		t.Fatalf("the engine exited before reaching the issuer: %v, %s", err, stderr.String())
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
	if got := strings.TrimSpace(string(comm)); got != "kubectl-gatehou" || !strings.HasPrefix(exe, "/memfd:") {
		t.Errorf("engine (%s) is named %q, want kubectl-gatehou(se)", exe, got)
	}
}

// TestOneFileMemfdNoexec runs the real one-file build where the kernel
// refuses executable memfds (vm.memfd_noexec=2, set in a new PID
// namespace, whose value only its processes see): it falls back to the
// user cache folder.
func TestOneFileMemfdNoexec(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs Linux and root for a PID namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	if _, err := os.Stat("/proc/sys/vm/memfd_noexec"); err != nil {
		t.Skip("kernel without vm.memfd_noexec (before 6.3)")
	}
	bin := oneFile(t, ".")
	cacheHome := t.TempDir()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", `echo 2 > /proc/sys/vm/memfd_noexec && exec "$0" version`, bin)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheHome)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "unshare") {
		t.Skipf("no PID namespace here: %s", ee.Stderr)
	}
	if err != nil || !strings.HasPrefix(string(out), "kubectl-gatehouse version ") {
		t.Fatalf("version with memfd_noexec=2: %v, %q", err, out)
	}
	engines, _ := filepath.Glob(filepath.Join(cacheHome, "gatehouse", "engine-*"))
	if len(engines) != 1 {
		t.Fatalf("extracted engines: %v", engines)
	}
	for p, want := range map[string]os.FileMode{filepath.Dir(engines[0]): 0o700, engines[0]: 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
}
