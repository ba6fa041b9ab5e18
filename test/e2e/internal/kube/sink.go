package kube

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// Sink is gatehouse's real audit webhook handler on an HTTPS test server,
// keeping what it accepts in memory.
type Sink struct {
	// URL is the server root; the handler is at URL+"/audit/webhook".
	URL string
	// CAPEM is the server certificate (self-signed, usable as the CA).
	CAPEM []byte
	// Token is the bearer token the sink accepts.
	Token string

	mu     sync.Mutex
	events []event.Event
}

// InsertBatch implements sink.Store.
func (s *Sink) InsertBatch(_ context.Context, b *store.Batch) (store.Result, error) {
	events, err := b.Events()
	if err != nil {
		return store.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
	return store.Result{Inserted: len(events)}, nil
}

// Events returns a copy of what the sink has accepted so far.
func (s *Sink) Events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

// NewSink returns a sink and its handler, for mounting at /audit/webhook
// on another server (the issuer's, as in production).
func NewSink(t testing.TB, token string) (*Sink, http.Handler) {
	t.Helper()
	s := &Sink{Token: token}
	h, err := sink.New(sink.Options{Store: s, BearerTokens: []string{token}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s, h
}

// StartSink runs the sink on its own HTTPS server until t ends.
func StartSink(t testing.TB, token string) *Sink {
	t.Helper()
	s, h := NewSink(t, token)
	mux := http.NewServeMux()
	mux.Handle("/audit/webhook", h)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return s
}
