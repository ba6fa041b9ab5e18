// Package kube runs a real control plane for the end-to-end suite: etcd
// and kube-apiserver, on 127.0.0.1 only and on free ports, wired with the
// files `gatehouse cluster render` produces (structured authentication
// config or legacy --oidc-* flags, audit policy, audit log file, audit
// webhook), with RBAC and a service-account key. It gives an admin
// kubeconfig (client certificate in system:masters) and runs kubectl.
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/binaries"
)

// Options configure a control plane.
type Options struct {
	// Binaries are the programs to run (binaries.Ensure).
	Binaries binaries.Paths
	// Config is what gets rendered; Start sets its NodeDir, audit log
	// path, server and server CA to this control plane's, then renders
	// it into NodeDir exactly as an operator would on a node.
	Config *cluster.Config
	// Mode is cluster.ModeStructured (--authentication-config) or
	// cluster.ModeFlags (the legacy --oidc-* flags).
	Mode string
	// ExtraFlags are added to kube-apiserver's command line.
	ExtraFlags []string
	// ReadyTimeout bounds the wait for /readyz (default 3 minutes).
	ReadyTimeout time.Duration
	// Unconfigured starts kube-apiserver as gatehouse cannot configure
	// it (a managed control plane): no authentication flags and no audit
	// webhook, only the audit log file. The rendered files are still
	// written, for gatehouse-proxy.
	Unconfigured bool
}

// Cluster is a running control plane.
type Cluster struct {
	// Server is kube-apiserver's URL, CAPEM the CA of its certificate.
	Server string
	CAPEM  []byte
	// AdminKubeconfig authenticates with a client certificate in
	// system:masters.
	AdminKubeconfig string
	// Dir holds everything: rendered files (Config.NodeDir), logs, data.
	Dir string
	// AuditLog is the audit log file kube-apiserver writes.
	AuditLog string
	// Config is the completed configuration that was rendered.
	Config *cluster.Config
	// Files are the rendered files, by name.
	Files map[string][]byte

	bin     binaries.Paths
	pki     *pki
	apiLog  string
	etcdLog string
	http    *http.Client
	exited  []exitWatch
}

// Start runs etcd and kube-apiserver until t ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := start(t, opts)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	return c
}

func start(t testing.TB, opts Options) (*Cluster, error) {
	if opts.Config == nil {
		return nil, errors.New("no Config")
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	dir := t.TempDir()
	c := &Cluster{Dir: dir, bin: opts.Binaries, Config: opts.Config, Files: map[string][]byte{},
		apiLog: filepath.Join(dir, "kube-apiserver.log"), etcdLog: filepath.Join(dir, "etcd.log"),
		AuditLog: filepath.Join(dir, "audit", "audit.log")}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	if c.pki, err = newPKI(); err != nil {
		return nil, err
	}
	c.CAPEM = c.pki.CAPEM
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, err
	}
	servingCert, servingKey, err := c.pki.issue("kube-apiserver", nil, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost", "kubernetes.default.svc"})
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := c.pki.issue("gatehouse-e2e-admin", []string{"system:masters"}, nil, nil)
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKey()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.crt": c.pki.CAPEM, "apiserver.crt": servingCert, "apiserver.key": servingKey,
		"sa.key": saKey, "sa.pub": saPub,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pkiDir, name), data, 0o600); err != nil {
			return nil, err
		}
	}

	// Render the cluster wiring the way an operator would, into the
	// folder the flags point at.
	cfg := opts.Config
	cfg.NodeDir = filepath.Join(dir, "gatehouse")
	cfg.Audit.Log.Path = c.AuditLog
	cfg.Server = c.Server
	cfg.ServerCAData = string(c.pki.CAPEM)
	if opts.Mode != "" {
		cfg.Authentication = opts.Mode
	}
	if err := cfg.Complete(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	rendered, err := cfg.Render()
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if err := cluster.WriteFiles(cfg.NodeDir, rendered); err != nil {
		return nil, err
	}
	hasCA := false
	for _, f := range rendered {
		c.Files[f.Name] = f.Data
		hasCA = hasCA || f.Name == cluster.FileIssuerCA
	}
	if err := os.MkdirAll(filepath.Dir(c.AuditLog), 0o755); err != nil {
		return nil, err
	}

	admin, err := c.writeKubeconfig("admin.kubeconfig", adminCert, adminKey)
	if err != nil {
		return nil, err
	}
	c.AdminKubeconfig = admin
	cert, err := tls.X509KeyPair(adminCert, adminKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.CAPEM)
	c.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}

	// etcd
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcdArgs := []string{
		"--name=e2e", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL, "--initial-cluster-state=new",
		"--unsafe-no-fsync", "--log-level=warn", "--listen-metrics-urls=",
	}
	if err := c.run(t, "etcd", c.bin.Etcd, etcdArgs, c.etcdLog); err != nil {
		return nil, err
	}
	if err := waitFor(context.Background(), 60*time.Second, func() error {
		if err := c.checkRunning(); err != nil {
			return err
		}
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("etcd not healthy: %w\n%s", err, tail(c.etcdLog, 20))
	}

	// kube-apiserver
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses loopback addresses; nothing in
		// this cluster needs the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + filepath.Join(pkiDir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pkiDir, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pkiDir, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(pkiDir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pkiDir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
	switch {
	case opts.Unconfigured:
	case cfg.Authentication == cluster.ModeFlags:
		for _, f := range cfg.LegacyOIDCFlags(hasCA) {
			args = append(args, f.String())
		}
	default:
		for _, f := range cfg.StructuredAuthFlags() {
			args = append(args, f.String())
		}
	}
	for _, f := range cfg.AuditFlags() {
		if opts.Unconfigured && strings.HasPrefix(f.String(), "--audit-webhook-") {
			continue
		}
		args = append(args, f.String())
	}
	args = append(args, opts.ExtraFlags...)
	if err := c.run(t, "kube-apiserver", c.bin.KubeAPIServer, args, c.apiLog); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := waitFor(ctx, opts.ReadyTimeout, func() error {
		if err := c.checkRunning(); err != nil {
			return err
		}
		resp, err := c.http.Get(c.Server + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s %s", resp.Status, body)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("kube-apiserver not ready: %w\n%s", err, tail(c.apiLog, 40))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log (last lines):\n%s", tail(c.apiLog, 40))
		}
	})
	return c, nil
}

// writeKubeconfig writes a kubeconfig for this cluster with a client
// certificate user.
func (c *Cluster) writeKubeconfig(name string, certPEM, keyPEM []byte) (string, error) {
	enc := base64.StdEncoding.EncodeToString
	return c.writeUserKubeconfig(name, fmt.Sprintf("    client-certificate-data: %s\n    client-key-data: %s\n", enc(certPEM), enc(keyPEM)))
}

// writeUserKubeconfig writes a kubeconfig for this cluster whose user
// block (indented by four spaces) is user.
func (c *Cluster) writeUserKubeconfig(name, user string) (string, error) {
	return c.KubeconfigAt(name, c.Server, c.pki.CAPEM, user)
}

// ClientCertKubeconfig writes a kubeconfig for a user authenticated by a
// client certificate (CN user, O groups), for tests that need a second
// non-OIDC identity.
func (c *Cluster) ClientCertKubeconfig(name, user string, groups ...string) (string, error) {
	cert, key, err := c.pki.issue(user, groups, nil, nil)
	if err != nil {
		return "", err
	}
	return c.writeKubeconfig(name, cert, key)
}

// run starts a program in its own process group, its output in logFile,
// and stops it (SIGTERM, then SIGKILL) when t ends.
func (c *Cluster) run(t testing.TB, name, bin string, args []string, logFile string) error {
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	c.exited = append(c.exited, exitWatch{name: name, done: done})
	return nil
}

type exitWatch struct {
	name string
	done <-chan struct{}
}

// errExited stops a readiness wait: the program is gone.
var errExited = errors.New("exited")

func (c *Cluster) checkRunning() error {
	for _, w := range c.exited {
		select {
		case <-w.done:
			return fmt.Errorf("%s %w", w.name, errExited)
		default:
		}
	}
	return nil
}

// Kubectl runs kubectl with the kubeconfig and returns its output. env
// entries (KEY=VALUE) are added to a minimal environment (PATH, HOME in
// the cluster folder, no KUBECONFIG).
func (c *Cluster) Kubectl(ctx context.Context, kubeconfig string, env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	home := filepath.Join(c.Dir, "home")
	_ = os.MkdirAll(home, 0o700)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// AdminKubectl runs kubectl as the admin and fails t on error.
func (c *Cluster) AdminKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, _, err := c.Kubectl(context.Background(), c.AdminKubeconfig, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// APIServerLog returns kube-apiserver's log so far.
func (c *Cluster) APIServerLog() string {
	b, _ := os.ReadFile(c.apiLog)
	return string(b)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls check until it succeeds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if errors.Is(last, errExited) {
			return last
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// WaitFor polls check every 250 ms until it succeeds or timeout passes.
func WaitFor(timeout time.Duration, check func() error) error {
	return waitFor(context.Background(), timeout, check)
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// AuditEvents decodes the audit log file so far (JSON lines).
func (c *Cluster) AuditEvents() ([]auditv1.Event, error) {
	data, err := os.ReadFile(c.AuditLog)
	if err != nil {
		return nil, err
	}
	var out []auditv1.Event
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev auditv1.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("audit log line %q: %w", line, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// KubectlInTerminal runs kubectl as a person at a terminal does: its
// standard input is a pseudo-terminal (util-linux script(1)), so kubectl
// runs exec credential plugins interactively. It returns what the
// terminal showed.
func (c *Cluster) KubectlInTerminal(ctx context.Context, kubeconfig string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	script, err := exec.LookPath("script")
	if err != nil {
		return "", fmt.Errorf("script(1) from util-linux is needed for a terminal: %w", err)
	}
	words := []string{shellQuote(c.bin.Kubectl), shellQuote("--kubeconfig=" + kubeconfig)}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	cmd := exec.CommandContext(ctx, script, "-q", "-e", "-c", strings.Join(words, " "), "/dev/null")
	home := filepath.Join(c.Dir, "home")
	_ = os.MkdirAll(home, 0o700)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TERM=dumb"}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s (in a terminal): %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
