package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// startStorageCluster runs a control plane for the kubernetes storage
// tests (its OIDC wiring is unused).
func startStorageCluster(t *testing.T) *kube.Cluster {
	t.Helper()
	sink := kube.StartSink(t, sinkToken)
	return kube.Start(t, kube.Options{Binaries: bins, Config: seedConfig(sink.URL+"/dex", sink.CAPEM), Mode: cluster.ModeStructured})
}

// namespaces hands out fresh namespace names.
var namespaces atomic.Int64

// newNamespace creates an empty namespace and returns its name.
func newNamespace(t *testing.T, c *kube.Cluster, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, namespaces.Add(1))
	c.AdminKubectl(t, "create", "namespace", ns)
	return ns
}

// openKubeStorage opens the kubernetes storage on namespace ns as the
// cluster admin, closed when t ends.
func openKubeStorage(t *testing.T, c *kube.Cluster, ns string) *kubernetes.Storage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := kubernetes.Open(ctx, kubernetes.Config{KubeConfigFile: c.AdminKubeconfig, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestKubernetesStorageConformance runs the storage conformance suite,
// the one SQLite and PostgreSQL pass, on custom resources of a real
// kube-apiserver: each case in a namespace of its own.
func TestKubernetesStorageConformance(t *testing.T) {
	c := startStorageCluster(t)
	// Before any definition exists: crdHandling check names what is
	// missing, and a user without rights is told which.
	ctx := context.Background()
	_, err := kubernetes.Open(ctx, kubernetes.Config{KubeConfigFile: c.AdminKubeconfig, CRDHandling: kubernetes.CRDCheck})
	if err == nil || !strings.Contains(err.Error(), "custom resource definitions missing: signingkeies.dex.coreos.com, passwords.dex.coreos.com") ||
		!strings.Contains(err.Error(), "crdHandling") {
		t.Fatalf("crdHandling check without definitions: %v", err)
	}
	nobody, err := c.ClientCertKubeconfig("nobody.kubeconfig", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.Open(ctx, kubernetes.Config{KubeConfigFile: nobody}); err == nil || !strings.Contains(err.Error(), "is forbidden") ||
		!strings.Contains(err.Error(), "dex.coreos.com") {
		t.Fatalf("a user without rights: %v", err)
	}
	conformance.Run(t, func(t *testing.T) storage.Storage {
		return openKubeStorage(t, c, newNamespace(t, c, "conformance"))
	})
	t.Run("Persistence", func(t *testing.T) {
		ns := newNamespace(t, c, "persistence")
		conformance.RunPersistence(t, func(t *testing.T) storage.Storage {
			return openKubeStorage(t, c, ns)
		})
	})
}

// namespacedKubeconfig writes a copy of the admin kubeconfig whose
// context uses namespace ns, as an operator's kubeConfigFile would.
func namespacedKubeconfig(t *testing.T, c *kube.Cluster, ns string) string {
	t.Helper()
	data, err := os.ReadFile(c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(data), "context: {cluster: e2e, user: user}", "context: {cluster: e2e, user: user, namespace: "+ns+"}", 1)
	if out == string(data) {
		t.Fatal("admin kubeconfig has no context line to set the namespace in")
	}
	p := filepath.Join(t.TempDir(), ns+".kubeconfig")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issuerSite is an issuer address with its TLS files and an HTTP client
// that trusts them.
type issuerSite struct {
	web, telemetry, issuer string
	cert, key              string
	client                 *http.Client
}

func newIssuerSite(t *testing.T) issuerSite {
	t.Helper()
	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := bundle.WriteDir(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	return issuerSite{web: web, telemetry: freeAddr(t), issuer: "https://" + web + "/dex", cert: paths.ServerCert, key: paths.ServerKey,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64,
			TLSClientConfig: &tls.Config{RootCAs: bundle.CertPool(), MinVersion: tls.VersionTLS12}}}}
}

// kubeStorageConfig is a Dex-format config (read by Dex and gatehouse
// alike) on the kubernetes storage of kubeconfig, with the password grant
// for the users of hash and the refresh policy given.
func kubeStorageConfig(s issuerSite, issuerURL, kubeconfig, hash string, users int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `issuer: %s
storage:
  type: kubernetes
  config:
    kubeConfigFile: %s
web:
  https: %s
  tlsCert: %s
  tlsKey: %s
telemetry:
  http: %s
oauth2:
  skipApprovalScreen: true
  passwordConnector: local
%s
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: kube-secret
  redirectURIs: [http://localhost:8000]
enablePasswordDB: true
staticPasswords:
`, issuerURL, kubeconfig, s.web, s.cert, s.key, s.telemetry, extra)
	for i := range users {
		fmt.Fprintf(&b, "- email: user%d@example.com\n  hash: %q\n  username: user%d\n  userID: 00000000-0000-4000-8000-%012d\n", i, hash, i, i)
	}
	return b.String()
}

// process is a server started from its binary; its output is in log.
type process struct {
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs bin with args until t ends (or stop), and waits
// until ready answers nil.
func startProcess(t *testing.T, name, bin string, ready func() error, args ...string) *process {
	t.Helper()
	p, err := tryStartProcess(t, name, bin, ready, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryStartProcess is startProcess returning the error.
func tryStartProcess(t *testing.T, name, bin string, ready func() error, args ...string) (*process, error) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, tailLines(string(b), 60))
		}
	})
	if err := kube.WaitFor(2*time.Minute, func() error {
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited: %s", name, tailLines(string(b), 30))
		default:
		}
		return ready()
	}); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func httpReady(c *http.Client, url string) func() error {
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// tokenGrant posts a grant for client kubernetes to base (an issuer URL
// on some replica) and returns the answer with its status under "status".
func tokenGrant(c *http.Client, base string, form url.Values) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("kubernetes", "kube-secret")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	out["status"] = resp.StatusCode
	return out, nil
}

func mustGrant(t *testing.T, c *http.Client, base string, form url.Values) map[string]any {
	t.Helper()
	r, err := tokenGrant(c, base, form)
	if err != nil {
		t.Fatal(err)
	}
	if r["status"] != http.StatusOK {
		t.Fatalf("%s grant: %v", form.Get("grant_type"), r)
	}
	return r
}

func jwtPart(t *testing.T, jwt string, part int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[part])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// grafanaPasswordGrant logs user in with the password grant as client
// "grafana" (a client Dex kept in storage) and returns the status.
func grafanaPasswordGrant(t *testing.T, site issuerSite, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, site.issuer+"/token", strings.NewReader(url.Values{"grant_type": {"password"},
		"username": {user}, "password": {"password"}, "scope": {"openid"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("grafana", "grafana-secret")
	resp, err := site.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// objectCount counts the objects of a dex.coreos.com resource in ns.
func objectCount(t *testing.T, c *kube.Cluster, resource, ns string) int {
	t.Helper()
	out := c.AdminKubectl(t, "get", resource+".dex.coreos.com", "-n", ns, "-o", "name")
	return len(strings.Fields(out))
}

// TestDexKubernetesStorageTakeover: Dex v2.45.1 (DEX_BIN, built from its
// source) runs on `storage: kubernetes`, hands out sessions and rotates
// one; then gatehouse starts on the same API server and namespace with
// the same config, and every session refreshes: same subject, same
// signing key, and Dex's RefreshToken objects become gatehouse's.
func TestDexKubernetesStorageTakeover(t *testing.T) {
	dexBin := os.Getenv("DEX_BIN")
	if dexBin == "" {
		t.Skip("DEX_BIN not set: build Dex v2.45.1 from its source and point DEX_BIN at it")
	}
	c := startStorageCluster(t)
	ns := newNamespace(t, c, "dex")
	site := newIssuerSite(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.DefaultCost) // Dex refuses lower costs
	if err != nil {
		t.Fatal(err)
	}
	const users = 3
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(kubeStorageConfig(site, site.issuer, namespacedKubeconfig(t, c, ns), string(hash), users, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Dex creates its custom resource definitions at its first start and
	// may list one before the API server serves it (it then exits, and
	// Kubernetes would restart it): start it again, as Kubernetes would.
	var dex *process
	for attempt := 1; dex == nil; attempt++ {
		dex, err = tryStartProcess(t, fmt.Sprintf("dex-%d", attempt), dexBin, httpReady(site.client, site.issuer+"/.well-known/openid-configuration"), "serve", cfgFile)
		if err != nil && attempt == 3 {
			t.Fatal(err)
		}
	}
	tokens := make([]map[string]any, users)
	for i := range users {
		tokens[i] = mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("user%d@example.com", i)},
			"password": {"password"}, "scope": {"openid offline_access email profile"}})
	}
	// One session rotated by Dex: its first token becomes Dex's obsolete one.
	rotated := mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens[0]["refresh_token"].(string)}})
	firstOfRotated := tokens[0]["refresh_token"].(string)
	tokens[0] = rotated
	dex.stop()
	if n := objectCount(t, c, "refreshtokens", ns); n != users {
		t.Fatalf("Dex left %d RefreshToken objects, want %d", n, users)
	}

	// A client created through Dex's API (an OAuth2Client object, in
	// Dex's layout): gatehouse serves it too.
	clientYAML := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(clientYAML, []byte(`apiVersion: dex.coreos.com/v1
kind: OAuth2Client
metadata: {name: m5sxi3ljn5ygu4tjmnwg4zlboovtemzrfgzdm}
id: grafana
secret: grafana-secret
redirectURIs: [https://grafana.example.com/login/generic_oauth]
name: Grafana
public: false
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.AdminKubectl(t, "apply", "-n", ns, "-f", clientYAML)

	gatehouse := startProcess(t, "gatehouse", goBinary(t, "gatehouse"), httpReady(site.client, "http://"+site.telemetry+"/healthz/ready"), "serve", "--config", cfgFile)
	for i, tok := range tokens {
		r := mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
		ours, theirs := jwtPart(t, r["id_token"].(string), 1), jwtPart(t, tok["id_token"].(string), 1)
		for _, k := range []string{"iss", "sub", "aud", "email", "name"} {
			if fmt.Sprint(ours[k]) != fmt.Sprint(theirs[k]) {
				t.Errorf("user%d: claim %s: gatehouse %v, Dex %v", i, k, ours[k], theirs[k])
			}
		}
		if a, b := jwtPart(t, r["id_token"].(string), 0)["kid"], jwtPart(t, tok["id_token"].(string), 0)["kid"]; a != b {
			t.Errorf("user%d: gatehouse signs with %v, Dex signed with %v", i, a, b)
		}
		// The session goes on in gatehouse's format.
		mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r["refresh_token"].(string)}})
	}
	if n := objectCount(t, c, "refreshtokens", ns); n != 0 {
		t.Errorf("%d of Dex's RefreshToken objects left after their sessions moved", n)
	}
	if n := objectCount(t, c, "gatehouserefreshfamilies", ns); n != users {
		t.Errorf("%d refresh families, want %d", n, users)
	}
	// Dex's rotated-out token is refused: the session was already Dex's
	// next token's.
	if r, err := tokenGrant(site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {firstOfRotated}}); err != nil || r["status"] != http.StatusBadRequest {
		t.Errorf("Dex's obsolete token: %v %v", r, err)
	}
	if status := grafanaPasswordGrant(t, site, "user1@example.com"); status != http.StatusOK {
		t.Errorf("password grant for the client Dex kept in storage: %d", status)
	}
	_ = gatehouse
}

// TestKubernetesStorageReplicas runs two gatehouse replicas on one
// namespace under refresh load through both: every grant succeeds, two
// clients refreshing one token at once on different replicas get the same
// successor, and of the two replicas exactly one creates the key set and
// exactly one rotates it.
func TestKubernetesStorageReplicas(t *testing.T) {
	c := startStorageCluster(t)
	ns := newNamespace(t, c, "replicas")
	kc := namespacedKubeconfig(t, c, ns)
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers  = 8
		rotation = 20 * time.Second
	)
	a, b := newIssuerSite(t), newIssuerSite(t)
	// Both answer for A's issuer URL (as behind one load balancer); B is
	// reached on its own port.
	extra := fmt.Sprintf("expiry:\n  signingKeys: %s\n  refreshTokens:\n    reuseInterval: 5s", rotation)
	var files [2]string
	for i, s := range []issuerSite{a, b} {
		files[i] = filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(files[i], []byte(kubeStorageConfig(s, a.issuer, kc, string(hash), workers, extra)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := goBinary(t, "gatehouse")
	// Started together: both find no keys and race to create them.
	var replicas [2]*process
	var wg sync.WaitGroup
	for i, s := range []issuerSite{a, b} {
		wg.Go(func() {
			replicas[i] = startProcess(t, fmt.Sprintf("replica-%d", i), bin, httpReady(s.client, "http://"+s.telemetry+"/healthz/ready"), "serve", "--config", files[i])
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	keysA, keysB := getBody(t, a.client, a.issuer+"/keys"), getBody(t, b.client, "https://"+b.web+"/dex/keys")
	if keysA != keysB {
		t.Fatalf("replicas publish different key sets:\n%s\n%s", keysA, keysB)
	}
	bases := []struct {
		c    *http.Client
		base string
	}{{a.client, a.issuer}, {b.client, "https://" + b.web + "/dex"}}

	var grants, failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(format string, args ...any) {
		if failures.Add(1) == 1 {
			firstFailure.Store(fmt.Sprintf(format, args...))
		}
	}
	stop := make(chan struct{})
	var load sync.WaitGroup
	for w := range workers {
		load.Go(func() {
			tok, err := tokenGrant(a.client, a.issuer, url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("user%d@example.com", w)},
				"password": {"password"}, "scope": {"openid offline_access email"}})
			if err != nil || tok["status"] != http.StatusOK {
				fail("worker %d: password grant: %v %v", w, tok, err)
				return
			}
			rt := tok["refresh_token"].(string)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				if w%2 == 0 {
					// Two clients with one token, one on each replica.
					var r [2]map[string]any
					var e [2]error
					var both sync.WaitGroup
					for i := range 2 {
						both.Go(func() { r[i], e[i] = tokenGrant(bases[i].c, bases[i].base, form) })
					}
					both.Wait()
					grants.Add(2)
					if e[0] != nil || e[1] != nil || r[0]["status"] != http.StatusOK || r[1]["status"] != http.StatusOK {
						fail("worker %d, round %d: concurrent refresh on both replicas: %v %v / %v %v", w, n, r[0], e[0], r[1], e[1])
						return
					}
					if r[0]["refresh_token"] != r[1]["refresh_token"] {
						fail("worker %d, round %d: concurrent refreshes got different successors", w, n)
						return
					}
					rt = r[0]["refresh_token"].(string)
					continue
				}
				r, err := tokenGrant(bases[n%2].c, bases[n%2].base, form)
				grants.Add(1)
				if err != nil || r["status"] != http.StatusOK {
					fail("worker %d, round %d on replica %d: %v %v", w, n, n%2, r, err)
					return
				}
				rt = r["refresh_token"].(string)
			}
		})
	}
	// Load until the key set was rotated once (then a few seconds more),
	// well before a second rotation is due.
	start := time.Now()
	var version int64
	err = kube.WaitFor(3*rotation, func() error {
		var k struct {
			Gatehouse struct {
				Version int64 `json:"version"`
			} `json:"gatehouse"`
		}
		out := c.AdminKubectl(t, "get", "signingkeies.dex.coreos.com", "openid-connect-keys", "-n", ns, "-o", "json")
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			return err
		}
		if version = k.Gatehouse.Version; version < 2 {
			return fmt.Errorf("key set version %d", version)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	close(stop)
	load.Wait()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("no rotation within %s: %v", 3*rotation, err)
	}
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d grants failed; first: %v", f, grants.Load(), firstFailure.Load())
	}
	rotations := 0
	for _, p := range replicas {
		data, _ := os.ReadFile(p.log)
		rotations += strings.Count(string(data), "rotated signing key")
	}
	if version != 2 || rotations != 2 {
		t.Fatalf("key set version %d after %d writes of the key set by the replicas, want 2 and 2 (creation and one rotation)", version, rotations)
	}
	t.Logf("%d grants in %s through two replicas, no errors; key set created once and rotated once", grants.Load(), elapsed.Round(time.Second))
}

func getBody(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHoldControlPlane is not a test: bench/refresh.sh runs it to get a
// kube-apiserver for the kubernetes storage. With GATEHOUSE_HOLD_CONTROLPLANE
// set to a folder, it starts etcd and kube-apiserver, writes the admin
// kubeconfig to <folder>/kubeconfig and keeps them running until
// <folder>/stop exists.
func TestHoldControlPlane(t *testing.T) {
	dir := os.Getenv("GATEHOUSE_HOLD_CONTROLPLANE")
	if dir == "" {
		t.Skip("GATEHOUSE_HOLD_CONTROLPLANE not set (bench/refresh.sh sets it)")
	}
	c := startStorageCluster(t)
	data, err := os.ReadFile(c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig.tmp"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "kubeconfig.tmp"), filepath.Join(dir, "kubeconfig")); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// apiRequests reads kube-apiserver's request counter for a resource of
// dex.coreos.com, by verb.
func apiRequests(t *testing.T, c *kube.Cluster, resource string) map[string]int {
	t.Helper()
	out := c.AdminKubectl(t, "get", "--raw", "/metrics")
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `group="dex.coreos.com"`) ||
			!strings.Contains(line, `resource="`+resource+`"`) {
			continue
		}
		_, verb, _ := strings.Cut(line, `verb="`)
		verb, _, _ = strings.Cut(verb, `"`)
		fields := strings.Fields(line)
		var n float64
		if _, err := fmt.Sscan(fields[len(fields)-1], &n); err != nil {
			t.Fatal(err)
		}
		counts[verb] += int(n)
	}
	return counts
}

// TestKubernetesRefreshRoundTrips: a refresh grant costs the API server
// one read and one write of the family (the update starts from the
// family the grant just read), nothing more.
func TestKubernetesRefreshRoundTrips(t *testing.T) {
	c := startStorageCluster(t)
	ns := newNamespace(t, c, "roundtrips")
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	site := newIssuerSite(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(kubeStorageConfig(site, site.issuer, namespacedKubeconfig(t, c, ns), string(hash), 1, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "gatehouse", goBinary(t, "gatehouse"), httpReady(site.client, "http://"+site.telemetry+"/healthz/ready"), "serve", "--config", cfgFile)
	tok := mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"password"}, "username": {"user0@example.com"}, "password": {"password"}, "scope": {"openid offline_access"}})
	const n = 40
	before := apiRequests(t, c, "gatehouserefreshfamilies")
	rt := tok["refresh_token"].(string)
	for range n {
		rt = mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})["refresh_token"].(string)
	}
	after := apiRequests(t, c, "gatehouserefreshfamilies")
	got := map[string]int{}
	for verb, v := range after {
		if d := v - before[verb]; d != 0 {
			got[verb] = d
		}
	}
	if want := map[string]int{"GET": n, "PUT": n}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d refresh grants made these requests for refresh families: %v, want %v", n, got, want)
	}
}

// BenchmarkKubernetesRotation is the storage side of the refresh grant
// (conformance.BenchmarkRotation) on custom resources of a real
// kube-apiserver, as BenchmarkRotation in the sqlite and postgres packages.
func BenchmarkKubernetesRotation(b *testing.B) {
	sink := kube.StartSink(b, sinkToken)
	c := kube.Start(b, kube.Options{Binaries: bins, Config: seedConfig(sink.URL+"/dex", sink.CAPEM), Mode: cluster.ModeStructured})
	out, _, err := c.Kubectl(context.Background(), c.AdminKubeconfig, nil, "create", "namespace", "bench")
	if err != nil {
		b.Fatal(err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := kubernetes.Open(ctx, kubernetes.Config{KubeConfigFile: c.AdminKubeconfig, Namespace: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	conformance.BenchmarkRotation(b, s)
}

// writeDexObjects creates, in namespace ns, the objects a Dex v2.45
// installation on storage: kubernetes keeps (Dex's layout, as
// storage/kubernetes/types.go writes them): its key set, a password, a
// client, and one session of user0 through the password database
// (refresh token and offline session). It returns the refresh token the
// client holds and the kid of Dex's signing key.
func writeDexObjects(t *testing.T, c *kube.Cluster, ns string, hash []byte) (refreshToken, kid string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key, KeyID: "dex-fixture-kid", Algorithm: "RS256", Use: "sig"}
	priv, _ := jwk.MarshalJSON()
	pub, _ := jwk.Public().MarshalJSON()
	now := time.Now().UTC()
	obj := func(kind, name string, fields map[string]any) map[string]any {
		fields["apiVersion"], fields["kind"] = "dex.coreos.com/v1", kind
		fields["metadata"] = map[string]any{"name": name, "namespace": ns}
		return fields
	}
	claims := map[string]any{"userID": "00000000-0000-4000-8000-000000000000", "username": "user0", "preferredUsername": "",
		"email": "user0@example.com", "emailVerified": true}
	items := []map[string]any{
		obj("SigningKey", "openid-connect-keys", map[string]any{"signingKey": json.RawMessage(priv), "signingKeyPub": json.RawMessage(pub),
			"nextRotation": now.Add(5 * time.Hour)}),
		// Dex's idToName("dexdb@example.com"): base32 of the email and
		// the FNV-64 sum of nothing; read by its email, not by its name.
		obj("Password", "mrsxqzdcibsxqylnobwgkltdn5w4x4u44scceizf", map[string]any{"email": "dexdb@example.com", "hash": hash,
			"username": "dexdb", "userID": "dexdb-user-id"}),
		obj("OAuth2Client", "m5zgczttmfxgk4tzfmxgk3bnfnqw2ylmn5vq", map[string]any{"id": "grafana", "secret": "grafana-secret",
			"redirectURIs": []string{"https://grafana.example.com/cb"}, "name": "Grafana", "public": false}),
		obj("RefreshToken", "dexfixturerefresh0000000000", map[string]any{"CreatedAt": now.Add(-time.Hour), "LastUsed": now.Add(-time.Minute),
			"clientID": "kubernetes", "scopes": []string{"openid", "offline_access", "email"}, "token": "fixture-secret-2",
			"obsoleteToken": "fixture-secret-1", "claims": claims, "connectorID": "local"}),
		obj("OfflineSessions", "dexfixturesession", map[string]any{"userID": claims["userID"], "connID": "local",
			"refresh": map[string]any{"kubernetes": map[string]any{"ID": "dexfixturerefresh0000000000", "ClientID": "kubernetes",
				"CreatedAt": now.Add(-time.Hour), "LastUsed": now.Add(-time.Minute)}}}),
	}
	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dex-objects.json")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c.AdminKubectl(t, "apply", "-f", f)
	return dexRefreshToken("dexfixturerefresh0000000000", "fixture-secret-2"), jwk.KeyID
}

// dexRefreshToken is the refresh token Dex hands out: base64url of the
// protobuf {refresh_id = 1, token = 2}.
func dexRefreshToken(id, secret string) string {
	var proto []byte
	for i, v := range []string{id, secret} {
		proto = append(proto, byte((i+1)<<3|2), byte(len(v)))
		proto = append(proto, v...)
	}
	return base64.RawURLEncoding.EncodeToString(proto)
}

// TestDexCustomResources works from a Dex installation's custom
// resources written in Dex's layout (always, without DEX_BIN): gatehouse
// on their namespace serves Dex's session, client, password and key as
// they are; `gatehouse migrate from-dex` copies them into SQLite, where
// the session refreshes too.
func TestDexCustomResources(t *testing.T) {
	c := startStorageCluster(t)
	c.AdminKubectl(t, "apply", "-f", writeCRDs(t))
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bin := goBinary(t, "gatehouse")
	for _, mode := range []string{"in place", "migrated to sqlite"} {
		t.Run(mode, func(t *testing.T) {
			ns := newNamespace(t, c, "dexcrs")
			token, kid := writeDexObjects(t, c, ns, hash)
			site := newIssuerSite(t)
			dexCfg := filepath.Join(t.TempDir(), "dex.yaml")
			if err := os.WriteFile(dexCfg, []byte(kubeStorageConfig(site, site.issuer, namespacedKubeconfig(t, c, ns), string(hash), 1, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := dexCfg
			if mode != "in place" {
				data, _ := os.ReadFile(dexCfg)
				cfg = filepath.Join(t.TempDir(), "gatehouse.yaml")
				sqlite := "storage:\n  type: sqlite3\n  config:\n    file: " + filepath.Join(t.TempDir(), "gatehouse.db") + "\n"
				out := regexp.MustCompile(`(?s)storage:\n.*?\nweb:`).ReplaceAllLiteralString(string(data), sqlite+"web:")
				if err := os.WriteFile(cfg, []byte(out), 0o600); err != nil {
					t.Fatal(err)
				}
				res, err := exec.Command(bin, "migrate", "from-dex", "--dex-config", dexCfg, "--config", cfg).CombinedOutput()
				if err != nil {
					t.Fatalf("migrate: %v\n%s", err, res)
				}
				for _, want := range []string{"passwords:      1 copy", "signing keys:   1 copy", "refresh tokens: 1 copy", "1 client(s) and 0 connector(s)"} {
					if !strings.Contains(string(res), want) {
						t.Errorf("migrate output lacks %q:\n%s", want, res)
					}
				}
				if n := objectCount(t, c, "refreshtokens", ns); n != 1 {
					t.Errorf("migrate changed Dex's objects: %d refresh tokens", n)
				}
			}
			startProcess(t, "gatehouse", bin, httpReady(site.client, "http://"+site.telemetry+"/healthz/ready"), "serve", "--config", cfg)
			r := mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
			if got := jwtPart(t, r["id_token"].(string), 0)["kid"]; got != kid {
				t.Errorf("signed with %v, want Dex's key %s", got, kid)
			}
			if got := jwtPart(t, r["id_token"].(string), 1)["email"]; got != "user0@example.com" {
				t.Errorf("email %v", got)
			}
			// Dex's previous secret, rotated out a minute ago, is a replay.
			if r, err := tokenGrant(site.client, site.issuer, url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {dexRefreshToken("dexfixturerefresh0000000000", "fixture-secret-1")}}); err != nil || r["status"] != http.StatusBadRequest {
				t.Errorf("Dex's previous token: %v %v", r, err)
			}
			// The password Dex kept logs in.
			mustGrant(t, site.client, site.issuer, url.Values{"grant_type": {"password"}, "username": {"dexdb@example.com"}, "password": {"password"}, "scope": {"openid"}})
			if mode == "in place" {
				if status := grafanaPasswordGrant(t, site, "user0@example.com"); status != http.StatusOK {
					t.Errorf("Dex's stored client: %d", status)
				}
			}
		})
	}
}

// writeCRDs writes the storage's definitions (which Dex's match) to a
// file for kubectl.
func writeCRDs(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "crds.yaml")
	if err := os.WriteFile(f, kubernetes.CRDs, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
