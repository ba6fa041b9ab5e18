package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// Compatibility with kubelogin v1.36.3, flag by flag, as kubectl runs the
// plugin: the released one-file build, installed as kubectl-oidc_login.
//
// Every test here runs against gatehouse alone, with expected values
// computed from kubelogin's algorithm (cache names: the SHA-256 of the gob
// encoding of kubelogin's tokencache.Key, see internal/login/tokencache).
// With KUBELOGIN_BIN set to a kubelogin v1.36.3 built from its public
// source outside this repository, the same tests also run kubelogin and
// require the same results from it: exit status, cache names, cache
// contents. To build it:
//
//	git clone --branch v1.36.3 https://github.com/int128/kubelogin /tmp/ref/kubelogin-src
//	(cd /tmp/ref/kubelogin-src && CGO_ENABLED=0 go build -o /tmp/ref/kubelogin .)
//	KUBELOGIN_BIN=/tmp/ref/kubelogin go test -run Kubelogin ./cmd/kubectl-gatehouse

// kubeloginBin is the reference kubelogin, or "" (the comparisons skip).
func kubeloginBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("KUBELOGIN_BIN")
	if p == "" {
		return ""
	}
	out, err := exec.Command(p, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v1.36.3") {
		t.Fatalf("KUBELOGIN_BIN=%s is not kubelogin v1.36.3: %v %s", p, err, out)
	}
	return p
}

// unreachableIssuer refuses connections: a run that needs the issuer
// fails (exit 1) after taking its cache lock, whose name is the entry's.
const unreachableIssuer = "https://127.0.0.1:1/dex"

// execInfo is what kubectl sends (interactive, as from a terminal: the
// plugin may log in).
const execInfo = `KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`

// isolated keeps the runs away from the user's files and keyring.
func isolated(t *testing.T) []string {
	home := t.TempDir()
	return []string{execInfo, "HOME=" + home, "KUBECACHEDIR=" + filepath.Join(home, "kubecache"), "KUBECONFIG=" + filepath.Join(home, "kubeconfig"),
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(home, "no-bus"), "XDG_RUNTIME_DIR=" + home, "BROWSER=false", "PATH=/nonexistent"}
}

// runKubelogin runs the reference kubelogin like runAs runs the plugin.
func runKubelogin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	_, r := runAs(t, bin, "kubectl-oidc_login", "", env, args...)
	return r
}

// cacheNames lists a cache folder: entries and locks.
func cacheNames(t *testing.T, dir string) (entries, locks []string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, de := range des {
		if n, ok := strings.CutSuffix(de.Name(), ".lock"); ok {
			locks = append(locks, n)
		} else {
			entries = append(entries, de.Name())
		}
	}
	return entries, locks
}

// seed writes an entry holding token under name.
func seed(t *testing.T, dir, name, token string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"id_token": token, "refresh_token": "refresh-" + name[:8]})
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readDir returns the cache folder's entries (not the locks) and their
// contents.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".lock") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = string(b)
	}
	return out
}

// getTokenBase is every name case's start: an issuer that refuses
// connections, and a client.
var getTokenBase = []string{"get-token", "--oidc-issuer-url=" + unreachableIssuer, "--oidc-client-id=kubernetes"}

// nameCases are the flags that make kubelogin's cache key, one case each,
// with the file name kubelogin v1.36.3 gives the key (found by running it:
// the lock file it creates before reaching the issuer).
var nameCases = []struct {
	name string
	args []string
	want string
	// random: kubelogin's own name varies from run to run (a map flag with
	// two or more entries, see tokencache.Key.Checksum); want is the name
	// it uses most, gatehouse's.
	random bool
}{
	{"issuer and client", nil, "e6d6de21fcbbb6d3a1b000edf8a52db60c0b854c71e62ee01156546b40e47695", false},
	{"client secret", []string{"--oidc-client-secret=s3cret"}, "43c6ba660982af421eb10ef3413a847ead2b78dd07175b323fcb9b229a0b7115", false},
	{"extra scopes", []string{"--oidc-extra-scope=groups,profile"}, "7af9e420cfbe199de47ce338529b6cc44c31131e74348fbb4ccdda10e4f155a2", false},
	{"extra scopes repeated", []string{"--oidc-extra-scope=groups", "--oidc-extra-scope=profile"}, "7af9e420cfbe199de47ce338529b6cc44c31131e74348fbb4ccdda10e4f155a2", false},
	{"redirect URL", []string{"--oidc-redirect-url=http://localhost:8000/callback"}, "c962e7476ca767330d1fe0bb99889c5f085e425ccc16177d8f5f0a0da308d2f5", false},
	{"pkce no", []string{"--oidc-pkce-method=no"}, "fa63348f9b2eb494886520395aa97bc04946af7190cf90a415a245f2712622e2", false},
	{"pkce S256", []string{"--oidc-pkce-method=S256"}, "c880b829e91e33745a3f7034485d7c7b7869923ad205ba8c0559e8109262118d", false},
	{"use pkce (deprecated)", []string{"--oidc-use-pkce"}, "c880b829e91e33745a3f7034485d7c7b7869923ad205ba8c0559e8109262118d", false},
	{"access token", []string{"--oidc-use-access-token"}, "18c53ad41a6c261a1554f9410596429ca0022213ba24125eaf508ab7fbee3472", false},
	{"one request header", []string{"--oidc-request-header=X-Tenant=a"}, "5353d40cb74b221c16ff3ae2fdec3e3262fb726d47225d4f734f30053ba10c51", false},
	{"two request headers in one flag", []string{"--oidc-request-header=X-Tenant=a,X-Team=b"}, "a3d9fea8cd53450f39601874a9b3e94499f1f97bc0930d49229df7b0e8aed107", true},
	{"two request headers, repeated flag", []string{"--oidc-request-header=X-Team=b", "--oidc-request-header=X-Tenant=a"}, "c2950876b38835aaac5967ce0bf2b3e7654bf5eb2b0b910fc76fbefed0613deb", true},
	{"three request headers", []string{"--oidc-request-header=C=3", "--oidc-request-header=A=1,B=2"}, "15603c332a02100ba9f4d1b684e40fd47f3d9fd9f6a1fc618b344e4072dc104f", true},
	{"CA files", []string{"--certificate-authority=/etc/gatehouse/ca1.crt", "--certificate-authority=/etc/gatehouse/ca2.crt"}, "107f82e411c9341b84d110f0babb5ef14d5f10346e8308ce245a70171f61e120", false},
	{"CA data", []string{"--certificate-authority-data=Zm9v"}, "d04f6a3f798c79a0ad407f2aae56a33906c4e933a1d85f2813351115a7ea4356", false},
	{"insecure", []string{"--insecure-skip-tls-verify"}, "981e0f5bb085a11e4ef9aaba5090d91e66dd044c34e8fb43ddd5905ad9f20d0c", false},
	{"renegotiation once", []string{"--tls-renegotiation-once"}, "eb3380f90ad946638dfa3ead9f415013ad471537eb8b650cbdfa9330c8f7a64d", false},
	{"renegotiation freely", []string{"--tls-renegotiation-freely"}, "af41376042d93e5cba4c41721ecf308c8538b9108492f2ef6c50d720ea283cc7", false},
	{"password grant", []string{"--grant-type=password", "--username=alice"}, "172622bb010b06bcfca5bd76295faddaa3766a2e908ab26e04c69a076e366753", false},
	{"username: auto is password", []string{"--username=alice"}, "172622bb010b06bcfca5bd76295faddaa3766a2e908ab26e04c69a076e366753", false},
	{"username and extra params: not in the key", []string{"--username=alice", "--oidc-auth-request-extra-params=prompt=login"}, "172622bb010b06bcfca5bd76295faddaa3766a2e908ab26e04c69a076e366753", false},
	{"one extra param", []string{"--oidc-auth-request-extra-params=prompt=login"}, "d8e0bea530149efed71a8576de4c9f7979a07b8f90414b8c16c0c36f7e10910c", false},
	{"two extra params", []string{"--oidc-auth-request-extra-params=prompt=login,audience=x"}, "ecdbf9273b2ede84124fab27c189309468c5a652acb025fe3d3d06fc2c3de48f", true},
	{"keyboard and extra param", []string{"--grant-type=authcode-keyboard", "--oidc-auth-request-extra-params=prompt=login"}, "d8e0bea530149efed71a8576de4c9f7979a07b8f90414b8c16c0c36f7e10910c", false},
	{"device code: extra params not in the key", []string{"--grant-type=device-code", "--oidc-auth-request-extra-params=prompt=login"}, "e6d6de21fcbbb6d3a1b000edf8a52db60c0b854c71e62ee01156546b40e47695", false},
	{"client credentials", []string{"--grant-type=client-credentials"}, "8cb8f41e7b11c209fbc17ba06a0257af4531847d92e475e4e9dd89f4ad491b7a", false},
	{"client credentials and a param", []string{"--grant-type=client-credentials", "--oidc-auth-request-extra-params=audience=x"}, "1aa203f0b96b830dafb788ce756cbcf4d082ca72b149a3029d0938c0167dba82", false},
	{"headers and params", []string{"--oidc-request-header=X-B=2,X-A=1", "--oidc-auth-request-extra-params=b=2,a=1"}, "15044fc59e7e52a205fa1cbaf89be303b707150ea863cb42854ebbc998a87e6b", true},
	{"all at once", []string{"--oidc-client-secret=s", "--oidc-extra-scope=email", "--oidc-redirect-url=http://127.0.0.1:18000",
		"--oidc-pkce-method=S256", "--oidc-use-access-token", "--oidc-request-header=X-A=1", "--certificate-authority=/ca.crt",
		"--certificate-authority-data=YmFy", "--insecure-skip-tls-verify", "--tls-renegotiation-once", "--grant-type=authcode",
		"--oidc-auth-request-extra-params=prompt=consent"}, "1d7a52b9f895ce992250a4635bb39998f338de8055e1898c35c4c196f9f85cc2", false},
}

// TestKubeloginCacheNames: for every flag of kubelogin's cache key, the
// plugin names the entry as kubelogin does (its lock when it must log in,
// its entry when it reads one), so that a user who switches keeps the
// tokens kubelogin cached, and the two tools share one lock per entry.
func TestKubeloginCacheNames(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	token := tokenExpiring(time.Now().Add(time.Hour))
	for _, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), getTokenBase...), tc.args...)
			env := isolated(t)

			// gatehouse: the lock it takes when it has to log in.
			dir := t.TempDir()
			_, r := runAs(t, bin, "kubectl-oidc_login", "", env, append(args, "--token-cache-dir="+dir)...)
			entries, locks := cacheNames(t, dir)
			if r.code != 1 || len(entries) != 0 || len(locks) != 1 {
				t.Fatalf("gatehouse: exit %d, entries %v, locks %v; stderr %q", r.code, entries, locks, r.stderr)
			}
			got := locks[0]
			if got != tc.want {
				t.Errorf("gatehouse names the entry %s, want %s", got, tc.want)
			}

			// gatehouse reads an entry under that name, from the front.
			dir = t.TempDir()
			seed(t, dir, got, token)
			_, r = runAs(t, bin, "kubectl-oidc_login", "", env, append(args, "--token-cache-dir="+dir)...)
			if r.code != 0 || !strings.Contains(r.stdout, token) {
				t.Errorf("gatehouse did not use the entry %s: exit %d, %q", got, r.code, r.stderr)
			}

			if kubelogin == "" {
				return
			}
			// kubelogin: the same lock name (the most frequent one when
			// kubelogin's own is random).
			counts := map[string]int{}
			runs := 1
			if tc.random {
				runs = 24
			}
			for range runs {
				dir := t.TempDir()
				r := runKubelogin(t, kubelogin, env, append(args, "--token-cache-dir="+dir)...)
				_, locks := cacheNames(t, dir)
				if r.code != 1 || len(locks) != 1 {
					t.Fatalf("kubelogin: exit %d, locks %v, stderr %q", r.code, locks, r.stderr)
				}
				counts[locks[0]]++
			}
			for name, n := range counts {
				if n > counts[got] || (!tc.random && name != got) {
					t.Errorf("kubelogin names the entry %s (%d of %d runs), gatehouse %s (%d)", name, n, runs, got, counts[got])
				}
			}
			if tc.random {
				t.Logf("kubelogin's names in %d runs: %v", runs, counts)
			}
			// kubelogin reads gatehouse's entry.
			dir = t.TempDir()
			seed(t, dir, got, token)
			if r := runKubelogin(t, kubelogin, env, append(args, "--token-cache-dir="+dir)...); r.code != 0 || !strings.Contains(r.stdout, token) {
				if !tc.random {
					t.Errorf("kubelogin did not use gatehouse's entry: exit %d, %q", r.code, r.stderr)
				}
			}
		})
	}
}

// flagCases are kubelogin's get-token flags (and klog's) that do not
// change the cache key, each run on a cache hit (an entry under the name
// of getTokenBase's key) and on a miss: the exit status, and the cache
// afterwards, are kubelogin's.
var flagCases = []struct {
	name string
	args []string
	// hit and miss are the exit statuses with a valid entry and with none.
	hit, miss int
}{
	{"nothing", nil, 0, 1},
	{"token cache dir (the tests' own)", nil, 0, 1},
	{"disk storage", []string{"--token-cache-storage=disk"}, 0, 1},
	{"no storage", []string{"--token-cache-storage=none"}, 1, 1},
	{"keyring storage, no keyring", []string{"--token-cache-storage=keyring"}, 1, 1},
	{"unknown storage", []string{"--token-cache-storage=cloud"}, 1, 1},
	{"force refresh", []string{"--force-refresh"}, 1, 1},
	{"listen address", []string{"--listen-address=127.0.0.1:0,127.0.0.1:18000"}, 0, 1},
	{"skip open browser", []string{"--skip-open-browser"}, 0, 1},
	{"browser command", []string{"--browser-command=/bin/false"}, 0, 1},
	{"authentication timeout", []string{"--authentication-timeout-sec=5"}, 0, 1},
	{"local server cert and key", []string{"--local-server-cert=/nonexistent/cert.pem", "--local-server-key=/nonexistent/key.pem"}, 0, 1},
	{"local server cert alone", []string{"--local-server-cert=/nonexistent/cert.pem"}, 0, 1},
	{"open URL after authentication", []string{"--open-url-after-authentication=https://example.com/done"}, 0, 1},
	{"password without username", []string{"--password=p"}, 0, 1},
	{"grant type authcode", []string{"--grant-type=authcode"}, 0, 1},
	{"unknown grant type", []string{"--grant-type=magic"}, 1, 1},
	{"unknown PKCE method", []string{"--oidc-pkce-method=plain"}, 1, 1},
	{"unknown flag", []string{"--no-such-flag"}, 1, 1},
	{"an argument", []string{"extra"}, 1, 1},
	{"help", []string{"--help"}, 0, 0},
	{"-v0", []string{"-v0"}, 0, 1},
	{"-v 1", []string{"-v", "1"}, 0, 1},
	{"--v=2", []string{"--v=2"}, 0, 1},
	{"bad -v", []string{"--v=high"}, 1, 1},
	{"logtostderr", []string{"--logtostderr=true"}, 0, 1},
	{"log files", []string{"--logtostderr=false", "--log_dir=LOGDIR", "--log_file_max_size=1"}, 0, 1},
	{"log file", []string{"--logtostderr=false", "--log_file=LOGDIR/plugin.log"}, 0, 1},
	{"alsologtostderr", []string{"--alsologtostderr", "--alsologtostderrthreshold=WARNING"}, 0, 1},
	{"vmodule", []string{"--vmodule=get_token=2,gettoken=2"}, 0, 1},
	{"bad vmodule", []string{"--vmodule=get_token"}, 1, 1},
	{"skip headers", []string{"--skip_headers", "--add_dir_header", "--one_output", "--skip_log_headers"}, 0, 1},
	{"stderrthreshold", []string{"--stderrthreshold=ERROR", "--legacy_stderr_threshold_behavior=true"}, 0, 1},
	{"bad stderrthreshold", []string{"--stderrthreshold=LOUD"}, 1, 1},
	{"log backtrace", []string{"--log_backtrace_at=get_token.go:51"}, 0, 1},
	{"bad log backtrace", []string{"--log_backtrace_at=get_token"}, 1, 1},
}

// TestKubeloginFlags runs every flag that does not change the cache key,
// on a hit and on a miss, and compares the exit status and the cache
// folder with kubelogin's.
func TestKubeloginFlags(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	token := tokenExpiring(time.Now().Add(time.Hour))
	const name = "e6d6de21fcbbb6d3a1b000edf8a52db60c0b854c71e62ee01156546b40e47695" // getTokenBase's key
	for _, tc := range flagCases {
		for _, hit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/hit=%v", tc.name, hit), func(t *testing.T) {
				env := isolated(t)
				want := tc.miss
				if hit {
					want = tc.hit
				}
				type outcome struct {
					code  int
					cache map[string]string // entries
					locks []string
					out   string
				}
				runOne := func(run func(args ...string) result) outcome {
					dir, logDir := t.TempDir(), t.TempDir()
					if hit {
						seed(t, dir, name, token)
					}
					args := append(append([]string(nil), getTokenBase...), "--token-cache-dir="+dir)
					for _, a := range tc.args {
						args = append(args, strings.ReplaceAll(a, "LOGDIR", logDir))
					}
					r := run(args...)
					_, locks := cacheNames(t, dir)
					return outcome{r.code, readDir(t, dir), locks, r.stdout + r.stderr}
				}
				g := runOne(func(args ...string) result {
					_, r := runAs(t, bin, "kubectl-oidc_login", "", env, args...)
					return r
				})
				if g.code != want {
					t.Errorf("gatehouse: exit %d, want %d\n%s", g.code, want, g.out)
				}
				if hit && want == 0 && !strings.Contains(g.out, token) && !slices.Contains(tc.args, "--help") {
					t.Errorf("gatehouse did not print the cached token:\n%s", g.out)
				}
				if kubelogin == "" {
					return
				}
				k := runOne(func(args ...string) result { return runKubelogin(t, kubelogin, env, args...) })
				if k.code != g.code {
					t.Errorf("exit %d, kubelogin's %d\ngatehouse: %s\nkubelogin: %s", g.code, k.code, g.out, k.out)
				}
				if !sameKeys(g.cache, k.cache) || g.cache[name] != k.cache[name] {
					t.Errorf("cache entries afterwards %v, kubelogin's %v", keys(g.cache), keys(k.cache))
				}
				// kubelogin takes the lock even to read a valid entry;
				// gatehouse reads without it (entries are replaced by
				// rename), so the locks are compared when a login was due.
				if !hit && !slices.Equal(g.locks, k.locks) {
					t.Errorf("locks afterwards %v, kubelogin's %v", g.locks, k.locks)
				}
			})
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameKeys(a, b map[string]string) bool { return slices.Equal(keys(a), keys(b)) }

// TestKubeloginCommands: kubelogin's commands, and its flags before the
// command (klog's are on every command), exit as kubelogin exits.
func TestKubeloginCommands(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	token := tokenExpiring(time.Now().Add(time.Hour))
	const name = "e6d6de21fcbbb6d3a1b000edf8a52db60c0b854c71e62ee01156546b40e47695" // getTokenBase's key
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"-v1 before get-token", append([]string{"-v1"}, getTokenBase...), 0},
		{"-v 0 before get-token", append([]string{"-v", "0"}, getTokenBase...), 0},
		{"--logtostderr before get-token", append([]string{"--logtostderr", "--v=0"}, getTokenBase...), 0},
		{"get-token without an issuer", []string{"get-token", "--oidc-client-id=kubernetes"}, 1},
		{"setup without flags: its help", []string{"setup"}, 0},
		{"setup without a client", []string{"setup", "--oidc-issuer-url=" + unreachableIssuer}, 0},
		{"setup with an argument", []string{"setup", "extra"}, 1},
		{"setup that cannot log in", []string{"setup", "--oidc-issuer-url=" + unreachableIssuer, "--oidc-client-id=kubernetes"}, 1},
		{"clean", []string{"clean"}, 0},
		{"clean with an argument", []string{"clean", "extra"}, 1},
		{"-v1 before clean", []string{"-v1", "clean"}, 0},
		{"version", []string{"version"}, 0},
		{"version with an argument", []string{"version", "extra"}, 1},
		{"--version", []string{"--version"}, 0},
		{"help", []string{"help"}, 0},
		{"help get-token", []string{"help", "get-token"}, 0},
		{"--help", []string{"--help"}, 0},
		{"unknown command", []string{"bogus"}, 1},
		{"standalone, no kubeconfig", nil, 1},
		{"standalone, missing kubeconfig", []string{"--kubeconfig=/nonexistent/config"}, 1},
		{"standalone, unknown grant type", []string{"--grant-type=magic"}, 1},
		{"standalone, unknown flag", []string{"--no-such-flag"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := isolated(t)
			codes := map[string]int{}
			for _, tool := range []string{"gatehouse", "kubelogin"} {
				if tool == "kubelogin" && kubelogin == "" {
					continue
				}
				dir := t.TempDir()
				seed(t, dir, name, token)
				args := append([]string(nil), tt.args...)
				if (slices.Contains(args, "get-token") || slices.Contains(args, "clean")) && args[0] != "help" {
					args = append(args, "--token-cache-dir="+dir)
				}
				var r result
				if tool == "kubelogin" {
					r = runKubelogin(t, kubelogin, env, args...)
				} else {
					_, r = runAs(t, bin, "kubectl-oidc_login", "", env, args...)
				}
				codes[tool] = r.code
				if tool == "gatehouse" && r.code != tt.want {
					t.Errorf("exit %d, want %d: %s%s", r.code, tt.want, r.stdout, r.stderr)
				}
			}
			if kubelogin != "" && codes["kubelogin"] != codes["gatehouse"] {
				t.Errorf("exit %d, kubelogin's %d", codes["gatehouse"], codes["kubelogin"])
			}
		})
	}
}
