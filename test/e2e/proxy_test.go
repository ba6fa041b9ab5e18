package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/gatehouse-dev/gatehouse/deploy/helm/chartcheck"
	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// chartProxyRBAC applies the ServiceAccount, ClusterRole and
// ClusterRoleBinding that the Helm chart renders for the proxy (its
// proxy-only values) and returns a token of that ServiceAccount: the
// proxy runs with exactly the rights the chart gives it (impersonate
// users, groups, uids and the credential-id extra; create
// SubjectAccessReviews; nothing else).
func chartProxyRBAC(t *testing.T, c *kube.Cluster) string {
	t.Helper()
	ctx := context.Background()
	helm, err := chartcheck.EnsureHelm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := chartcheck.ChartDir()
	if err != nil {
		t.Fatal(err)
	}
	const ns = "gatehouse"
	account, docs, _, err := chartcheck.ProxyRBACObjects(ctx, helm, chart, ns)
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"` + ns + `"}}`}, docs...)
	c.AdminKubectl(t, "apply", "-f", writeFile(t, filepath.Join(c.Dir, "proxy-rbac.yaml"), strings.Join(docs, "\n---\n")))
	return strings.TrimSpace(c.AdminKubectl(t, "create", "token", account, "-n", ns, "--duration=2h"))
}

// recorder is a reverse proxy between gatehouse-proxy and kube-apiserver
// that keeps the method, path and headers of every request kube-apiserver
// receives: what the attacks below must never reach.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
}

func newRecorder(t *testing.T, c *kube.Cluster) *recorder {
	t.Helper()
	target, _ := url.Parse(c.Server)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	rp := httputil.NewSingleHostReverseProxy(target)
	// HTTP/1.1 to kube-apiserver, so that upgrades pass too.
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 100}
	rp.FlushInterval = -1
	r := &recorder{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, recorded{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone()})
		r.mu.Unlock()
		rp.ServeHTTP(w, req)
	}))
	r.srv.EnableHTTP2 = true
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

// at returns what reached kube-apiserver for path.
func (r *recorder) at(path string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, s := range r.seen {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

// runningProxy is gatehouse-proxy in front of the recorder.
type runningProxy struct {
	URL       string
	CAPEM     []byte
	Log       string
	Telemetry string
}

// startProxy runs the gatehouse-proxy binary with the files `gatehouse
// cluster render` wrote and the ServiceAccount's token as its own
// credentials, in front of the API server at upstream (kube-apiserver,
// or the recorder in front of it) whose certificate's CA is upstreamCA.
func startProxy(t *testing.T, c *kube.Cluster, upstream string, upstreamCA []byte, clusterName string, extraArgs ...string) *runningProxy {
	t.Helper()
	bin := goBinary(t, "gatehouse-proxy")
	token := chartProxyRBAC(t, c)
	upstreamConfig, err := c.KubeconfigAt("proxy-upstream.kubeconfig", upstream, upstreamCA, "    token: "+token+"\n")
	if err != nil {
		t.Fatal(err)
	}
	name := "gatehouse-proxy" + strings.Join(extraArgs, "")
	b, err := tlsutil.NewBundle([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := b.WriteDir(filepath.Join(c.Dir, name+"-tls"))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := kube.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	port, tport := ports[0], ports[1]
	node := c.Config.NodeDir
	args := append([]string{
		"--listen=127.0.0.1:" + strconv.Itoa(port),
		"--tls-cert-file=" + paths.ServerCert, "--tls-key-file=" + paths.ServerKey,
		"--authentication-config=" + filepath.Join(node, cluster.FileAuthenticationConfig),
		"--upstream-kubeconfig=" + upstreamConfig,
		"--audit-policy=" + filepath.Join(node, cluster.FileAuditPolicy),
		"--audit-webhook-config=" + filepath.Join(node, cluster.FileAuditWebhook),
		"--audit-webhook-batch-max-wait=1s",
		"--cluster-name=" + clusterName,
		"--telemetry-addr=127.0.0.1:" + strconv.Itoa(tport),
		"--log-format=text"}, extraArgs...)
	logFile, err := c.Run(t, name, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	p := &runningProxy{URL: "https://127.0.0.1:" + strconv.Itoa(port), CAPEM: b.CACert, Log: logFile, Telemetry: "http://127.0.0.1:" + strconv.Itoa(tport)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse-proxy log (last lines):\n%s", kube.Tail(logFile, 30))
		}
	})
	if err := kube.WaitFor(60*time.Second, func() error {
		resp, err := http.Get(p.Telemetry + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz %d %s", resp.StatusCode, body)
		}
		return nil
	}); err != nil {
		t.Fatalf("gatehouse-proxy not ready: %v\n%s", err, kube.Tail(logFile, 30))
	}
	return p
}

func (p *runningProxy) client(certs ...tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}, ForceAttemptHTTP2: true}}
}

func certPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// TestProxySeedScenario is the seed story on a kube-apiserver that has
// no OIDC configuration and no audit webhook at all, with gatehouse-proxy
// in front: whoami through the proxy is the person, Forbidden before
// the team binding and allowed after, the audit trail in gatehouse names
// the person with the cluster as source; the attacks on the proxy are
// refused or stripped and kube-apiserver never sees them; a watch
// outlives its token; 1,000 watches stay open at once.
func TestProxySeedScenario(t *testing.T) {
	goBinary(t, "gatehouse-proxy")
	const ttl = 75 * time.Second
	g := startGatehouse(t, ttl)
	cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured, Unconfigured: true})
	c.AdminKubectl(t, "create", "namespace", "web")
	rec := newRecorder(t, c)
	const clusterName = "e2e-proxied"
	p := startProxy(t, c, rec.srv.URL, certPEM(rec.srv), clusterName)
	ctx := context.Background()

	tok, err := g.login(t, "octocat")
	if err != nil {
		t.Fatalf("octocat's login: %v", err)
	}
	loggedInAt := time.Now()
	octo, err := c.KubeconfigAt("octocat-proxy.kubeconfig", p.URL, p.CAPEM, "    token: "+tok.IDToken+"\n")
	if err != nil {
		t.Fatal(err)
	}
	// Directly, kube-apiserver does not know the token at all.
	direct, err := c.TokenKubeconfig("octocat-direct.kubeconfig", tok.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Kubectl(ctx, direct, nil, "get", "ns"); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("the token straight to kube-apiserver: want Unauthorized (no OIDC there), got %v", err)
	}

	w, err := whoamiAs(c, octo)
	if err != nil {
		t.Fatalf("kubectl auth whoami through the proxy: %v", err)
	}
	if w.Status.UserInfo.Username != "oidc:octocat" || !contains(w.Status.UserInfo.Groups, "oidc:exampleorg:infra-team") {
		t.Errorf("whoami through the proxy: %+v, want oidc:octocat in oidc:exampleorg:infra-team", w.Status.UserInfo)
	}

	_, _, err = c.Kubectl(ctx, octo, nil, "get", "ns")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") || !strings.Contains(err.Error(), `"oidc:octocat"`) {
		t.Fatalf("get ns before RBAC: want Forbidden for oidc:octocat, got %v", err)
	}
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
	out, _, err := c.Kubectl(ctx, octo, nil, "get", "ns", "-o", "name")
	if err != nil || !strings.Contains(out, "namespace/web") {
		t.Fatalf("get ns after RBAC through the proxy: %v\n%s", err, out)
	}
	// Server-side apply through the proxy.
	cm := writeFile(t, filepath.Join(c.Dir, "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: web}\ndata: {a: b}\n")
	if out, _, err := c.Kubectl(ctx, octo, nil, "apply", "--server-side", "-f", cm); err != nil {
		t.Errorf("server-side apply through the proxy: %v\n%s", err, out)
	}

	// Discovery, OpenAPI and a chunked list pass through as the person.
	for _, path := range []string{"/api", "/apis", "/openapi/v2", "/openapi/v3", "/api/v1/namespaces?limit=1"} {
		req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.IDToken)
		resp, err := p.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s through the proxy: %d %s", path, resp.StatusCode, body)
		}
		if strings.Contains(path, "limit=1") && !strings.Contains(string(body), `"continue":"`) {
			t.Errorf("a list with limit=1 has no continue token: %.200s", body)
		}
	}
	if out, _, err := c.Kubectl(ctx, octo, nil, "get", "clusterroles", "--chunk-size=10", "-o", "name"); err != nil || strings.Count(out, "\n") < 20 {
		t.Errorf("chunked kubectl get clusterroles through the proxy: %v, %d lines", err, strings.Count(out, "\n"))
	}

	// A watch opened now outlives the token (checked at the end).
	expiring := openWatch(t, p, tok.IDToken, "web")

	t.Run("audit", func(t *testing.T) {
		// gatehouse's sink holds the proxy's event: the person, the cluster
		// as source.
		if err := kube.WaitFor(30*time.Second, func() error {
			for _, ev := range g.sink.Events() {
				if ev.Verb == "list" && ev.Resource == "namespaces" && ev.Stage == string(auditv1.StageResponseComplete) && ev.Code == 200 {
					if ev.User != "oidc:octocat" || !contains(ev.Groups, "oidc:exampleorg:infra-team") || ev.Source != clusterName {
						return fmt.Errorf("sink event user %q groups %v source %q", ev.User, ev.Groups, ev.Source)
					}
					return nil
				}
			}
			return fmt.Errorf("no list namespaces at the sink (%d events)", len(g.sink.Events()))
		}); err != nil {
			t.Error(err)
		}
		// kube-apiserver's own log shows the proxy impersonating him.
		if err := kube.WaitFor(30*time.Second, func() error {
			events, err := c.AuditEvents()
			if err != nil {
				return err
			}
			for _, ev := range events {
				if ev.Verb == "list" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "namespaces" && ev.ImpersonatedUser != nil && ev.ImpersonatedUser.Username == "oidc:octocat" && ev.Stage == auditv1.StageResponseComplete {
					if !strings.HasPrefix(ev.User.Username, "system:serviceaccount:gatehouse:") {
						return fmt.Errorf("kube-apiserver saw user %q, not the chart's ServiceAccount", ev.User.Username)
					}
					return nil
				}
			}
			return fmt.Errorf("no impersonated list in kube-apiserver's audit log (%d events)", len(events))
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("kubectl --as", func(t *testing.T) {
		// octocat is cluster-admin (infra-team), so he may impersonate;
		// hubot may not.
		out, _, err := c.Kubectl(ctx, octo, nil, "auth", "whoami", "-o", "json", "--as", "jane")
		var jw whoami
		if err != nil || json.Unmarshal([]byte(out), &jw) != nil || jw.Status.UserInfo.Username != "jane" || len(jw.Status.UserInfo.Groups) != 1 || jw.Status.UserInfo.Groups[0] != "system:authenticated" {
			t.Errorf("--as jane by octocat: %v %s", err, out)
		}
		// jane has no rights: the API server decides as jane.
		_, _, err = c.Kubectl(ctx, octo, nil, "get", "ns", "--as", "jane")
		if err == nil || !strings.Contains(err.Error(), `User "jane" cannot list`) {
			t.Errorf("get ns --as jane: want Forbidden for jane, got %v", err)
		}
		if err := kube.WaitFor(30*time.Second, func() error {
			for _, ev := range g.sink.Events() {
				if ev.User == "oidc:octocat" && ev.Verb == "list" && ev.Resource == "namespaces" && ev.Code == 403 &&
					strings.Contains(string(ev.Raw), `"impersonatedUser":{"username":"jane"`) {
					return nil
				}
			}
			return fmt.Errorf("no audit event of octocat as jane at the sink")
		}); err != nil {
			t.Error(err)
		}
	})

	htok, err := g.login(t, "hubot")
	if err != nil {
		t.Fatalf("hubot's login: %v", err)
	}
	t.Run("attacks", func(t *testing.T) {
		proxyAttacks(t, c, p, rec, tok.IDToken, htok.IDToken, g.issuer.URL)
	})

	t.Run("upgrades", func(t *testing.T) {
		proxyUpgrades(t, c, p, rec, tok.IDToken)
	})

	t.Run("1000 watches", func(t *testing.T) {
		thousandWatches(t, c, p, tok.IDToken)
	})

	t.Run("watch outlives its token", func(t *testing.T) {
		watchAcrossExpiry(t, c, p, expiring, tok.IDToken, loggedInAt.Add(ttl))
	})
}

// proxyAttacks sends what a client must not get through; each request
// has a path of its own, so the recorder shows whether kube-apiserver
// received it and with which headers.
func proxyAttacks(t *testing.T, c *kube.Cluster, p *runningProxy, rec *recorder, octoToken, hubotToken, issuerURL string) {
	admin := adminPair(t, c) // a system:masters client certificate
	forged := forgeTokens(t, octoToken, issuerURL)
	tests := []struct {
		name     string
		token    string
		header   http.Header
		cert     bool
		status   int
		reaches  bool // kube-apiserver receives the request (stripped)
		wantUser string
	}{
		{name: "impersonate-system-admin", token: hubotToken, header: http.Header{"Impersonate-User": {"system:admin"}}, status: 403},
		{name: "impersonate-group-masters", token: hubotToken, header: http.Header{"Impersonate-Group": {"system:masters"}}, status: 400},
		{name: "impersonate-user-group-masters", token: hubotToken, header: http.Header{"Impersonate-User": {"oidc:hubot"}, "Impersonate-Group": {"system:masters"}}, status: 403},
		{name: "x-remote-user", token: hubotToken, header: http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Group": {"system:masters"}}, status: 403, reaches: true, wantUser: "oidc:hubot"},
		{name: "no-token", status: 401},
		{name: "alg-none", token: forged.none, status: 401},
		{name: "other-issuer", token: forged.otherIssuer, status: 401},
		{name: "other-key-same-issuer", token: forged.otherKey, status: 401},
		{name: "client-cert-and-token", token: hubotToken, cert: true, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/namespaces/attack-" + tc.name + "/configmaps"
			var certs []tls.Certificate
			if tc.cert {
				certs = []tls.Certificate{admin}
			}
			req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := p.client(certs...).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			seen := rec.at(path)
			if !tc.reaches {
				if len(seen) != 0 {
					t.Errorf("kube-apiserver received it: %+v", seen)
				}
				return
			}
			if len(seen) != 1 {
				t.Fatalf("kube-apiserver received %d requests at %s, want 1", len(seen), path)
			}
			h := seen[0].Header
			if h.Get("Impersonate-User") != tc.wantUser || h.Get("X-Remote-User") != "" || h.Get("X-Remote-Group") != "" || contains(h.Values("Impersonate-Group"), "system:masters") {
				t.Errorf("kube-apiserver received headers %v", h)
			}
			if strings.Contains(h.Get("Authorization"), tc.token) {
				t.Errorf("the client's token reached kube-apiserver")
			}
		})
	}
}

// adminPair returns the admin client certificate from its kubeconfig.
func adminPair(t *testing.T, c *kube.Cluster) tls.Certificate {
	t.Helper()
	data, err := os.ReadFile(c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) []byte {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, name+": "); ok {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
		t.Fatalf("no %s in the admin kubeconfig", name)
		return nil
	}
	pair, err := tls.X509KeyPair(field("client-certificate-data"), field("client-key-data"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

type forgedTokens struct{ none, otherIssuer, otherKey string }

// forgeTokens makes tokens with octocat's claims that must not pass:
// unsigned (alg none), signed by another issuer, and signed by another
// key while naming gatehouse's issuer.
func forgeTokens(t *testing.T, real, issuerURL string) forgedTokens {
	t.Helper()
	parts := strings.Split(real, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		jws, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}
	other := map[string]any{}
	for k, v := range claims {
		other[k] = v
	}
	other["iss"] = "https://evil.example.com/dex"
	return forgedTokens{none: none, otherIssuer: sign(other), otherKey: sign(claims)}
}

// thousandWatches opens 1,000 watches through the proxy (HTTP/2 from the
// client), then creates one ConfigMap: every watch must deliver it.
func thousandWatches(t *testing.T, c *kube.Cluster, p *runningProxy, token string) {
	const n = 1000
	c.AdminKubectl(t, "create", "namespace", "watched")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := p.client()
	client.Timeout = 0
	var opened, delivered sync.WaitGroup
	opened.Add(n)
	delivered.Add(n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			defer delivered.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/namespaces/watched/configmaps?watch=1&timeoutSeconds=600", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			opened.Done()
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("watch status %d", resp.StatusCode)
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), `"name":"hello-watchers"`) {
					return
				}
			}
			errs <- fmt.Errorf("watch ended without the event: %v", sc.Err())
		}()
	}
	opened.Wait()
	// The watches are registered once their headers came back.
	time.Sleep(2 * time.Second)
	c.AdminKubectl(t, "-n", "watched", "create", "configmap", "hello-watchers")
	done := make(chan struct{})
	go func() { delivered.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cancel()
		t.Fatalf("not every watch delivered the event within 3 minutes")
	}
	close(errs)
	var count int
	for err := range errs {
		if count < 5 {
			t.Error(err)
		}
		count++
	}
	if count > 0 {
		t.Errorf("%d of %d watches failed", count, n)
	}
}

// openWatch starts a watch of namespace's ConfigMaps through the proxy
// and returns its lines.
func openWatch(t *testing.T, p *runningProxy, token, namespace string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client := p.client()
	client.Timeout = 0
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/namespaces/"+namespace+"/configmaps?watch=1&timeoutSeconds=600", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", err, resp)
	}
	lines := make(chan string, 1000)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// watchAcrossExpiry checks a watch opened while its token was valid.
// The proxy authenticates a request when it starts, as kube-apiserver
// does: the open watch keeps delivering after the expiry (until the API
// server's watch timeout ends it), while any new request with the
// expired token is refused.
func watchAcrossExpiry(t *testing.T, c *kube.Cluster, p *runningProxy, lines <-chan string, token string, expiry time.Time) {
	time.Sleep(time.Until(expiry.Add(2 * time.Second)))
	r2, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/namespaces/web/configmaps", nil)
	r2.Header.Set("Authorization", "Bearer "+token)
	if resp2, err := p.client().Do(r2); err != nil || resp2.StatusCode != 401 {
		t.Errorf("a new request with the expired token: %v %v, want 401", err, resp2)
	}
	c.AdminKubectl(t, "-n", "web", "create", "configmap", "after-expiry")
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the watch ended before the ConfigMap created after the token's expiry arrived")
			}
			if strings.Contains(l, `"name":"after-expiry"`) {
				return
			}
		case <-deadline:
			t.Fatal("the open watch did not deliver the ConfigMap created after the token expired")
		}
	}
}
