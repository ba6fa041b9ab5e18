// Command audit-memory measures the peak memory of a real gatehouse
// process taking large audit batches: it starts `gatehouse audit sink`
// (or `gatehouse serve` with the sink in the issuer's process) with an
// in-flight byte budget, sends several large batches at once the way
// kube-apiserver's webhook backend does (its own client code and retry
// rules: client-go retries a 429/5xx with Retry-After up to 10 times, the
// backend retries every failure with backoff from 10 s, 5 attempts, then
// drops the batch), and reads the process's peak RSS (VmHWM in
// /proc/<pid>/status). At the end it counts the store: every batch must be
// there, each event once.
//
//	go build -o /tmp/gatehouse ./cmd/gatehouse
//	go run ./bench/audit-memory -gatehouse /tmp/gatehouse -budget 64 -batches 8 -batch-mib 60
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/apis/audit"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

const token = "bench-audit-memory-token-0123456789abcdef"

func main() {
	bin := flag.String("gatehouse", "", "the gatehouse binary to measure (go build -o /tmp/gatehouse ./cmd/gatehouse)")
	layout := flag.String("layout", "sink", "sink: `gatehouse audit sink`; serve: the sink inside `gatehouse serve`")
	budgetMiB := flag.Int64("budget", 64, "audit.webhook.maxInFlightBytes, MiB")
	batches := flag.Int("batches", 8, "batches sent at once")
	batchMiB := flag.Int("batch-mib", 60, "size of each batch, MiB")
	gomemlimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the gatehouse process (as the chart sets it), e.g. 200MiB; empty: none")
	initial := flag.Duration("initial-backoff", 10*time.Second, "kube-apiserver's --audit-webhook-initial-backoff")
	legacy := flag.Bool("legacy", false, "measure a gatehouse from before the byte budget: no maxBodyBytes, maxInFlightBytes or separate keys (use -layout serve)")
	pragmas := flag.String("pragmas", "", "extra SQLite pragmas on the audit store's file name, e.g. ?_pragma=cache_size(-8192)")
	flag.Parse()
	if *bin == "" {
		log.Fatal("-gatehouse is required: go build -o /tmp/gatehouse ./cmd/gatehouse")
	}
	dir, err := os.MkdirTemp("", "audit-memory-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	budget := *budgetMiB << 20
	web, tel := freeAddr(), freeAddr()
	b, err := tlsutil.NewBundle([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	paths, err := b.WriteDir(filepath.Join(dir, "tls"))
	if err != nil {
		log.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	auditDB := filepath.Join(dir, "audit", "audit.db")
	os.MkdirAll(filepath.Dir(auditDB), 0o700)
	cfg := fmt.Sprintf(`issuer: https://%s/dex
storage: {type: sqlite3, config: {file: %s}}
web: {https: %s, tlsCert: %s, tlsKey: %s}
telemetry: {http: %s}
enablePasswordDB: true
staticPasswords:
- {email: admin@example.com, hash: %q, username: admin, userID: 08a8684b-db88-4b73-90a9-3cd1661f5466}
audit:
  enabled: true
  storage: {type: sqlite3, config: {file: %q}}
  webhook: {bearerTokens: [%q], maxBodyBytes: %d, maxInFlightBytes: %d, separate: %v}
`, web, filepath.Join(dir, "gatehouse.db"), web, paths.ServerCert, paths.ServerKey, tel, hash, auditDB+*pragmas, token, 64<<20, max(budget, 64<<20), *layout == "sink")
	if *legacy {
		cfg = strings.Replace(cfg, fmt.Sprintf(", maxBodyBytes: %d, maxInFlightBytes: %d, separate: %v", 64<<20, max(budget, 64<<20), *layout == "sink"), "", 1)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	args := []string{"serve", "--config", cfgFile}
	if *layout == "sink" {
		args = []string{"audit", "sink", "--config", cfgFile}
	}
	cmd := exec.Command(*bin, args...)
	cmd.Env = os.Environ()
	if *gomemlimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+*gomemlimit)
	}
	logFile, _ := os.Create(filepath.Join(dir, "gatehouse.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	pid := cmd.Process.Pid
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	waitHealthy(tel, cmd)
	time.Sleep(2 * time.Second)
	idleRSS, _ := procKB(pid, "VmRSS")
	fmt.Printf("gatehouse %s (pid %d), budget %d MiB, GOMEMLIMIT %q\n", strings.Join(args[:len(args)-2], " "), pid, *budgetMiB, *gomemlimit)
	fmt.Printf("idle RSS: %.1f MiB\n", float64(idleRSS)/1024)

	// The batches: realistic ~1 KB events, each batch of batch-mib MiB.
	bodies := make([][]byte, *batches)
	want := 0
	for i := range bodies {
		g := auditgen.New(uint64(100+i), time.Now().Add(-time.Hour), time.Microsecond)
		var items []json.RawMessage
		size := 0
		for size < *batchMiB<<20-4096 {
			it := g.JSON()
			if size+len(it)+1 > *batchMiB<<20-64 {
				break
			}
			items = append(items, it)
			size += len(it) + 1
		}
		bodies[i] = event.EncodeList(items)
		want += len(items)
	}
	fmt.Printf("sending %d batches of %.1f MiB (%d events each on average) at once\n", len(bodies), float64(len(bodies[0]))/(1<<20), want/len(bodies))

	// kube-apiserver's webhook client, from a kubeconfig as `gatehouse
	// cluster render` writes one.
	kubeconfig := filepath.Join(dir, "audit-webhook.kubeconfig")
	os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: gatehouse, cluster: {server: "https://%s/audit/webhook", certificate-authority: %q}}]
users: [{name: kube-apiserver, user: {token: %q}}]
contexts: [{name: default, context: {cluster: gatehouse, user: kube-apiserver}}]
current-context: default
`, web, paths.CACert, token), 0o600)
	rc, err := utilwebhook.LoadKubeconfig(kubeconfig, nil)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	answers := map[string]int{}
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			mu.Lock()
			if err != nil {
				answers["error: "+shortErr(err)]++
			} else {
				answers[strconv.Itoa(resp.StatusCode)]++
			}
			mu.Unlock()
			return resp, err
		})
	})
	scheme := runtime.NewScheme()
	codecs := serializer.NewCodecFactory(scheme)
	gv := schema.GroupVersion{Group: "audit.k8s.io", Version: "v1"}
	scheme.AddKnownTypes(gv, &audit.EventList{})
	w, err := utilwebhook.NewGenericWebhook(scheme, codecs, rc, []schema.GroupVersion{gv}, utilwebhook.DefaultRetryBackoffWithInitialDelay(*initial))
	if err != nil {
		log.Fatal(err)
	}
	w.ShouldRetry = func(err error) bool { return err != nil } // the audit backend's retryOnError

	var peak, peakHeap, peakGoSys atomic.Int64
	sampling := make(chan struct{})
	go func() {
		for {
			if kb, err := procKB(pid, "VmRSS"); err == nil && kb > peak.Load() {
				peak.Store(kb)
			}
			if m, err := scrape(tel); err == nil {
				peakHeap.Store(max(peakHeap.Load(), int64(m["go_memstats_heap_inuse_bytes"])))
				peakGoSys.Store(max(peakGoSys.Load(), int64(m["go_memstats_sys_bytes"])))
			}
			select {
			case <-sampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(bodies))
	took := make([]time.Duration, len(bodies))
	for i, body := range bodies {
		wg.Go(func() {
			t0 := time.Now()
			errs[i] = w.WithExponentialBackoff(context.Background(), func() rest.Result {
				return w.RestClient.Post().Body(body).Do(context.Background())
			}).Error()
			took[i] = time.Since(t0)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(sampling)
	hwm, _ := procKB(pid, "VmHWM")
	if os.Getenv("AUDIT_MEMORY_SMAPS") != "" {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		fmt.Printf("%s", b)
		b, _ = exec.Command("sh", "-c", fmt.Sprintf("awk '/^[0-9a-f]+-/{name=$6} /^Rss:/{if ($2>4000) print $2, name}' /proc/%d/smaps | sort -n | tail", pid)).Output()
		fmt.Printf("%s", b)
	}
	stop()

	var codes []string
	for k, v := range answers {
		codes = append(codes, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(codes)
	lost := 0
	for i, err := range errs {
		if err != nil {
			lost++
			fmt.Printf("batch %d DROPPED after %s: %v\n", i, took[i].Round(time.Millisecond), err)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	fmt.Printf("all sent in %.1fs (first batch stored after %.1fs, last after %.1fs); answers seen by the client: %s\n",
		elapsed.Seconds(), took[0].Seconds(), took[len(took)-1].Seconds(), strings.Join(codes, ", "))
	fmt.Printf("peak RSS (VmHWM): %.1f MiB = idle %.1f + budget %d + %.1f MiB (sampled VmRSS max %.1f MiB)\n",
		float64(hwm)/1024, float64(idleRSS)/1024, *budgetMiB, float64(hwm-idleRSS)/1024-float64(*budgetMiB), float64(peak.Load())/1024)
	fmt.Printf("sampled maxima: Go heap in use %.1f MiB, memory the Go runtime holds (go_memstats_sys_bytes) %.1f MiB; the rest of RSS is SQLite's own (its page cache)\n",
		float64(peakHeap.Load())/(1<<20), float64(peakGoSys.Load())/(1<<20))

	db, err := store.Open(context.Background(), "sqlite3", auditDB)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ids, err := db.AuditIDs(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	dups := 0
	for _, n := range ids {
		if n != 1 {
			dups++
		}
	}
	fmt.Printf("stored %d events of %d sent; %d batches dropped, %d events stored twice\n", len(ids), want, lost, dups)
	if lost != 0 || dups != 0 || len(ids) != want {
		log.Fatal(errors.New("loss or duplication"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(tel string, cmd *exec.Cmd) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + tel + "/healthz/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
	log.Fatal("gatehouse did not become ready (see its log)")
}

// scrape reads the gatehouse process's own metrics.
func scrape(tel string) (map[string]float64, error) {
	resp, err := http.Get("http://" + tel + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && !strings.HasPrefix(name, "#") {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				m[name] = f
			}
		}
	}
	return m, sc.Err()
}

// procKB reads a "kB" field of /proc/<pid>/status.
func procKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}
