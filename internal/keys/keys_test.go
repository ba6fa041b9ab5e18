package keys_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newManager(t *testing.T, store storage.Storage, c *clock, alg keys.Algorithm) *keys.Manager {
	t.Helper()
	m, err := keys.NewManager(keys.Options{Storage: store, Algorithm: alg, RotationPeriod: time.Hour, TokenLifetime: 2 * time.Hour, RefreshInterval: time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func kids(t *testing.T, m *keys.Manager) []string {
	t.Helper()
	data, _, err := m.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key: %s", k.KeyID)
		}
		out = append(out, k.KeyID)
	}
	return out
}

// TestRotationKeepsOldKeysUntilTokensExpire signs a token, rotates, and
// checks the token still verifies while it can be valid, and that the old
// key leaves the published set after that.
func TestRotationKeepsOldKeysUntilTokensExpire(t *testing.T) {
	for _, alg := range []keys.Algorithm{keys.RS256, keys.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			c := &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
			store := memory.New()
			m := newManager(t, store, c, alg)
			ctx := context.Background()
			if err := m.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			tok, err := m.Sign(ctx, []byte(`{"sub":"x"}`), keys.TypeIDToken)
			if err != nil {
				t.Fatal(err)
			}
			if m.Algorithm() != string(alg) {
				t.Fatalf("algorithm = %s", m.Algorithm())
			}
			first := kids(t, m)
			wantKeys := 2 // RS256 ID tokens + ES256 access tokens
			if alg == keys.ES256 {
				wantKeys = 1
			}
			if len(first) != wantKeys {
				t.Fatalf("initial JWKS has %d keys, want %d", len(first), wantKeys)
			}
			c.Add(61 * time.Minute) // past the rotation period
			if err := m.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			after := kids(t, m)
			if len(after) != 2*wantKeys || !slices.Contains(after, first[0]) || slices.Contains(first, after[0]) {
				t.Fatalf("after rotation JWKS = %v, want new keys + %v", after, first)
			}
			if _, _, err := m.Verify(ctx, tok); err != nil {
				t.Fatalf("token signed before rotation no longer verifies: %v", err)
			}
			c.Add(2*time.Hour + 2*time.Second) // the old key's tokens have expired
			if err := m.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, k := range kids(t, m) {
				if slices.Contains(first, k) {
					t.Fatal("expired verification key still published")
				}
			}
			if _, _, err := m.Verify(ctx, tok); err == nil {
				t.Fatal("token of a retired key still verifies")
			}
		})
	}
}

// TestReplicasRotateOnce runs several managers on one store, as replicas
// on one PostgreSQL: exactly one rotation happens and all of them publish
// the same complete set.
func TestReplicasRotateOnce(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	store := &countingStore{Storage: memory.New()}
	var managers []*keys.Manager
	for i := 0; i < 6; i++ {
		managers = append(managers, newManager(t, store, c, keys.RS256))
	}
	var wg sync.WaitGroup
	for _, m := range managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Rotate(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := store.updates.Load(); n != 1 {
		t.Fatalf("%d successful key updates for one due rotation, want 1", n)
	}
	want := kids(t, managers[0])
	for i, m := range managers {
		got := kids(t, m)
		if len(got) == 0 || got[0] != want[0] {
			t.Fatalf("replica %d publishes %v, replica 0 %v", i, got, want)
		}
	}
}

// countingStore counts successful UpdateKeys calls.
type countingStore struct {
	storage.Storage
	updates atomic.Int64
}

func (s *countingStore) UpdateKeys(ctx context.Context, v int64, k storage.Keys) error {
	err := s.Storage.UpdateKeys(ctx, v, k)
	if err == nil {
		s.updates.Add(1)
	}
	return err
}

func TestRefusesTokensItDidNotSign(t *testing.T) {
	c := &clock{t: time.Now()}
	a := newManager(t, memory.New(), c, keys.RS256)
	b := newManager(t, memory.New(), c, keys.RS256)
	ctx := context.Background()
	for _, m := range []*keys.Manager{a, b} {
		if err := m.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := b.Sign(ctx, []byte(`{}`), keys.TypeAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Verify(ctx, tok); err == nil {
		t.Fatal("verified a token signed by another issuer's key")
	}
	if _, typ, err := b.Verify(ctx, tok); err != nil || typ != keys.TypeAccessToken {
		t.Fatalf("own access token: typ=%q err=%v", typ, err)
	}
}
