package issuer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/keys"
)

// mint signs an access token and, when openid was asked for, an ID token.
func (s *Server) mint(ctx context.Context, p tokenParams, refreshToken string) (issuedTokens, error) {
	base := s.baseClaims(p)
	accessToken, err := s.signAccessToken(ctx, p, base)
	if err != nil {
		return issuedTokens{}, err
	}
	out := issuedTokens{
		AccessToken: accessToken, TokenType: "bearer", ExpiresIn: base.Expiry - base.IssuedAt,
		RefreshToken: refreshToken,
	}
	if slices.Contains(p.scopes, scopeOpenID) {
		if out.IDToken, err = s.signIDToken(ctx, p, base, accessToken); err != nil {
			return issuedTokens{}, err
		}
	}
	return out, nil
}

// baseClaims are the claims every token of one issuance shares, and its
// expiry (exp): expiry.idTokens from now, or p.notAfter if that comes
// first.
func (s *Server) baseClaims(p tokenParams) idTokenClaims {
	now := s.now()
	exp := now.Add(s.opts.Expiry.IDTokens)
	if !p.notAfter.IsZero() && p.notAfter.Before(exp) {
		exp = p.notAfter
	}
	base := idTokenClaims{
		Issuer:   s.opts.Issuer,
		Subject:  encodeSubject(p.claims.UserID, p.connectorID),
		Expiry:   exp.Unix(),
		IssuedAt: now.Unix(),
	}
	if p.withAuthTime && !p.authTime.IsZero() {
		base.AuthTime = p.authTime.Unix()
	}
	return base
}

// signAccessToken signs the RFC 9068 access token of an issuance.
func (s *Server) signAccessToken(ctx context.Context, p tokenParams, base idTokenClaims) (string, error) {
	at := accessTokenClaims{idTokenClaims: base, ClientID: p.clientID, Scope: strings.Join(p.scopes, " "), SessionID: p.familyID, JTI: randomToken(16)}
	s.scopedClaims(&at.idTokenClaims, p)
	at.Audience = audience{s.opts.Issuer}
	at.AuthorizingParty = ""
	atJSON, err := json.Marshal(at)
	if err != nil {
		return "", fmt.Errorf("encode access token: %w", err)
	}
	tok, err := s.opts.Keys.Sign(ctx, atJSON, keys.TypeAccessToken)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, nil
}

// signIDToken signs the ID token of an issuance; accessToken (if any)
// gives its at_hash.
func (s *Server) signIDToken(ctx context.Context, p tokenParams, base idTokenClaims, accessToken string) (string, error) {
	id := base
	id.Nonce = p.nonce
	alg := s.opts.Keys.Algorithm()
	if accessToken != "" {
		id.AccessTokenHash = hashFor(alg, accessToken)
	}
	if p.code != "" {
		id.CodeHash = hashFor(alg, p.code)
	}
	s.scopedClaims(&id, p)
	idJSON, err := json.Marshal(id)
	if err != nil {
		return "", fmt.Errorf("encode ID token: %w", err)
	}
	tok, err := s.opts.Keys.Sign(ctx, idJSON, keys.TypeIDToken)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return tok, nil
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // cannot happen on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sha256Hex is how codes are keyed in storage: a database leak yields no
// usable code.
func sha256Hex(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func sha256Bytes(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

// constantTimeEqual compares secrets without leaking where they differ.
func constantTimeEqual(a, b string) bool {
	// Hash first so that the lengths compared are equal too.
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// formHMAC binds a form to its auth request (dexidp/dex CVE-2022-39222).
func formHMAC(key []byte, reqID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(reqID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func checkFormHMAC(key []byte, reqID, got string) bool {
	want := formHMAC(key, reqID)
	return hmac.Equal([]byte(want), []byte(got))
}
