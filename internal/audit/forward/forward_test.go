package forward_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/forward"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// destination is a webhook that fails until up is set.
type destination struct {
	up   atomic.Bool
	mu   sync.Mutex
	got  []string
	seen chan struct{}
}

func (d *destination) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer fwd-token" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if !d.up.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	d.got = append(d.got, string(b))
	d.mu.Unlock()
	select {
	case d.seen <- struct{}{}:
	default:
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailingDestinationQueuesBoundedAndDrains(t *testing.T) {
	d := &destination{seen: make(chan struct{}, 1)}
	srv := httptest.NewServer(d)
	defer srv.Close()
	dir := t.TempDir()
	m := metrics.New(nil)
	dest := forward.Destination{Name: "falco", URL: srv.URL, BearerToken: "fwd-token", QueueDir: dir, MaxQueueBytes: 10 * 100}
	opts := forward.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Metrics: m}
	f, err := forward.New([]forward.Destination{dest}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()

	body := func(i int) []byte { return fmt.Appendf(nil, "%-100d", i)[:100] }
	for i := range 15 { // room for 10
		f.Enqueue(body(i))
	}
	if got := f.Depth("falco"); got != 10 {
		t.Fatalf("queue depth %d, want 10 (bounded)", got)
	}
	if got := testutil.ToFloat64(m.Forwarded.WithLabelValues("falco", "dropped")); got != 5 {
		t.Errorf("dropped = %v, want 5", got)
	}
	waitFor(t, "retries", func() bool { return testutil.ToFloat64(m.Forwarded.WithLabelValues("falco", "retry")) >= 3 })
	if got := testutil.ToFloat64(m.QueueDepth.WithLabelValues("falco")); got != 10 {
		t.Errorf("queue depth gauge %v, want 10", got)
	}

	// Restart: a new forwarder over the same directory keeps the queue.
	cancel()
	<-done
	// A request the first forwarder gave up on (cancelled) may still be on
	// its way to the server: delivery is at least once. Close waits for
	// such requests (still answered 503) before the destination comes up,
	// so that the count below is of the second forwarder's deliveries.
	srv.Close()
	srv = httptest.NewServer(d)
	defer srv.Close()
	dest.URL = srv.URL
	f, err = forward.New([]forward.Destination{dest}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Depth("falco"); got != 10 {
		t.Fatalf("after restart: queue depth %d, want 10", got)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)

	d.up.Store(true)
	waitFor(t, "the queue to drain", func() bool { return f.Depth("falco") == 0 })
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) != 10 {
		t.Fatalf("destination got %d batches, want 10", len(d.got))
	}
	for i, b := range d.got {
		if b != string(body(i)) {
			t.Errorf("batch %d out of order: %q", i, b)
		}
	}
	if got := testutil.ToFloat64(m.QueueBytes.WithLabelValues("falco")); got != 0 {
		t.Errorf("queue bytes gauge %v after draining", got)
	}
}

func TestRefusedBatchIsDroppedNotRetriedForever(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "bad batch", 400)
	}))
	defer srv.Close()
	m := metrics.New(nil)
	f, err := forward.New([]forward.Destination{{Name: "siem", URL: srv.URL, QueueDir: t.TempDir()}}, forward.Options{Metrics: m, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	f.Enqueue([]byte("{}"))
	waitFor(t, "the refusal", func() bool { return f.Depth("siem") == 0 })
	if calls.Load() != 1 || testutil.ToFloat64(m.Forwarded.WithLabelValues("siem", "rejected")) != 1 {
		t.Errorf("calls %d, rejected %v", calls.Load(), testutil.ToFloat64(m.Forwarded.WithLabelValues("siem", "rejected")))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		d    []forward.Destination
	}{
		{"no url", []forward.Destination{{Name: "a", QueueDir: t.TempDir()}}},
		{"no queue dir", []forward.Destination{{Name: "a", URL: "http://x"}}},
		{"duplicate name", []forward.Destination{{Name: "a", URL: "http://x", QueueDir: t.TempDir()}, {Name: "a", URL: "http://y", QueueDir: t.TempDir()}}},
		{"missing CA file", []forward.Destination{{Name: "a", URL: "https://x", QueueDir: t.TempDir(), CAFile: "/nonexistent.pem"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := forward.New(tt.d, forward.Options{}); err == nil {
				t.Error("want an error")
			}
		})
	}
}
