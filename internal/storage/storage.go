// Package storage defines what the issuer keeps between requests and across
// restarts, and the errors every backend returns. Backends live in
// subpackages (sqlite, postgres, memory) and all pass the suite in
// storage/conformance.
//
// Storage knows nothing of OAuth: it keeps records and applies updates
// atomically. Secrets are never stored in the clear; callers store hashes.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors that every backend returns (possibly wrapped).
var (
	// ErrNotFound means the object does not exist or has expired.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists means an object with the same key exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict means a compare-and-swap lost against a concurrent writer.
	ErrConflict = errors.New("storage: conflict")
)

// Claims is what a connector said about a user at login, kept with every
// grant that issues tokens for that login.
type Claims struct {
	UserID            string   `json:"user_id"`
	Username          string   `json:"username"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	EmailVerified     bool     `json:"email_verified"`
	Groups            []string `json:"groups,omitempty"`
}

// PKCE is the code challenge an authorization request carried (RFC 7636).
type PKCE struct {
	CodeChallenge       string `json:"code_challenge,omitempty"`
	CodeChallengeMethod string `json:"code_challenge_method,omitempty"`
}

// AuthRequest is an authorization request in progress: created at /auth,
// completed by a connector login, consumed when the code is issued.
type AuthRequest struct {
	ID            string // random, unguessable; also the key in login URLs
	ClientID      string
	ResponseTypes []string
	Scopes        []string
	RedirectURI   string
	Nonce         string
	State         string
	PKCE          PKCE
	Prompt        string // space-separated OIDC prompt values
	MaxAge        int    // seconds; -1 when absent
	// HMACKey binds forms and the approval step to this request
	// (dexidp/dex CVE-2022-39222): a form carries an HMAC over the request
	// ID keyed with it.
	HMACKey []byte

	ConnectorID   string
	ConnectorData []byte // connector state between LoginURL and callback
	LoggedIn      bool
	Claims        Claims
	AuthTime      time.Time // when the user authenticated at the connector
	ClientIP      string

	Expiry time.Time
}

// AuthCode is an issued authorization code. Codes are single-use: a
// redeemed code is kept (until expiry) with the family it created, so a
// replay can revoke what the first redemption issued (RFC 6749 4.1.2).
type AuthCode struct {
	ID            string // SHA-256 of the code, hex
	ClientID      string
	RedirectURI   string
	Nonce         string
	Scopes        []string
	PKCE          PKCE
	ConnectorID   string
	ConnectorData []byte
	Claims        Claims
	AuthTime      time.Time
	Expiry        time.Time

	RedeemedAt time.Time // zero until redeemed
	FamilyID   string    // refresh family issued at redemption, if any
}

// RefreshFamily is one login session of one client (a laptop, a desktop):
// the chain of rotating refresh tokens that descend from one grant. A user
// may hold any number of families for one client.
//
// The current token is "<ID>.<secret>"; only SHA-256(secret) is stored. On
// rotation the previous hash is kept with the rotation time, so a token
// presented again inside the reuse interval gets the same successor, and
// outside it is a replay that revokes the family (RFC 9700 4.14.2).
type RefreshFamily struct {
	ID          string
	ClientID    string
	ConnectorID string
	Scopes      []string
	Nonce       string
	Claims      Claims
	// ConnectorData is the connector's opaque state for refreshing upstream.
	ConnectorData []byte
	// ClaimsRefreshedAt is when Claims were last fetched from upstream
	// (GitHub groups are fetched again at most once per interval).
	ClaimsRefreshedAt time.Time
	AuthTime          time.Time

	Generation   int64  // incremented on each rotation
	CurrentHash  []byte // SHA-256 of the current secret
	PreviousHash []byte // SHA-256 of the secret that was rotated out
	RotatedAt    time.Time
	// RotationKey derives the next secret from the presented one, so a
	// concurrent client inside the reuse interval gets the same successor
	// without any plaintext secret being stored.
	RotationKey []byte

	CreatedAt time.Time
	LastUsed  time.Time
	ClientIP  string
	Revoked   bool
}

// DeviceRequest is an RFC 8628 device authorization in progress.
type DeviceRequest struct {
	DeviceCodeHash string // SHA-256 of the device code, hex: the key
	UserCode       string // normalised (upper case, no dash)
	ClientID       string
	Scopes         []string
	Expiry         time.Time
	Interval       time.Duration // current polling interval (slow_down grows it)
	LastPoll       time.Time

	// Status is "pending", "approved", "denied" or "redeemed".
	Status        string
	ConnectorID   string
	ConnectorData []byte
	Claims        Claims
	AuthTime      time.Time
	Nonce         string
}

// Device request status values.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceRedeemed = "redeemed"
)

// Password is a user of the password database (enablePasswordDB).
type Password struct {
	Email    string // lower-cased; the key
	Hash     []byte // bcrypt
	Username string
	UserID   string
}

// Keys is the signing key set, stored as one record so that every replica
// sees a complete set or the previous one, never a partial set.
type Keys struct {
	// SigningKey is the current private JWK (JSON).
	SigningKey []byte
	// VerificationKeys are public JWKs (JSON) still published, each with the
	// time after which no token it signed can still be valid.
	VerificationKeys []VerificationKey
	NextRotation     time.Time
	Version          int64 // incremented on each update
}

// VerificationKey is a public key kept in the JWKS until Expiry.
type VerificationKey struct {
	PublicKey []byte    `json:"public_key"` // public JWK (JSON)
	Expiry    time.Time `json:"expiry"`
}

// GCResult counts what a garbage collection removed.
type GCResult struct {
	AuthRequests   int64
	AuthCodes      int64
	DeviceRequests int64
	RefreshTokens  int64
}

// IsEmpty reports whether nothing was removed.
func (r GCResult) IsEmpty() bool {
	return r.AuthRequests == 0 && r.AuthCodes == 0 && r.DeviceRequests == 0 && r.RefreshTokens == 0
}

// Storage is implemented by every backend. Get methods return ErrNotFound
// (wrapped or not) for missing or expired objects; Create methods return
// ErrAlreadyExists on a duplicate key. Update methods run the updater
// inside one transaction: the updater sees the current value and returns
// the new one; an error from it aborts the update and is returned as is.
// An updater must not call the store: it runs while the backend holds the
// object (or, in SQLite and memory, the whole store) for the update.
// The key field the updater returns is ignored: an update never moves an
// object to another key. UpdateAuthRequest and UpdateAuthCode return
// ErrNotFound for expired objects; UpdateDeviceRequest hands an expired
// request to its updater (which answers expired_token); refresh families
// have no expiry of their own.
//
// Every backend returns values in one canonical form, so that tests on one
// backend hold on all: times in UTC truncated to the microsecond (the zero
// time stays zero), empty slices as nil (a nil and an empty slice are the
// same value), slice order kept, Password.Email lower-cased. Returned
// values share no memory with the backend.
type Storage interface {
	// Close releases the backend's resources.
	Close() error
	// Ping checks that the backend answers (used by /healthz/ready).
	Ping(ctx context.Context) error

	CreateAuthRequest(ctx context.Context, a AuthRequest) error
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	UpdateAuthRequest(ctx context.Context, id string, updater func(AuthRequest) (AuthRequest, error)) error
	DeleteAuthRequest(ctx context.Context, id string) error

	CreateAuthCode(ctx context.Context, c AuthCode) error
	GetAuthCode(ctx context.Context, id string) (AuthCode, error)
	// UpdateAuthCode is how a code is redeemed exactly once: the updater
	// sees RedeemedAt and decides.
	UpdateAuthCode(ctx context.Context, id string, updater func(AuthCode) (AuthCode, error)) error

	CreateRefreshFamily(ctx context.Context, f RefreshFamily) error
	GetRefreshFamily(ctx context.Context, id string) (RefreshFamily, error)
	UpdateRefreshFamily(ctx context.Context, id string, updater func(RefreshFamily) (RefreshFamily, error)) error
	DeleteRefreshFamily(ctx context.Context, id string) error
	// ListRefreshFamilies lists the sessions of one user (by Claims.UserID
	// and connector), newest first.
	ListRefreshFamilies(ctx context.Context, connectorID, userID string) ([]RefreshFamily, error)
	// ListRefreshFamiliesByClaim lists the sessions, of any connector,
	// whose claim (ClaimPreferredUsername or ClaimEmail) is exactly
	// value, newest first and at most limit of them (limit must be
	// positive): the sessions behind a kube-apiserver user name made from
	// that claim. Another claim or a limit below 1 is an error.
	ListRefreshFamiliesByClaim(ctx context.Context, claim, value string, limit int) ([]RefreshFamily, error)

	CreateDeviceRequest(ctx context.Context, d DeviceRequest) error
	GetDeviceRequestByUserCode(ctx context.Context, userCode string) (DeviceRequest, error)
	GetDeviceRequest(ctx context.Context, deviceCodeHash string) (DeviceRequest, error)
	UpdateDeviceRequest(ctx context.Context, deviceCodeHash string, updater func(DeviceRequest) (DeviceRequest, error)) error

	CreatePassword(ctx context.Context, p Password) error
	GetPassword(ctx context.Context, email string) (Password, error)
	UpdatePassword(ctx context.Context, email string, updater func(Password) (Password, error)) error
	DeletePassword(ctx context.Context, email string) error
	// ListPasswords lists every password, ordered by email.
	ListPasswords(ctx context.Context) ([]Password, error)

	// GetKeys returns the key set, or ErrNotFound before the first rotation.
	GetKeys(ctx context.Context) (Keys, error)
	// UpdateKeys replaces the key set if its Version still equals
	// expectedVersion (0 when none exists yet), else returns ErrConflict.
	// The stored Version becomes expectedVersion+1.
	UpdateKeys(ctx context.Context, expectedVersion int64, k Keys) error

	// GarbageCollect removes objects whose expiry is before now: auth
	// requests, auth codes, device requests, and refresh families that
	// are revoked or idle/absolute-expired by the given cut-offs (a zero
	// cut-off disables that check).
	GarbageCollect(ctx context.Context, now time.Time, refreshIdleBefore, refreshCreatedBefore time.Time) (GCResult, error)
}

// Claims that ListRefreshFamiliesByClaim looks sessions up by.
const (
	ClaimPreferredUsername = "preferred_username"
	ClaimEmail             = "email"
)

// ClaimValue returns the value of claim (ClaimPreferredUsername or
// ClaimEmail) in c, and whether claim is one of them.
func (c Claims) ClaimValue(claim string) (string, bool) {
	switch claim {
	case ClaimPreferredUsername:
		return c.PreferredUsername, true
	case ClaimEmail:
		return c.Email, true
	}
	return "", false
}

// CheckListByClaim returns the error ListRefreshFamiliesByClaim gives
// for an unsupported claim or a limit below 1, or nil.
func CheckListByClaim(claim string, limit int) error {
	if _, ok := (Claims{}).ClaimValue(claim); !ok {
		return UnsupportedClaimError(claim)
	}
	if limit < 1 {
		return fmt.Errorf("storage: sessions listed by claim need a positive limit, not %d", limit)
	}
	return nil
}

// UnsupportedClaimError is returned for a claim that sessions cannot be
// listed by.
func UnsupportedClaimError(claim string) error {
	return fmt.Errorf("storage: sessions cannot be listed by claim %q: want %s or %s", claim, ClaimPreferredUsername, ClaimEmail)
}

// IdleExpired reports whether f went unused for longer than idle (0: no
// limit) at now; AbsoluteExpired whether it is older than life (0: no
// limit). The issuer refuses such a family's refresh token; the audit
// page marks it expired.
func (f RefreshFamily) IdleExpired(now time.Time, idle time.Duration) bool {
	return idle > 0 && now.Sub(f.LastUsed) > idle
}

// AbsoluteExpired: see IdleExpired.
func (f RefreshFamily) AbsoluteExpired(now time.Time, life time.Duration) bool {
	return life > 0 && now.Sub(f.CreatedAt) > life
}

// DexRefreshImporter is implemented by a backend that holds a Dex
// installation's refresh tokens beside gatehouse's families (kubernetes:
// Dex's RefreshToken objects in the same namespace). The issuer calls it
// when a token in Dex's format names no family yet.
type DexRefreshImporter interface {
	// ImportDexRefreshToken turns Dex's refresh token id into a refresh
	// family with the same id. ErrNotFound: Dex has no such token;
	// ErrAlreadyExists: the family exists (a concurrent import won).
	ImportDexRefreshToken(ctx context.Context, id string) error
}
