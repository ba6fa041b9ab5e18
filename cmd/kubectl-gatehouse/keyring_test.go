package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// secretService starts a private D-Bus session bus and GNOME Keyring's
// Secret Service on it (its login keyring unlocked), for the test only,
// and returns the bus address. It skips when the programs are missing,
// unless GATEHOUSE_REQUIRE_KEYRING is set (CI: .ci/run installs them).
func secretService(t *testing.T) string {
	t.Helper()
	dbusDaemon, err1 := exec.LookPath("dbus-daemon")
	keyringDaemon, err2 := exec.LookPath("gnome-keyring-daemon")
	if err := errors.Join(err1, err2); err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_KEYRING") != "" {
			t.Fatalf("the keyring tests need dbus-daemon and gnome-keyring-daemon (Debian packages dbus-daemon, gnome-keyring): %v", err)
		}
		t.Skipf("no Secret Service to test with (apt-get install dbus-daemon gnome-keyring): %v", err)
	}
	dir, err := os.MkdirTemp("", "gatehouse-keyring-") // short: a unix socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A bus without service activation: nothing but the daemon below may
	// answer for the Secret Service (an activated one would escape the
	// test's clean-up).
	config := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(config, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bus := exec.Command(dbusDaemon, "--config-file="+config, "--nofork", "--nopidfile", "--print-address=1")
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Process.Kill(); _ = bus.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	addr = strings.TrimSpace(addr)
	env := append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr, "HOME="+dir, "XDG_RUNTIME_DIR="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	// --unlock creates and unlocks the login keyring with the password on
	// stdin; --foreground keeps it this test's child.
	kd := exec.Command(keyringDaemon, "--foreground", "--components=secrets", "--unlock")
	kd.Env = env
	kd.Stdin = strings.NewReader("test-keyring-password")
	if err := kd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kd.Process.Kill(); _ = kd.Wait() })
	// The test process's own keyring calls (go-keyring) use this bus.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := gokeyring.Get("gatehouse-test", "probe")
		if errors.Is(err, gokeyring.ErrNotFound) {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Secret Service did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKubeloginKeyring: --token-cache-storage=keyring against a real
// Secret Service, through go-keyring as kubelogin uses it: gatehouse's
// items are kubelogin's (service "kubelogin", user
// "kubelogin/tokencache/<name>", kubelogin's JSON), each tool reads what the
// other stored, and clean deletes them.
func TestKubeloginKeyring(t *testing.T) {
	addr := secretService(t)
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	srv := issuertest.Start(t, issuertest.Options{})
	env := append(isolated(t), "DBUS_SESSION_BUS_ADDRESS="+addr)
	dir := t.TempDir()
	args := func(extra ...string) []string {
		return append([]string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID,
			"--oidc-client-secret=" + srv.ClientSecret, "--certificate-authority=" + srv.CAFile,
			"--username=" + srv.Username, "--password=" + srv.Password, "--token-cache-dir=" + dir, "--token-cache-storage=keyring"}, extra...)
	}
	gate := func(a ...string) result { _, r := runAs(t, bin, "kubectl-oidc_login", "", env, a...); return r }

	tok := printedToken(t, gate(args()...))
	entries, locks := cacheNames(t, dir)
	if len(entries) != 0 || len(locks) != 1 {
		t.Fatalf("cache folder: entries %v, locks %v; want only the lock", entries, locks)
	}
	item := "kubelogin/tokencache/" + locks[0]
	read := func() (id, refresh string) {
		t.Helper()
		s, err := gokeyring.Get("kubelogin", item)
		if err != nil {
			t.Fatalf("keyring item %s: %v", item, err)
		}
		var e struct {
			IDToken      string `json:"id_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal([]byte(s), &e); err != nil {
			t.Fatalf("keyring item %s: %q: %v", item, s, err)
		}
		return e.IDToken, e.RefreshToken
	}
	if id, refresh := read(); id != tok || refresh == "" {
		t.Fatalf("keyring item holds %q, %q", id, refresh)
	}
	// The item, not a login, serves the next run (a login would fail).
	if got := printedToken(t, gate(args("--password=wrong")...)); got != tok {
		t.Error("the keyring item was not used")
	}

	if kubelogin != "" {
		// kubelogin reads gatehouse's item...
		if got := printedToken(t, runKubelogin(t, kubelogin, env, args("--password=wrong")...)); got != tok {
			t.Error("kubelogin did not use gatehouse's keyring item")
		}
		// ...and gatehouse reads the one kubelogin stores.
		if err := gokeyring.Delete("kubelogin", item); err != nil {
			t.Fatal(err)
		}
		kTok := printedToken(t, runKubelogin(t, kubelogin, env, args()...))
		if id, _ := read(); id != kTok {
			t.Fatal("kubelogin stored its token elsewhere")
		}
		if got := printedToken(t, gate(args("--password=wrong")...)); got != kTok {
			t.Error("gatehouse did not use kubelogin's keyring item")
		}
	}

	// clean deletes the folder and every kubelogin item.
	_, r := runAs(t, bin, "kubectl-oidc_login", "", env, "clean", "--token-cache-dir="+dir)
	if r.code != 0 || !strings.Contains(r.stderr, "Deleted the token cache from the keyring") {
		t.Fatalf("clean: exit %d, %q", r.code, r.stderr)
	}
	if _, err := gokeyring.Get("kubelogin", item); !errors.Is(err, gokeyring.ErrNotFound) {
		t.Errorf("after clean the item is still there: %v", err)
	}

	// Without a Secret Service: a clear error when the token cannot be
	// stored, exit 1, as kubelogin.
	noBus := isolated(t)
	_, r = runAs(t, bin, "kubectl-oidc_login", "", noBus, args()...)
	if r.code != 1 || !strings.Contains(r.stderr, "--token-cache-storage=disk") {
		t.Errorf("no keyring: exit %d, %q", r.code, r.stderr)
	}
	if kubelogin != "" {
		if r := runKubelogin(t, kubelogin, noBus, args()...); r.code != 1 {
			t.Errorf("kubelogin without a keyring: exit %d", r.code)
		}
	}
}
