package audit_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/forward"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestServiceMountsSinkPageAndForwarding(t *testing.T) {
	got := make(chan []byte, 10)
	falco := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer falco.Close()
	reg := prometheus.NewRegistry()
	svc, err := audit.New(context.Background(), audit.Options{
		StorageType:  "sqlite3",
		StorageDSN:   filepath.Join(t.TempDir(), "audit.db"),
		BearerTokens: []string{"tok"},
		MaxAge:       time.Hour,
		ViewerGroups: []string{"infra"},
		Authenticate: func(r *http.Request) (audit.Viewer, bool) {
			return audit.Viewer{User: "alice", Groups: []string{"infra"}}, r.Header.Get("X-Test-Login") == "yes"
		},
		Forward:  []forward.Destination{{Name: "falco", URL: falco.URL, QueueDir: t.TempDir()}},
		Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	body := event.EncodeList(auditgen.New(1, time.Now(), time.Millisecond).Batch(10))
	req, _ := http.NewRequest("POST", srv.URL+"/audit/webhook", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, body) {
			t.Error("forwarded batch differs")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("batch not forwarded")
	}
	for header, want := range map[string]int{"yes": 200, "no": 401} {
		req, _ := http.NewRequest("GET", srv.URL+"/audit", nil)
		req.Header.Set("X-Test-Login", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("page with login=%s: %d, want %d", header, resp.StatusCode, want)
		}
		if want == 200 && strings.Count(string(page), `class="event"`) != 10 {
			t.Errorf("page shows %d events, want 10", strings.Count(string(page), `class="event"`))
		}
	}
	if n := testutil.ToFloat64(prometheusCounter(t, reg, "gatehouse_audit_events_stored_total")); n != 10 {
		t.Errorf("stored metric %v", n)
	}
}

func prometheusCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return mf.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func TestNewRefusesUnauthenticatedSink(t *testing.T) {
	_, err := audit.New(context.Background(), audit.Options{StorageType: "memory"})
	if err == nil {
		t.Fatal("a sink without tokens or client CA must not start")
	}
}
