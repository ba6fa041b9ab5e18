package issuer

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// Scopes gatehouse understands (Dex's).
const (
	scopeOpenID        = "openid"
	scopeProfile       = "profile"
	scopeEmail         = "email"
	scopeGroups        = "groups"
	scopeOfflineAccess = "offline_access"
	scopeFederatedID   = "federated:id"
	scopeCrossClient   = "audience:server:client_id:"
)

// encodeSubject encodes the "sub" claim exactly as Dex does, so RBAC
// bindings and audit history written against Dex keep their meaning: the
// base64url (no padding) of the protobuf message IDTokenSubject
// { string user_id = 1; string conn_id = 2; }.
//
// Written by hand because it is two length-delimited fields: pulling in a
// protobuf runtime for that would cost more than these lines.
func encodeSubject(userID, connID string) string {
	buf := make([]byte, 0, len(userID)+len(connID)+6)
	buf = appendProtoString(buf, 1, userID)
	buf = appendProtoString(buf, 2, connID)
	return base64.RawURLEncoding.EncodeToString(buf)
}

func appendProtoString(buf []byte, field int, v string) []byte {
	if v == "" {
		return buf // proto3 omits empty strings
	}
	buf = append(buf, byte(field<<3|2))
	n := uint64(len(v))
	for n >= 0x80 {
		buf = append(buf, byte(n)|0x80)
		n >>= 7
	}
	buf = append(buf, byte(n))
	return append(buf, v...)
}

// DecodeSubject returns the user id and connector id that a "sub" claim
// issued by gatehouse (or Dex) encodes.
func DecodeSubject(sub string) (userID, connID string, err error) { return decodeSubject(sub) }

// decodeSubject reverses encodeSubject.
func decodeSubject(sub string) (userID, connID string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(sub)
	if err != nil {
		return "", "", err
	}
	for len(b) > 0 {
		tag := b[0]
		b = b[1:]
		var n uint64
		var shift uint
		for {
			if len(b) == 0 || shift > 63 {
				return "", "", errors.New("truncated subject")
			}
			c := b[0]
			b = b[1:]
			n |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
			shift += 7
		}
		if uint64(len(b)) < n || tag&7 != 2 {
			return "", "", errors.New("malformed subject")
		}
		v := string(b[:n])
		b = b[n:]
		switch tag >> 3 {
		case 1:
			userID = v
		case 2:
			connID = v
		}
	}
	return userID, connID, nil
}

// audience marshals as a string when it has one entry, as Dex does.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

type federatedClaims struct {
	ConnectorID string `json:"connector_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
}

// idTokenClaims are Dex's ID token claims (same names, same omissions).
type idTokenClaims struct {
	Issuer           string   `json:"iss"`
	Subject          string   `json:"sub"`
	Audience         audience `json:"aud"`
	Expiry           int64    `json:"exp"`
	IssuedAt         int64    `json:"iat"`
	AuthorizingParty string   `json:"azp,omitempty"`
	Nonce            string   `json:"nonce,omitempty"`
	AccessTokenHash  string   `json:"at_hash,omitempty"`
	CodeHash         string   `json:"c_hash,omitempty"`
	AuthTime         int64    `json:"auth_time,omitempty"`

	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`

	Groups []string `json:"groups,omitempty"`

	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`

	FederatedIDClaims *federatedClaims `json:"federated_claims,omitempty"`
}

// accessTokenClaims are the claims of an RFC 9068 access token. Its
// audience is the issuer itself (the userinfo endpoint is the only
// resource), so a kube-apiserver expecting the client id refuses it.
type accessTokenClaims struct {
	idTokenClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	// SessionID is the refresh family; revoking the family revokes the
	// access token at userinfo and introspection.
	SessionID string `json:"sid,omitempty"`
	JTI       string `json:"jti"`
}

// tokenParams describe one issuance.
type tokenParams struct {
	clientID     string
	connectorID  string
	scopes       []string
	nonce        string
	claims       storage.Claims
	authTime     time.Time
	withAuthTime bool
	familyID     string
	code         string // for c_hash, when an ID token accompanies a code
	// azp, when set, is the client that asked for a token minted for
	// clientID (token exchange): it becomes the azp claim.
	azp string
	// notAfter, when set, caps the tokens' expiry (a subject token's exp).
	notAfter time.Time
}

// hashFor returns the left-half hash used by at_hash and c_hash for alg.
func hashFor(alg, v string) string {
	var h hash.Hash
	switch alg {
	case "RS384", "ES384", "PS384":
		h = sha512.New384()
	case "RS512", "ES512", "PS512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(v))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// scopedClaims fills the claims that depend on scopes, exactly as Dex:
// email/email_verified with "email", groups with "groups", name and
// preferred_username with "profile", federated_claims with
// "federated:id", and trusted peers' ids in aud for cross-client scopes.
func (s *Server) scopedClaims(tok *idTokenClaims, p tokenParams) {
	for _, scope := range p.scopes {
		switch {
		case scope == scopeEmail:
			tok.Email = p.claims.Email
			v := p.claims.EmailVerified
			tok.EmailVerified = &v
		case scope == scopeGroups:
			tok.Groups = p.claims.Groups
		case scope == scopeProfile:
			tok.Name = p.claims.Username
			tok.PreferredUsername = p.claims.PreferredUsername
		case scope == scopeFederatedID:
			tok.FederatedIDClaims = &federatedClaims{ConnectorID: p.connectorID, UserID: p.claims.UserID}
		case strings.HasPrefix(scope, scopeCrossClient):
			peer := strings.TrimPrefix(scope, scopeCrossClient)
			if s.isTrustedPeer(peer, p.clientID) && !slices.Contains(tok.Audience, peer) {
				tok.Audience = append(tok.Audience, peer)
			}
		}
	}
	switch {
	case p.azp != "" && p.azp != p.clientID:
		// Token exchange for another client: that client alone, and who asked.
		tok.Audience = audience{p.clientID}
		tok.AuthorizingParty = p.azp
	case len(tok.Audience) == 0:
		tok.Audience = audience{p.clientID}
	default:
		// Dex: a token minted for other audiences names its requester.
		tok.AuthorizingParty = p.clientID
	}
}

// isTrustedPeer reports whether client may mint tokens for peer: peer
// lists client in trustedPeers, or they are the same client.
func (s *Server) isTrustedPeer(peer, client string) bool {
	if peer == client {
		return true
	}
	c, ok := s.clients[peer]
	return ok && slices.Contains(c.TrustedPeers, client)
}

// issuedTokens is a token endpoint success response.
type issuedTokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}
