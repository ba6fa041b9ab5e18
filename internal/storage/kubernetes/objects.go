package kubernetes

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
)

// Resources (plurals) of the dex.coreos.com/v1 kinds gatehouse uses.
// Dex's kinds keep Dex's layout, so a Dex installation's objects are read
// in place and Dex can read what gatehouse writes to them. gatehouse's own
// objects, whose model differs from Dex's (refresh families with hashed
// secrets, codes kept after redemption), have kinds of their own in the
// same group.
const (
	// Dex's (plurals as Dex registers them, misspellings included).
	resKeys            = "signingkeies"
	resPasswords       = "passwords"
	resRefreshTokens   = "refreshtokens"
	resOfflineSessions = "offlinesessionses"
	resClients         = "oauth2clients"
	resConnectors      = "connectors"

	// gatehouse's.
	resAuthRequests    = "gatehouseauthrequests"
	resAuthCodes       = "gatehouseauthcodes"
	resFamilies        = "gatehouserefreshfamilies"
	resDeviceRequests  = "gatehousedevicerequests"
	resDeviceUserCodes = "gatehousedeviceusercodes"
)

// Kinds, by resource.
var kinds = map[string]string{
	resKeys: "SigningKey", resPasswords: "Password", resRefreshTokens: "RefreshToken",
	resOfflineSessions: "OfflineSessions", resClients: "OAuth2Client", resConnectors: "Connector",
	resAuthRequests: "GatehouseAuthRequest", resAuthCodes: "GatehouseAuthCode", resFamilies: "GatehouseRefreshFamily",
	resDeviceRequests: "GatehouseDeviceRequest", resDeviceUserCodes: "GatehouseDeviceUserCode",
}

// keysName is the one SigningKey object (Dex's name for it).
const keysName = "openid-connect-keys"

// object is one of gatehouse's own kinds: the storage record as its spec.
type object[T any] struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              T `json:"spec"`
}

func newObject[T any](resource, name string, spec T) *object[T] {
	return &object[T]{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiVersion, Kind: kinds[resource]},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
}

// lowerBase32 maps any key to a valid object name (lower-case letters
// and digits 2-7), one to one. Dex uses the same alphabet.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// objectName is the name of gatehouse's object for key: base32 of the
// key, so that any key (mixed case, dots, underscores) is a valid name
// and two keys never share one.
func objectName(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("kubernetes storage: empty key")
	}
	name := lowerBase32.EncodeToString([]byte(key))
	if len(name) > validation.DNS1123SubdomainMaxLength {
		return "", fmt.Errorf("kubernetes storage: key of %d bytes is too long for an object name", len(key))
	}
	return name, nil
}

// validName reports whether s can be used as an object name as it is
// (Dex's refresh token ids are).
func validName(s string) bool {
	return len(validation.IsDNS1123Subdomain(s)) == 0
}

// dexIDToName is Dex's idToName (clients and passwords): base32 of the
// id followed by the FNV-64 sum of nothing. Dex calls h.Sum(id), which
// appends the hash of empty input to id rather than hashing id; the names
// it created are what they are, so this does the same.
func dexIDToName(id string) string {
	return lowerBase32.EncodeToString(fnv.New64().Sum([]byte(id)))
}

// dexOfflineSessionName is Dex's offlineTokenName: base32 of FNV-64 of
// user id and connector id.
func dexOfflineSessionName(userID, connID string) string {
	h := fnv.New64()
	h.Write([]byte(userID))
	h.Write([]byte(connID))
	return lowerBase32.EncodeToString(h.Sum(nil))
}

// Labels on refresh families, so that a user's sessions are listed with
// a label selector instead of reading every family: a label value is at
// most 63 characters of a restricted alphabet, so it is a hash prefix of
// the value (matches are checked against the spec afterwards).
const (
	labelUser              = "gatehouse.dev/user"
	labelPreferredUsername = "gatehouse.dev/preferred-username"
	labelEmail             = "gatehouse.dev/email"
)

func labelHash(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

func familyLabels(f storage.RefreshFamily) map[string]string {
	return map[string]string{
		labelUser:              labelHash(f.ConnectorID, f.Claims.UserID),
		labelPreferredUsername: labelHash(f.Claims.PreferredUsername),
		labelEmail:             labelHash(f.Claims.Email),
	}
}

// claimLabel is the label that indexes claim.
var claimLabel = map[string]string{
	storage.ClaimPreferredUsername: labelPreferredUsername,
	storage.ClaimEmail:             labelEmail,
}

// deviceUserCode reserves a user code for one device request: user codes
// are unique, and the request itself is named by its device code hash.
type deviceUserCode struct {
	DeviceCodeHash string    `json:"deviceCodeHash"`
	Expiry         time.Time `json:"expiry"`
}

// passwordObject is Dex's Password. Name, PreferredUsername,
// EmailVerified and Groups are Dex's; gatehouse keeps them as they are.
type passwordObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	Email             string   `json:"email,omitempty"`
	Hash              []byte   `json:"hash,omitempty"`
	Username          string   `json:"username,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferredUsername,omitempty"`
	EmailVerified     *bool    `json:"emailVerified,omitempty"`
	UserID            string   `json:"userID,omitempty"`
	Groups            []string `json:"groups,omitempty"`
}

// keysObject is Dex's SigningKey. The Dex fields are written whenever the
// key set is made of JWKs, so Dex replicas (during a rolling switch, or
// after a rollback) sign with and publish the same keys. gatehouse's own
// key set (its ID token key and its access token key) and version live in
// Gatehouse, which Dex neither reads nor keeps: an object Dex wrote last
// has none, and gatehouse reads Dex's fields.
type keysObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	SigningKey       json.RawMessage             `json:"signingKey,omitempty"`
	SigningKeyPub    json.RawMessage             `json:"signingKeyPub,omitempty"`
	VerificationKeys []dexcompat.VerificationKey `json:"verificationKeys,omitempty"`
	NextRotation     time.Time                   `json:"nextRotation"`

	Gatehouse *gatehouseKeys `json:"gatehouse,omitempty"`
}

type gatehouseKeys struct {
	Version          int64                     `json:"version"`
	SigningKey       []byte                    `json:"signingKey,omitempty"`
	VerificationKeys []storage.VerificationKey `json:"verificationKeys,omitempty"`
}

// dexClaims is the claims block of Dex's objects.
type dexClaims struct {
	UserID            string   `json:"userID"`
	Username          string   `json:"username"`
	PreferredUsername string   `json:"preferredUsername"`
	Email             string   `json:"email"`
	EmailVerified     bool     `json:"emailVerified"`
	Groups            []string `json:"groups,omitempty"`
}

// refreshTokenObject is Dex's RefreshToken (CreatedAt and LastUsed have
// no json tags in Dex, hence their capitalised keys).
type refreshTokenObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	CreatedAt     time.Time `json:"CreatedAt"`
	LastUsed      time.Time `json:"LastUsed"`
	ClientID      string    `json:"clientID"`
	Scopes        []string  `json:"scopes,omitempty"`
	Token         string    `json:"token,omitempty"`
	ObsoleteToken string    `json:"obsoleteToken,omitempty"`
	Nonce         string    `json:"nonce,omitempty"`
	Claims        dexClaims `json:"claims"`
	ConnectorID   string    `json:"connectorID,omitempty"`
	ConnectorData []byte    `json:"connectorData,omitempty"`
}

func (r refreshTokenObject) dex() dexcompat.RefreshToken {
	return dexcompat.RefreshToken{
		ID: r.Name, Token: r.Token, ObsoleteToken: r.ObsoleteToken, CreatedAt: r.CreatedAt, LastUsed: r.LastUsed,
		ClientID: r.ClientID, ConnectorID: r.ConnectorID, ConnectorData: r.ConnectorData, Scopes: r.Scopes, Nonce: r.Nonce,
		Claims: dexcompat.Claims{
			UserID: r.Claims.UserID, Username: r.Claims.Username, PreferredUsername: r.Claims.PreferredUsername,
			Email: r.Claims.Email, EmailVerified: r.Claims.EmailVerified, Groups: r.Claims.Groups,
		},
	}
}

// offlineSessionsObject is Dex's OfflineSessions.
type offlineSessionsObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	UserID        string                               `json:"userID,omitempty"`
	ConnID        string                               `json:"connID,omitempty"`
	Refresh       map[string]dexcompat.RefreshTokenRef `json:"refresh,omitempty"`
	ConnectorData []byte                               `json:"connectorData,omitempty"`
}

// clientObject is Dex's OAuth2Client.
type clientObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	ID           string   `json:"id,omitempty"`
	Secret       string   `json:"secret,omitempty"`
	RedirectURIs []string `json:"redirectURIs,omitempty"`
	TrustedPeers []string `json:"trustedPeers,omitempty"`
	Public       bool     `json:"public"`
	Name         string   `json:"name,omitempty"`
	LogoURL      string   `json:"logoURL,omitempty"`
}

// connectorObject is Dex's Connector.
type connectorObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	ID     string `json:"id,omitempty"`
	Type   string `json:"type,omitempty"`
	Name   string `json:"name,omitempty"`
	Config []byte `json:"config,omitempty"`
}
