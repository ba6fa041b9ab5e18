package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// memoryStore keeps what gatehouse's real sink accepts.
type memoryStore struct {
	mu     sync.Mutex
	events []event.Event
}

func (s *memoryStore) InsertBatch(_ context.Context, b *store.Batch) (store.Result, error) {
	evs, err := b.Events()
	if err != nil {
		return store.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	return store.Result{Inserted: len(evs)}, nil
}

func (s *memoryStore) all() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

// TestAuditToSink sends the proxy's events through kube-apiserver's
// webhook backend (buffered) to gatehouse's own audit sink, configured
// by a kubeconfig as `gatehouse cluster render` writes it: they arrive
// with the person, the impersonated user and the cluster as source.
func TestAuditToSink(t *testing.T) {
	st := &memoryStore{}
	h, err := sink.New(sink.Options{Store: st, BearerTokens: []string{"sink-token"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/audit/webhook", h)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sink-ca.pem"), pemCert(srv.Certificate().Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	// A relative CA path, as next to the rendered files.
	cfg := filepath.Join(dir, "audit-webhook.kubeconfig")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster: {server: %s/audit/webhook, certificate-authority: sink-ca.pem}
users:
- name: kube-apiserver
  user: {token: sink-token}
contexts:
- name: default
  context: {cluster: gatehouse, user: kube-apiserver}
current-context: default
`, srv.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	backend, err := NewAuditBackend(AuditOptions{WebhookConfig: cfg, Source: "prod-eu", MaxBatchWait: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	if err := backend.Run(stop); err != nil {
		t.Fatal(err)
	}

	p := newTestProxy(t, aliceMayImpersonate, "")
	// The same chain with the real backend instead of the memory sink.
	chain := p.chain
	chain.AuditSink = backend
	ps := httptest.NewTLSServer(chain.Handler())
	defer ps.Close()
	req, _ := http.NewRequest(http.MethodGet, ps.URL+"/api/v1/namespaces/web/pods", nil)
	req.Header.Set("Authorization", "Bearer "+p.iss.token(t, map[string]any{"preferred_username": "alice", "groups": []string{"exampleorg:infra-team"}}))
	req.Header.Set("Impersonate-User", "jane")
	resp, err := ps.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	defer func() { close(stop); backend.Shutdown() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var complete *event.Event
		for _, e := range st.all() {
			if e.Verb == "list" && e.Resource == "pods" && e.Stage == "ResponseComplete" {
				complete = &e
			}
		}
		if complete != nil {
			if complete.User != "oidc:alice" || complete.Source != "prod-eu" || complete.Code != 200 || !strings.Contains(string(complete.Raw), `"impersonatedUser":{"username":"jane"`) {
				t.Errorf("sink event: user %q source %q code %d raw %s", complete.User, complete.Source, complete.Code, complete.Raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ResponseComplete list pods event at the sink: %+v", st.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
