package sink_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	auditwebhook "k8s.io/apiserver/plugin/pkg/audit/webhook"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// statusRecorder records the status of every answer.
type statusRecorder struct {
	h     http.Handler
	mu    sync.Mutex
	codes []int
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

func (s *statusRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	s.h.ServeHTTP(cw, r)
	s.mu.Lock()
	s.codes = append(s.codes, cw.code)
	s.mu.Unlock()
}

func (s *statusRecorder) seen() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.codes)
}

// apiserverBackend is kube-apiserver's own audit webhook backend
// (k8s.io/apiserver/plugin/pkg/audit/webhook, the delegate of its batch
// mode), pointed at url with a kubeconfig as `gatehouse cluster render`
// writes one. Its retries are kube-apiserver's: client-go retries a 429 or
// 5xx that carries Retry-After, honouring it, up to 10 times; the backend
// retries every failed attempt with exponential backoff (initial delay,
// factor 1.5, 5 attempts) and then drops the batch.
func apiserverBackend(t *testing.T, srv *httptest.Server, initial time.Duration) audit.Backend {
	t.Helper()
	url := srv.URL + "/audit/webhook"
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kubeconfig := filepath.Join(t.TempDir(), "audit-webhook.kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster: {server: %q, certificate-authority-data: %q}
users:
- name: kube-apiserver
  user: {token: %q}
contexts:
- name: default
  context: {cluster: gatehouse, user: kube-apiserver}
current-context: default
`, url, base64.StdEncoding.EncodeToString(ca), token)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := auditwebhook.NewBackend(kubeconfig, auditv1.SchemeGroupVersion, utilwebhook.DefaultRetryBackoffWithInitialDelay(initial), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// internalEvents converts generated events to the apiserver's internal
// type, which its backends take.
func internalEvents(t *testing.T, g *auditgen.Gen, n int, mutate func(*auditv1.Event)) []*auditinternal.Event {
	t.Helper()
	out := make([]*auditinternal.Event, n)
	for i := range out {
		v1 := g.Event()
		if mutate != nil {
			mutate(&v1)
		}
		out[i] = &auditinternal.Event{}
		if err := audit.Scheme.Convert(&v1, out[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// slowStore holds every batch a while before storing it, so that
// concurrent batches overlap.
type slowStore struct {
	*store.DB
	delay time.Duration
}

func (s slowStore) InsertBatch(ctx context.Context, b *store.Batch) (store.Result, error) {
	time.Sleep(s.delay)
	return s.DB.InsertBatch(ctx, b)
}

// TestKubeAPIServerWebhookBackend drives the sink with kube-apiserver's
// audit webhook backend and checks each of the sink's answers against
// what the backend does with it, as docs/audit.md states.
func TestKubeAPIServerWebhookBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for kube-apiserver's retries (Retry-After is whole seconds)")
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a body over the budget is answered 429 and retried until stored", func(t *testing.T) {
			db := openStore(t, "")
			g := auditgen.New(80, time.Now(), time.Millisecond)
			batches := make([][]*auditinternal.Event, 6)
			for i := range batches {
				batches[i] = internalEvents(t, g, 300, nil)
			}
			// Room for about one and a half batches (300 events ≈ 320 KB).
			h := newSink(t, sink.Options{Store: slowStore{db, 200 * time.Millisecond}, MaxBodyBytes: 400 << 10, MaxInFlightBytes: 500 << 10,
				BudgetWait: 10 * time.Millisecond})
			rec := &statusRecorder{h: h}
			srv := httptest.NewTLSServer(rec)
			defer srv.Close()
			b := apiserverBackend(t, srv, 100*time.Millisecond)
			var wg sync.WaitGroup
			ok := make([]bool, len(batches))
			for i, evs := range batches {
				wg.Go(func() { ok[i] = b.ProcessEvents(evs...) })
			}
			wg.Wait()
			if slices.Contains(ok, false) {
				t.Fatalf("batches delivered: %v; answers %v", ok, rec.seen())
			}
			if !slices.Contains(rec.seen(), http.StatusTooManyRequests) {
				t.Fatalf("answers %v: the budget was never exceeded, the test shows nothing", rec.seen())
			}
			if n := count(t, db); n != 6*300 {
				t.Fatalf("stored %d events, want %d", n, 6*300)
			}
		}},
		{"a stalled store is answered 503 and the batches retried: none lost, none doubled", func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "audit.db")
			db, err := store.Open(context.Background(), "sqlite3", file)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			g := auditgen.New(81, time.Now(), time.Millisecond)
			if _, err := db.Insert(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			h := newSink(t, sink.Options{Store: db, StoreTimeout: 100 * time.Millisecond, MaxInFlight: 8})
			rec := &statusRecorder{h: h}
			srv := httptest.NewTLSServer(rec)
			defer srv.Close()
			b := apiserverBackend(t, srv, 100*time.Millisecond)
			if !b.ProcessEvents(internalEvents(t, g, 10, nil)...) { // statements prepared before the stall
				t.Fatal("first batch not delivered")
			}
			release := lockSQLite(t, file)
			var wg sync.WaitGroup
			ok := make([]bool, 4)
			for i := range ok {
				evs := internalEvents(t, g, 200, nil)
				wg.Go(func() { ok[i] = b.ProcessEvents(evs...) })
			}
			time.Sleep(time.Second)
			release()
			wg.Wait()
			if slices.Contains(ok, false) {
				t.Fatalf("batches delivered: %v; answers %v", ok, rec.seen())
			}
			if !slices.Contains(rec.seen(), http.StatusServiceUnavailable) {
				t.Fatalf("answers %v: the store never stalled a batch past its timeout", rec.seen())
			}
			ids, err := db.AuditIDs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for id, n := range ids {
				if n != 1 {
					t.Errorf("%s stored %d times", id, n)
				}
			}
			if len(ids) != 10+4*200 {
				t.Fatalf("stored %d events, want %d", len(ids), 10+4*200)
			}
		}},
		{"a malformed batch is answered 400: the backend tries it 5 times in all, then drops it", func(t *testing.T) {
			db := openStore(t, "")
			rec := &statusRecorder{h: newSink(t, sink.Options{Store: db})}
			srv := httptest.NewTLSServer(rec)
			defer srv.Close()
			b := apiserverBackend(t, srv, 10*time.Millisecond)
			evs := internalEvents(t, auditgen.New(82, time.Now(), time.Millisecond), 5, func(e *auditv1.Event) { e.AuditID = "" })
			if b.ProcessEvents(evs...) {
				t.Fatal("a batch the sink refuses was reported delivered")
			}
			if got := rec.seen(); !slices.Equal(got, []int{400, 400, 400, 400, 400}) {
				t.Fatalf("answers %v, want five 400s", got)
			}
			if n := count(t, db); n != 0 {
				t.Fatalf("stored %d", n)
			}
		}},
		{"a body over the cap is answered 413 before it is read: tried 5 times, then dropped", func(t *testing.T) {
			db := openStore(t, "")
			rec := &statusRecorder{h: newSink(t, sink.Options{Store: db, MaxBodyBytes: 16 << 10})}
			srv := httptest.NewTLSServer(rec)
			defer srv.Close()
			b := apiserverBackend(t, srv, 10*time.Millisecond)
			if b.ProcessEvents(internalEvents(t, auditgen.New(83, time.Now(), time.Millisecond), 100, nil)...) {
				t.Fatal("a batch over the cap was reported delivered")
			}
			if got := rec.seen(); !slices.Equal(got, []int{413, 413, 413, 413, 413}) {
				t.Fatalf("answers %v, want five 413s", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
