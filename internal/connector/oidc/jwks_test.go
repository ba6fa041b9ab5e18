package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestKeyCache: fetched once, again for an unknown kid only after the
// refetch interval, and a stale set is kept when the provider is down.
func TestKeyCache(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var down, hang atomic.Bool
	var hits atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if hang.Load() {
			entered <- struct{}{}
			<-release
		}
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer ts.Close()
	now := time.Now()
	clock := func() time.Time { return now }
	fetches := prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})
	k := &keyCache{url: ts.URL, client: ts.Client(), algs: []jose.SignatureAlgorithm{jose.ES256}, now: clock, fetches: fetches, logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()

	if err := k.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := k.lookup(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.lookup(ctx, "k2"); !errors.Is(err, errUnknownKey) || hits.Load() != 1 {
		t.Fatalf("unknown kid right after a fetch: %v, %d fetches", err, hits.Load())
	}
	now = now.Add(11 * time.Second)
	for range 3 {
		if _, err := k.lookup(ctx, "k2"); !errors.Is(err, errUnknownKey) {
			t.Fatal(err)
		}
	}
	if hits.Load() != 2 || testutil.ToFloat64(fetches) != 2 {
		t.Fatalf("%d fetches (metric %v), want 2: one refetch per interval", hits.Load(), testutil.ToFloat64(fetches))
	}

	// A JWKS endpoint that hangs: while one request waits for it, the
	// others are answered at once, known keys verified, unknown refused.
	now = now.Add(11 * time.Second)
	hang.Store(true)
	done := make(chan error)
	go func() {
		_, err := k.lookup(ctx, "k3")
		done <- err
	}()
	<-entered
	if _, err := k.lookup(ctx, "k1"); err != nil {
		t.Fatalf("known key during a hanging fetch: %v", err)
	}
	if _, err := k.lookup(ctx, "k4"); !errors.Is(err, errUnknownKey) {
		t.Fatalf("unknown key during a hanging fetch: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, errUnknownKey) {
		t.Fatalf("the fetching request: %v", err)
	}
	hang.Store(false)

	down.Store(true)
	now = now.Add(2 * time.Hour)
	if err := k.ensure(ctx); err != nil {
		t.Fatalf("stale keys with the provider down: %v, want the old keys kept", err)
	}
	if _, err := k.lookup(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	fresh := &keyCache{url: ts.URL, client: ts.Client(), algs: k.algs, now: clock, fetches: fetches, logger: k.logger}
	if err := fresh.ensure(ctx); err == nil {
		t.Fatal("no keys ever fetched and the provider down: want an error")
	}
}
