package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// TestProxyBench measures gatehouse-proxy against a direct connection to
// the same kube-apiserver in the same run (bench/proxy/run.sh runs it;
// it is skipped unless GATEHOUSE_PROXY_BENCH=1): added p50/p99 latency of
// a GET of one ConfigMap and of a LIST of 5,000, requests/s at 16
// workers, and the proxy's memory per open idle watch. Direct requests
// use a ServiceAccount token bound to cluster-admin; proxied ones the
// person's ID token (cluster-admin through the team binding).
// GATEHOUSE_PROXY_BENCH_KUBE_OIDC_PROXY, when set, is a kube-oidc-proxy
// binary to measure beside, with the same upstream credentials.
func TestProxyBench(t *testing.T) {
	if os.Getenv("GATEHOUSE_PROXY_BENCH") != "1" {
		t.Skip("set GATEHOUSE_PROXY_BENCH=1 (bench/proxy/run.sh)")
	}
	goBinary(t, "gatehouse-proxy")
	g := startGatehouse(t, time.Hour)
	cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
	// Metadata-level audit to a real sink is part of the proxy's cost.
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured, Unconfigured: true})
	p := startProxy(t, c, c.Server, c.CAPEM, "bench")
	p2 := startProxy(t, c, c.Server, c.CAPEM, "bench", "--upstream-http2")
	c.AdminKubectl(t, "create", "namespace", "web")
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
	c.AdminKubectl(t, "create", "namespace", "bench")
	c.AdminKubectl(t, "-n", "bench", "create", "serviceaccount", "direct")
	c.AdminKubectl(t, "create", "clusterrolebinding", "bench-direct", "--clusterrole=cluster-admin", "--serviceaccount=bench:direct")
	directToken := strings.TrimSpace(c.AdminKubectl(t, "-n", "bench", "create", "token", "direct", "--duration=2h"))
	tok, err := g.login(t, "octocat")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	pool.AppendCertsFromPEM(p.CAPEM)
	pool.AppendCertsFromPEM(p2.CAPEM)
	newClient := func() *http.Client {
		return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 32}}
	}
	type target struct {
		name, url, token string
		client           *http.Client
	}
	targets := []target{
		{"direct", c.Server, directToken, newClient()},
		{"gatehouse-proxy", p.URL, tok.IDToken, newClient()},
		{"gatehouse-proxy h2", p2.URL, tok.IDToken, newClient()},
	}
	if bin := os.Getenv("GATEHOUSE_PROXY_BENCH_KUBE_OIDC_PROXY"); bin != "" {
		url := startKubeOIDCProxy(t, c, bin, g.issuer.CAFile)
		targets = append(targets, target{"kube-oidc-proxy", url, tok.IDToken, newClient()})
	}
	get := func(tg target, path string) error {
		req, _ := http.NewRequest(http.MethodGet, tg.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tg.token)
		resp, err := tg.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d", tg.name, path, resp.StatusCode)
		}
		return nil
	}

	// 5,000 ConfigMaps, created directly by 16 workers.
	const n = 5000
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d"},"data":{"k":"value-%d"}}`, i, i)
				req, _ := http.NewRequest(http.MethodPost, c.Server+"/api/v1/namespaces/bench/configmaps", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+directToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := targets[0].client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					t.Errorf("create cm-%d: %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var report strings.Builder
	say := func(format string, a ...any) {
		fmt.Fprintf(&report, format+"\n", a...)
	}
	// Latency: the targets take turns, request by request.
	latency := func(label, path string, rounds int) {
		d := make([][]time.Duration, len(targets))
		for _, tg := range targets { // warm up
			for i := 0; i < 5; i++ {
				if err := get(tg, path); err != nil {
					t.Fatal(err)
				}
			}
		}
		for r := 0; r < rounds; r++ {
			for i, tg := range targets {
				start := time.Now()
				if err := get(tg, path); err != nil {
					t.Fatal(err)
				}
				d[i] = append(d[i], time.Since(start))
			}
		}
		for i, tg := range targets {
			slices.Sort(d[i])
			p50, p99 := d[i][len(d[i])/2], d[i][len(d[i])*99/100]
			var sum time.Duration
			for _, x := range d[i] {
				sum += x
			}
			line := fmt.Sprintf("%-6s %-18s p50 %8.3f ms  p99 %8.3f ms  mean %8.3f ms  (%d requests)", label, tg.name, ms(p50), ms(p99), ms(sum/time.Duration(len(d[i]))), rounds)
			if i > 0 {
				d0p50, d0p99 := d[0][len(d[0])/2], d[0][len(d[0])*99/100]
				line += fmt.Sprintf("  added p50 %+.3f ms, p99 %+.3f ms; throughput %.0f%% of direct", ms(p50-d0p50), ms(p99-d0p99), 100*float64(sumOf(d[0]))/float64(sum))
			}
			say("%s", line)
		}
	}
	latency("GET", "/api/v1/namespaces/bench/configmaps/cm-1", 2000)
	latency("LIST", "/api/v1/namespaces/bench/configmaps", 40)

	// Requests/s at 16 workers, 10 s each.
	for _, tg := range targets {
		var count atomic.Int64
		stop := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := get(tg, "/api/v1/namespaces/bench/configmaps/cm-"+strconv.Itoa(int(count.Load()%n)+1)); err != nil {
						t.Error(err)
						return
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		say("GET 16 workers %-18s %8.0f requests/s", tg.name, float64(count.Load())/10)
	}

	// Memory per open idle watch: the proxy's RSS and Go heap before and
	// after 1,000 watches (HTTP/2 from the client).
	for _, px := range []struct {
		name string
		p    *runningProxy
	}{{"gatehouse-proxy", p}, {"gatehouse-proxy h2", p2}} {
		idleWatches(t, px.p, tok.IDToken, newClient(), func(rss, heap float64) {
			say("idle watches 1000 %-18s RSS %+.1f MiB (%.1f kB per watch), Go heap in use %+.1f MiB (%.1f kB per watch)", px.name,
				rss/(1<<20), rss/1024/1000, heap/(1<<20), heap/1024/1000)
		})
	}
	t.Logf("results:\n%s", report.String())
	if out := os.Getenv("GATEHOUSE_PROXY_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sumOf(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

type memory struct{ rss, heap float64 }

// proxyMemory reads process_resident_memory_bytes and
// go_memstats_heap_inuse_bytes from the proxy's /metrics.
func proxyMemory(t *testing.T, p *runningProxy) memory {
	t.Helper()
	resp, err := http.Get(p.Telemetry + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m memory
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "process_resident_memory_bytes":
			m.rss = v
		case "go_memstats_heap_inuse_bytes":
			m.heap = v
		}
	}
	if m.rss == 0 || m.heap == 0 {
		t.Fatalf("the proxy's /metrics has no process_resident_memory_bytes or go_memstats_heap_inuse_bytes")
	}
	return m
}

// startKubeOIDCProxy runs kube-oidc-proxy (built outside this repository)
// with the seed scenario's claims and gatehouse-proxy's upstream
// credentials and gatehouse-proxy's serving certificate (which the
// bench's clients trust).
func startKubeOIDCProxy(t *testing.T, c *kube.Cluster, bin, issuerCAFile string) string {
	t.Helper()
	ports, err := kube.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	port, rport := ports[0], ports[1]
	tlsDir := filepath.Join(c.Dir, "gatehouse-proxy-tls")
	logFile, err := c.Run(t, "kube-oidc-proxy", bin,
		"--secure-port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--tls-cert-file="+filepath.Join(tlsDir, "tls.crt"), "--tls-private-key-file="+filepath.Join(tlsDir, "tls.key"),
		"--kubeconfig="+filepath.Join(c.Dir, "proxy-upstream.kubeconfig"),
		"--oidc-issuer-url="+c.Config.Issuer.URL, "--oidc-client-id="+c.Config.Issuer.ClientID, "--oidc-ca-file="+issuerCAFile,
		"--oidc-username-claim=preferred_username", "--oidc-username-prefix=oidc:",
		"--oidc-groups-claim=groups", "--oidc-groups-prefix=oidc:",
		"--readiness-probe-port="+strconv.Itoa(rport))
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.WaitFor(60*time.Second, func() error {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(rport) + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatalf("kube-oidc-proxy not ready: %v\n%s", err, kube.Tail(logFile, 30))
	}
	return "https://127.0.0.1:" + strconv.Itoa(port)
}

// idleWatches opens 1,000 idle watches through p and reports the growth
// of its RSS and Go heap.
func idleWatches(t *testing.T, p *runningProxy, token string, wc *http.Client, report func(rss, heap float64)) {
	t.Helper()
	before := proxyMemory(t, p)
	const watches = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wc.Timeout = 0
	var opened sync.WaitGroup
	opened.Add(watches)
	for i := 0; i < watches; i++ {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion=0&fieldSelector=metadata.name%3Dnone&timeoutSeconds=600", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := wc.Do(req)
			opened.Done()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	opened.Wait()
	time.Sleep(5 * time.Second)
	after := proxyMemory(t, p)
	report(after.rss-before.rss, after.heap-before.heap)
}
