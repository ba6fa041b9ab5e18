// Package keys manages the issuer's signing keys: it generates them,
// rotates them on a schedule through storage (so that with several
// replicas exactly one rotates), publishes the JWKS, and signs tokens.
//
// Every replica keeps the key set it last read in memory and re-reads it
// when a rotation is due or after a short refresh interval. A replica that
// still signs with the previous key is harmless: the previous key stays in
// the published set until every token it signed has expired.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// Algorithm is a JWS signing algorithm the manager can generate keys for.
type Algorithm string

// Supported algorithms. RS256 is the default because kube-apiserver's
// --oidc-signing-algs defaults to it.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
)

// Options configure a Manager.
type Options struct {
	Storage storage.Storage
	// Algorithm of newly generated keys (default RS256).
	Algorithm Algorithm
	// RotationPeriod is how long a key signs before the next one takes
	// over (Dex's expiry.signingKeys, default 6h).
	RotationPeriod time.Duration
	// TokenLifetime is the longest lifetime of any token signed with a
	// key (the ID token expiry); a rotated-out key is published for this
	// long after it stopped signing.
	TokenLifetime time.Duration
	// RefreshInterval bounds how stale a replica's in-memory copy may be
	// (default 10s).
	RefreshInterval time.Duration
	Logger          *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Manager signs tokens with the current key and publishes the key set.
type Manager struct {
	opts Options

	mu       sync.RWMutex
	keys     storage.Keys
	signer   jose.Signer      // typ JWT (ID tokens)
	atSigner jose.Signer      // typ at+jwt (access tokens, RFC 9068)
	current  *jose.JSONWebKey // private
	jwks     []byte           // published JSON, cached
	pubset   jose.JSONWebKeySet
	expires  time.Time // earliest time the cached set must be re-read
}

// NewManager returns a manager; call Rotate (or Start) before signing.
func NewManager(opts Options) (*Manager, error) {
	if opts.Storage == nil {
		return nil, errors.New("keys: no storage")
	}
	if opts.Algorithm == "" {
		opts.Algorithm = RS256
	}
	if opts.Algorithm != RS256 && opts.Algorithm != ES256 {
		return nil, fmt.Errorf("keys: unsupported algorithm %q (use RS256 or ES256)", opts.Algorithm)
	}
	if opts.RotationPeriod <= 0 {
		opts.RotationPeriod = 6 * time.Hour
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{opts: opts}, nil
}

// Start rotates now if needed and then keeps rotating in the background
// until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.Rotate(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(m.checkEvery())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.Rotate(ctx); err != nil && ctx.Err() == nil {
					m.opts.Logger.Error("signing key rotation failed", "err", err)
				}
			}
		}
	}()
	return nil
}

func (m *Manager) checkEvery() time.Duration {
	d := m.opts.RotationPeriod / 20
	if d > time.Minute {
		d = time.Minute
	}
	if d < time.Second {
		d = time.Second
	}
	return d
}

// Rotate replaces the signing key if the stored set is missing or due,
// then reloads. With several replicas, the storage's compare-and-swap
// makes exactly one of them win; the others load the winner's set.
func (m *Manager) Rotate(ctx context.Context) error {
	now := m.opts.Now()
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := m.opts.Storage.GetKeys(ctx)
		var version int64
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return fmt.Errorf("keys: load: %w", err)
		default:
			version = cur.Version
			if now.Before(cur.NextRotation) && len(cur.SigningKey) > 0 {
				return m.install(cur)
			}
		}
		next, err := m.rotated(cur, version, now)
		if err != nil {
			return err
		}
		err = m.opts.Storage.UpdateKeys(ctx, version, next)
		if errors.Is(err, storage.ErrConflict) {
			continue // another replica rotated first: load its set
		}
		if err != nil {
			return fmt.Errorf("keys: store rotated keys: %w", err)
		}
		next.Version = version + 1
		m.opts.Logger.Info("rotated signing key", "algorithm", m.opts.Algorithm, "next_rotation", next.NextRotation)
		return m.install(next)
	}
	return errors.New("keys: rotation kept conflicting with other replicas")
}

// rotated builds the key set that follows cur. The stored signing key is
// a private JWK set: the ID token key (the configured algorithm) and, when
// that is RS256, an ES256 key for access tokens. Access tokens are only
// verified by gatehouse itself, so they need not pay for a second RSA
// signature on every refresh (the ID token must stay RS256 for
// kube-apiserver's default --oidc-signing-algs).
func (m *Manager) rotated(cur storage.Keys, version int64, now time.Time) (storage.Keys, error) {
	priv, err := generate(m.opts.Algorithm)
	if err != nil {
		return storage.Keys{}, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*priv}}
	if m.opts.Algorithm != ES256 {
		at, err := generate(ES256)
		if err != nil {
			return storage.Keys{}, err
		}
		set.Keys = append(set.Keys, *at)
	}
	privJSON, err := json.Marshal(set)
	if err != nil {
		return storage.Keys{}, fmt.Errorf("keys: encode key: %w", err)
	}
	next := storage.Keys{SigningKey: privJSON, NextRotation: now.Add(m.opts.RotationPeriod)}
	for _, vk := range cur.VerificationKeys {
		if vk.Expiry.After(now) {
			next.VerificationKeys = append(next.VerificationKeys, vk)
		}
	}
	if version > 0 && len(cur.SigningKey) > 0 {
		old, err := decodePrivate(cur.SigningKey)
		if err != nil {
			return storage.Keys{}, err
		}
		for _, k := range old {
			pub, err := k.Public().MarshalJSON()
			if err != nil {
				return storage.Keys{}, fmt.Errorf("keys: encode public key: %w", err)
			}
			// Tokens signed up to now stay verifiable until they expire.
			// The old key may also still be in use by a replica that has
			// not reloaded yet, hence the extra refresh interval.
			next.VerificationKeys = append(next.VerificationKeys, storage.VerificationKey{
				PublicKey: pub,
				Expiry:    now.Add(m.opts.TokenLifetime + m.opts.RefreshInterval),
			})
		}
	}
	return next, nil
}

// decodePrivate reads the stored private keys: a JWK set, or a single
// JWK (the first format).
func decodePrivate(data []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err == nil && len(set.Keys) > 0 {
		return set.Keys, nil
	}
	var one jose.JSONWebKey
	if err := one.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("keys: decode stored signing key: %w", err)
	}
	return []jose.JSONWebKey{one}, nil
}

func generate(alg Algorithm) (*jose.JSONWebKey, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("keys: key id: %w", err)
	}
	return &jose.JSONWebKey{Key: key, KeyID: hex.EncodeToString(b[:]), Algorithm: string(alg), Use: "sig"}, nil
}

// install makes k the in-memory key set.
func (m *Manager) install(k storage.Keys) error {
	privs, err := decodePrivate(k.SigningKey)
	if err != nil {
		return err
	}
	for _, p := range privs {
		// go-jose does not precompute CRT values; without them every RSA
		// signature rebuilds and re-checks the key (8% of a refresh).
		if rk, ok := p.Key.(*rsa.PrivateKey); ok {
			rk.Precompute()
		}
	}
	priv, atKey := privs[0], privs[0]
	if len(privs) > 1 {
		atKey = privs[1]
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(priv.Algorithm), Key: &priv},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return fmt.Errorf("keys: signer: %w", err)
	}
	atSigner, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(atKey.Algorithm), Key: &atKey},
		(&jose.SignerOptions{}).WithType(TypeAccessToken),
	)
	if err != nil {
		return fmt.Errorf("keys: signer: %w", err)
	}
	set := jose.JSONWebKeySet{}
	for _, p := range privs {
		set.Keys = append(set.Keys, p.Public())
	}
	for _, vk := range k.VerificationKeys {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(vk.PublicKey); err != nil {
			return fmt.Errorf("keys: decode verification key: %w", err)
		}
		set.Keys = append(set.Keys, pub)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("keys: encode JWKS: %w", err)
	}
	now := m.opts.Now()
	expires := now.Add(m.opts.RefreshInterval)
	if k.NextRotation.Before(expires) {
		expires = k.NextRotation
	}
	m.mu.Lock()
	m.atSigner = atSigner
	m.keys, m.signer, m.current, m.jwks, m.pubset, m.expires = k, signer, &priv, jwks, set, expires
	m.mu.Unlock()
	return nil
}

// refreshIfStale re-reads storage when the cached set is older than the
// refresh interval or a rotation is due.
func (m *Manager) refreshIfStale(ctx context.Context) error {
	m.mu.RLock()
	fresh := m.signer != nil && m.opts.Now().Before(m.expires)
	m.mu.RUnlock()
	if fresh {
		return nil
	}
	return m.Rotate(ctx)
}

// JOSE "typ" header values.
const (
	TypeIDToken     = "JWT"
	TypeAccessToken = "at+jwt" // RFC 9068
)

// Sign signs payload (JSON claims) with the current key and returns the
// compact JWS. typ is TypeIDToken or TypeAccessToken.
func (m *Manager) Sign(ctx context.Context, payload []byte, typ string) (string, error) {
	if err := m.refreshIfStale(ctx); err != nil {
		// A stale but complete key set is better than failing: keep
		// signing with it while storage is unavailable.
		m.mu.RLock()
		ok := m.signer != nil
		m.mu.RUnlock()
		if !ok {
			return "", err
		}
		m.opts.Logger.Warn("could not refresh signing keys; using cached set", "err", err)
	}
	m.mu.RLock()
	signer := m.signer
	if typ == TypeAccessToken {
		signer = m.atSigner
	}
	m.mu.RUnlock()
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Algorithm returns the algorithm of the current signing key.
func (m *Manager) Algorithm() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.current == nil {
		return string(m.opts.Algorithm)
	}
	return m.current.Algorithm
}

// JWKS returns the published key set as JSON and how long clients may
// cache it.
func (m *Manager) JWKS(ctx context.Context) ([]byte, time.Duration, error) {
	if err := m.refreshIfStale(ctx); err != nil {
		m.mu.RLock()
		ok := m.jwks != nil
		m.mu.RUnlock()
		if !ok {
			return nil, 0, err
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	maxAge := m.keys.NextRotation.Sub(m.opts.Now())
	if maxAge < 0 {
		maxAge = 0
	}
	// Clients that cache the set past a rotation still verify new tokens
	// by refetching on an unknown kid; cap the hint anyway.
	if maxAge > time.Hour {
		maxAge = time.Hour
	}
	return m.jwks, maxAge, nil
}

// Verify checks a compact JWS signed by this issuer (with a key still
// published) and returns its payload and its "typ" header.
func (m *Manager) Verify(ctx context.Context, token string) (payload []byte, typ string, err error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, "", fmt.Errorf("keys: malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", errors.New("keys: token must have exactly one signature")
	}
	hdr := jws.Signatures[0].Protected
	if err := m.refreshIfStale(ctx); err != nil && !m.Ready() {
		return nil, "", err
	}
	m.mu.RLock()
	found := m.pubset.Key(hdr.KeyID)
	m.mu.RUnlock()
	if len(found) == 0 {
		return nil, "", errors.New("keys: token signed by an unknown key")
	}
	payload, err = jws.Verify(found[0])
	if err != nil {
		return nil, "", fmt.Errorf("keys: bad signature: %w", err)
	}
	t, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
	return payload, t, nil
}

// Ready reports whether a complete key set is loaded.
func (m *Manager) Ready() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.signer != nil
}
