// Package dexcompat is Dex's storage model (v2.45) as gatehouse reads it:
// the objects a Dex installation keeps (refresh tokens, offline sessions,
// passwords, signing keys, clients, connectors) and their translation
// into gatehouse's storage values. The kubernetes backend uses it to read
// a Dex installation's custom resources in place; `gatehouse migrate
// from-dex` uses it to copy a Dex database into gatehouse's storage.
//
// Dex keeps a refresh token's secret in the clear (RefreshToken.Token) and
// hands clients base64url(protobuf{refresh_id, token}). gatehouse keeps
// only SHA-256 of a secret, so a Dex token becomes a refresh family whose
// ID is Dex's refresh id and whose current hash is SHA-256 of Dex's
// secret: the token a client holds keeps working, and the first refresh
// replaces it with a gatehouse token.
package dexcompat

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// Claims are the identity a Dex refresh token carries.
type Claims struct {
	UserID            string
	Username          string
	PreferredUsername string
	Email             string
	EmailVerified     bool
	Groups            []string
}

// RefreshToken is Dex's storage.RefreshToken.
type RefreshToken struct {
	ID string
	// Token is the current secret; ObsoleteToken the one it replaced,
	// accepted again within Dex's reuse interval.
	Token         string
	ObsoleteToken string
	CreatedAt     time.Time
	LastUsed      time.Time
	ClientID      string
	ConnectorID   string
	// ConnectorData is the connector's state; Dex moved it to the
	// offline session, so it is empty once the token was refreshed.
	ConnectorData []byte
	Scopes        []string
	Nonce         string
	Claims        Claims
}

// OfflineSession is Dex's storage.OfflineSessions: per user and
// connector, the refresh token of each client and the connector's state.
type OfflineSession struct {
	UserID        string
	ConnID        string
	Refresh       map[string]RefreshTokenRef
	ConnectorData []byte
}

// RefreshTokenRef is an OfflineSession's pointer to a refresh token.
type RefreshTokenRef struct {
	ID        string    `json:"ID"`
	ClientID  string    `json:"ClientID"`
	CreatedAt time.Time `json:"CreatedAt"`
	LastUsed  time.Time `json:"LastUsed"`
}

// Password is Dex's storage.Password (the password database).
type Password struct {
	Email             string
	Hash              []byte
	Username          string
	UserID            string
	Name              string
	PreferredUsername string
	EmailVerified     *bool
	Groups            []string
}

// Keys is Dex's storage.Keys: JWKs as JSON.
type Keys struct {
	// SigningKey is the private JWK (JSON); SigningKeyPub its public half.
	SigningKey       json.RawMessage
	SigningKeyPub    json.RawMessage
	VerificationKeys []VerificationKey
	NextRotation     time.Time
}

// VerificationKey is a rotated-out public key, as Dex stores it.
type VerificationKey struct {
	PublicKey json.RawMessage `json:"publicKey"`
	Expiry    time.Time       `json:"expiry"`
}

// Client is an OAuth2 client Dex kept in its storage (created through
// Dex's gRPC API; static clients live in the config file).
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
	TrustedPeers []string
	Public       bool
	Name         string
	LogoURL      string
}

// Connector is a connector Dex kept in its storage: its config is the
// JSON of the config block.
type Connector struct {
	ID     string
	Type   string
	Name   string
	Config []byte
}

// ImportedGeneration is the Generation of a family translated from a Dex
// refresh token that gatehouse has not rotated yet: the issuer's first
// rotation makes it 1. `migrate from-dex` run again refreshes such a
// family from Dex (Dex may have rotated the token since) and leaves any
// other alone.
const ImportedGeneration = 0

// Family translates a Dex refresh token into a refresh family.
// sessionConnectorData is the offline session's connector data, used when
// the token has none of its own (Dex's rule). The family's rotation key
// is new and random.
func Family(t RefreshToken, sessionConnectorData []byte) (storage.RefreshFamily, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return storage.RefreshFamily{}, fmt.Errorf("dexcompat: rotation key: %w", err)
	}
	data := t.ConnectorData
	if len(data) == 0 {
		data = sessionConnectorData
	}
	f := storage.RefreshFamily{
		ID: t.ID, ClientID: t.ClientID, ConnectorID: t.ConnectorID, Scopes: t.Scopes, Nonce: t.Nonce,
		Claims: storage.Claims{
			UserID: t.Claims.UserID, Username: t.Claims.Username, PreferredUsername: t.Claims.PreferredUsername,
			Email: t.Claims.Email, EmailVerified: t.Claims.EmailVerified, Groups: t.Claims.Groups,
		},
		ConnectorData: data,
		// Dex refreshes the identity upstream at every rotation, which is
		// when it sets LastUsed.
		ClaimsRefreshedAt: t.LastUsed,
		// Dex does not keep the login time; the token was created at the
		// code exchange, moments after it.
		AuthTime:    t.CreatedAt,
		Generation:  ImportedGeneration,
		CurrentHash: SecretHash(t.Token),
		RotationKey: key,
		CreatedAt:   t.CreatedAt,
		LastUsed:    t.LastUsed,
	}
	if t.ObsoleteToken != "" {
		// Dex accepts the previous secret again within its reuse
		// interval, counted from LastUsed (when it rotated).
		f.PreviousHash, f.RotatedAt = SecretHash(t.ObsoleteToken), t.LastUsed
	}
	return f, nil
}

// SecretHash is what gatehouse stores of a refresh secret: SHA-256.
func SecretHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Password translates a Dex password. gatehouse's password database keeps
// email, hash, username and user id; that is all Dex's API can set.
func (p Password) Storage() storage.Password {
	return storage.Password{Email: p.Email, Hash: p.Hash, Username: p.Username, UserID: p.UserID}
}

// Storage translates Dex's key set: Dex's private JWK becomes the
// signing key (gatehouse signs both ID and access tokens with it until its
// next rotation), Dex's verification keys stay published until their
// expiry.
func (k Keys) Storage() (storage.Keys, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(k.SigningKey); err != nil {
		return storage.Keys{}, fmt.Errorf("dexcompat: Dex's signing key: %w", err)
	}
	if jwk.IsPublic() {
		return storage.Keys{}, fmt.Errorf("dexcompat: Dex's signing key %q holds no private key", jwk.KeyID)
	}
	out := storage.Keys{SigningKey: append([]byte(nil), k.SigningKey...), NextRotation: k.NextRotation}
	for _, v := range k.VerificationKeys {
		out.VerificationKeys = append(out.VerificationKeys, storage.VerificationKey{PublicKey: append([]byte(nil), v.PublicKey...), Expiry: v.Expiry})
	}
	return out, nil
}

// KeyID returns the "kid" of a JWK in JSON, or "" if it is not one.
func KeyID(jwk []byte) string {
	var k struct {
		KeyID string `json:"kid"`
	}
	if json.Unmarshal(jwk, &k) != nil {
		return ""
	}
	return k.KeyID
}

// Snapshot is everything gatehouse copies from a Dex installation.
type Snapshot struct {
	Clients         []Client
	Connectors      []Connector
	Passwords       []Password
	Keys            *Keys // nil: Dex never generated keys
	RefreshTokens   []RefreshToken
	OfflineSessions []OfflineSession
}

// Sort orders every list by its key, so that reports and copies are in a
// stable order.
func (s *Snapshot) Sort() {
	slices.SortFunc(s.Clients, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Connectors, func(a, b Connector) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Passwords, func(a, b Password) int { return strings.Compare(a.Email, b.Email) })
	slices.SortFunc(s.RefreshTokens, func(a, b RefreshToken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.OfflineSessions, func(a, b OfflineSession) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.ConnID, b.ConnID))
	})
}

// SessionConnectorData returns the connector data of the offline session
// of user on connector, or nil.
func (s *Snapshot) SessionConnectorData(userID, connID string) []byte {
	for _, o := range s.OfflineSessions {
		if o.UserID == userID && o.ConnID == connID {
			return o.ConnectorData
		}
	}
	return nil
}
