package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// verifyAccessToken checks an access token we issued: signature, type
// (an ID token is refused: userinfo takes access tokens only), audience,
// expiry, and that its session was not revoked.
func (s *Server) verifyAccessToken(ctx context.Context, tok string) (accessTokenClaims, error) {
	var c accessTokenClaims
	payload, typ, err := s.opts.Keys.Verify(ctx, tok)
	if err != nil {
		return c, err
	}
	if typ != keys.TypeAccessToken {
		return c, errors.New("not an access token")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, err
	}
	if c.Issuer != s.opts.Issuer || len(c.Audience) != 1 || c.Audience[0] != s.opts.Issuer {
		return c, errors.New("token is for another issuer or audience")
	}
	if s.now().Unix() >= c.Expiry {
		return c, errors.New("token expired")
	}
	if c.SessionID != "" {
		f, err := s.opts.Storage.GetRefreshFamily(ctx, c.SessionID)
		if errors.Is(err, storage.ErrNotFound) || err == nil && f.Revoked {
			return c, errors.New("session revoked")
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// UnmarshalJSON accepts aud as a string or a list.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// bearerToken takes the token from the Authorization header (RFC 6750
// 2.1) or, for POST, the access_token form field (2.2); never the query.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return r.PostFormValue("access_token")
	}
	return ""
}

// handleUserinfo answers OIDC Core 5.3 with the claims the scopes allow.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	tok := bearerToken(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		writeOAuthError(w, http.StatusUnauthorized, errInvalidRequest, "an access token is required (Authorization: Bearer)")
		return
	}
	c, err := s.verifyAccessToken(r.Context(), tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is invalid or expired"`)
		writeOAuthError(w, http.StatusUnauthorized, errInvalidToken, "the access token is invalid or expired")
		return
	}
	out := map[string]any{"sub": c.Subject}
	if c.Email != "" || c.EmailVerified != nil {
		out["email"] = c.Email
		out["email_verified"] = c.EmailVerified != nil && *c.EmailVerified
	}
	if c.Groups != nil {
		out["groups"] = c.Groups
	}
	if c.Name != "" {
		out["name"] = c.Name
	}
	if c.PreferredUsername != "" {
		out["preferred_username"] = c.PreferredUsername
	}
	if c.FederatedIDClaims != nil {
		out["federated_claims"] = c.FederatedIDClaims
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRevoke is RFC 7009. Revoking a refresh token or an access token
// ends its whole session (the refresh family). Unknown tokens get 200, as
// the RFC requires, so the endpoint tells an attacker nothing.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	client, terr := s.authenticateClient(r)
	if terr != nil {
		writeOAuthError(w, terr.status, terr.code, terr.description)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "token is required")
		return
	}
	familyID := ""
	if id, secret, ok := splitRefreshToken(tok); ok {
		f, err := s.getFamily(r.Context(), id)
		if err == nil {
			if f.ClientID != client.ID {
				writeOAuthError(w, http.StatusBadRequest, errUnauthorizedClient, "the token was issued to another client")
				return
			}
			h := sha256Bytes(secret)
			if constantTimeEqual(string(h), string(f.CurrentHash)) || constantTimeEqual(string(h), string(f.PreviousHash)) {
				familyID = id
			}
		}
	} else if c, err := s.verifyAccessToken(r.Context(), tok); err == nil {
		if c.ClientID != client.ID {
			writeOAuthError(w, http.StatusBadRequest, errUnauthorizedClient, "the token was issued to another client")
			return
		}
		familyID = c.SessionID
	}
	if familyID != "" {
		if err := s.opts.Storage.DeleteRefreshFamily(r.Context(), familyID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("revoke", "err", err)
			writeOAuthError(w, http.StatusServiceUnavailable, errTemporarilyUnavailable, "try again")
			return
		}
		s.log.Info("session revoked", "family", familyID, "client_id", client.ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// handleIntrospect is RFC 7662, for authenticated confidential clients
// only (a public client has no credentials to prove who asks).
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	client, terr := s.authenticateClient(r)
	if terr != nil {
		writeOAuthError(w, terr.status, terr.code, terr.description)
		return
	}
	if client.Public {
		writeOAuthError(w, http.StatusUnauthorized, errInvalidClient, "introspection needs an authenticated (confidential) client")
		return
	}
	tok := r.PostForm.Get("token")
	inactive := map[string]any{"active": false}
	if id, secret, ok := splitRefreshToken(tok); ok {
		f, err := s.getFamily(r.Context(), id)
		if err != nil || f.Revoked || f.ClientID != client.ID || !constantTimeEqual(string(sha256Bytes(secret)), string(f.CurrentHash)) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"active": true, "token_type": "refresh_token", "client_id": f.ClientID, "scope": strings.Join(f.Scopes, " "),
			"sub": encodeSubject(f.Claims.UserID, f.ConnectorID), "username": f.Claims.PreferredUsername,
			"iat": f.CreatedAt.Unix(), "iss": s.opts.Issuer,
		})
		return
	}
	c, err := s.verifyAccessToken(r.Context(), tok)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "token_type": "Bearer", "client_id": c.ClientID, "scope": c.Scope, "sub": c.Subject,
		"username": c.PreferredUsername, "exp": c.Expiry, "iat": c.IssuedAt, "iss": c.Issuer, "aud": c.Audience,
	})
}
