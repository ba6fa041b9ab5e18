package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// keyCache is the provider's JWKS for subject tokens of the token
// exchange grant (oidc.KeySet). It is fetched once, then again only when
// a token names a key id it does not hold (a key rotation), at most once
// per refetchInterval, or when it is older than maxAge. A flood of tokens
// with made-up key ids therefore costs the provider one request per
// interval, not one per token; gatehouse_connector_jwks_fetches_total
// counts the fetches.
type keyCache struct {
	url     string
	client  *http.Client
	algs    []jose.SignatureAlgorithm
	now     func() time.Time
	fetches prometheus.Counter
	logger  *slog.Logger

	// fetchMu is held by the one request fetching the keys. Requests with
	// a known key never wait for it; requests with an unknown key do not
	// either (they are refused while a fetch is under way), so a provider
	// whose JWKS endpoint hangs stalls only the first fetch, not the
	// token endpoint.
	fetchMu sync.Mutex

	mu        sync.RWMutex
	keys      jose.JSONWebKeySet
	fetchedAt time.Time // zero: never fetched successfully
	triedAt   time.Time // last fetch attempt
}

const (
	jwksRefetchInterval = 10 * time.Second
	jwksMaxAge          = time.Hour
	jwksMaxBytes        = 1 << 20
	jwksFetchTimeout    = 10 * time.Second
)

// errUnknownKey: the token names a key the provider does not publish.
var errUnknownKey = errors.New("the token is signed with a key the provider does not publish (unknown kid)")

func (k *keyCache) times() (fetched, tried time.Time) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.fetchedAt, k.triedAt
}

// ensure fetches the keys if they never were, and refreshes them when
// they are older than maxAge (keeping them if the provider cannot be
// reached).
func (k *keyCache) ensure(ctx context.Context) error {
	fetched, tried := k.times()
	now := k.now()
	switch {
	case !fetched.IsZero() && now.Sub(fetched) < jwksMaxAge:
		return nil
	case !fetched.IsZero():
		// Stale: one request refreshes them, at most once per interval;
		// the others go on with the set they have.
		if now.Sub(tried) < jwksRefetchInterval || !k.fetchMu.TryLock() {
			return nil
		}
		defer k.fetchMu.Unlock()
		if err := k.fetch(ctx); err != nil {
			// The keys we hold are still the provider's; keep them.
			k.logger.Warn("the provider's keys could not be refreshed; using the ones fetched before", "fetched", fetched, "err", err)
		}
		return nil
	}
	// Never fetched: one request fetches; the others do not queue behind
	// it (each would hold one of the token endpoint's slots).
	if !k.fetchMu.TryLock() {
		return fmt.Errorf("oidc: the provider's keys at %s are being fetched; retry", k.url)
	}
	defer k.fetchMu.Unlock()
	fetched, tried = k.times()
	if !fetched.IsZero() {
		return nil // fetched meanwhile
	}
	if !tried.IsZero() && k.now().Sub(tried) < jwksRefetchInterval {
		return fmt.Errorf("oidc: the provider's keys at %s could not be fetched; retrying in at most %s", k.url, jwksRefetchInterval)
	}
	return k.fetch(ctx)
}

// fetch reads the JWKS; the caller holds fetchMu.
func (k *keyCache) fetch(ctx context.Context) error {
	k.mu.Lock()
	k.triedAt = k.now()
	k.mu.Unlock()
	k.fetches.Inc()
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("oidc: jwks: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("oidc: fetch the provider's keys from %s: %w", k.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes))
	if err != nil {
		return fmt.Errorf("oidc: read the provider's keys from %s: %w", k.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oidc: fetch the provider's keys from %s: %s", k.url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("oidc: the provider's keys at %s are not a JWKS: %w", k.url, err)
	}
	k.mu.Lock()
	k.keys, k.fetchedAt = set, k.now()
	k.mu.Unlock()
	return nil
}

// lookup returns the keys that match kid, refetching once when none does,
// the last attempt is older than the refetch interval, and no other
// request is fetching.
func (k *keyCache) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if found := k.match(kid); len(found) > 0 {
		return found, nil
	}
	if _, tried := k.times(); k.now().Sub(tried) < jwksRefetchInterval || !k.fetchMu.TryLock() {
		return nil, errUnknownKey
	}
	defer k.fetchMu.Unlock()
	if _, tried := k.times(); k.now().Sub(tried) >= jwksRefetchInterval {
		if err := k.fetch(ctx); err != nil {
			return nil, err
		}
	}
	if found := k.match(kid); len(found) > 0 {
		return found, nil
	}
	return nil, errUnknownKey
}

func (k *keyCache) match(kid string) []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if kid != "" {
		return k.keys.Key(kid)
	}
	// No kid: any published signing key may be the one.
	var out []jose.JSONWebKey
	for _, key := range k.keys.Keys {
		if key.Use == "" || key.Use == "sig" {
			out = append(out, key)
		}
	}
	return out
}

// VerifySignature implements oidc.KeySet.
func (k *keyCache) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed or disallowed algorithm: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("the token must have exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	keys, err := k.lookup(ctx, hdr.KeyID)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue // a key published for another algorithm
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("bad signature")
}

// Metrics are the oidc connectors' Prometheus metrics.
type Metrics struct {
	jwksFetches *prometheus.CounterVec
}

// NewMetrics creates and registers gatehouse_connector_jwks_fetches_total
// {connector} on reg (nil: not registered). Several connectors may share
// one registry: a second call returns the counter already registered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_connector_jwks_fetches_total",
		Help: "Fetches of an oidc connector's upstream JWKS for token exchange (once per key rotation, not per request).",
	}, []string{"connector"})}
	if reg != nil {
		if err := reg.Register(m.jwksFetches); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
					m.jwksFetches = existing
				}
			}
		}
	}
	return m
}
