package issuer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// A refresh token is "<family id>.<secret>". Only SHA-256(secret) is
// stored. The next secret is HMAC(family rotation key, presented secret):
// deterministic, so that a client presenting the previous token again
// within expiry.refreshTokens.reuseInterval (two kubectl processes
// refreshing at once) gets the same successor instead of an error, while
// nothing that could be replayed is stored in the clear.

//
// A token in Dex's format, base64url(protobuf{refresh_id, token}), names
// the family that holds a Dex session: `gatehouse migrate from-dex` copies
// Dex's refresh tokens into families with Dex's id and the hash of Dex's
// secret, and the kubernetes storage turns Dex's objects into families on
// first use. Its first refresh hands out a token in gatehouse's format.

func splitRefreshToken(tok string) (familyID, secret string, ok bool) {
	if len(tok) > 256 {
		return "", "", false
	}
	familyID, secret, ok = strings.Cut(tok, ".")
	if !ok {
		// Dex's token: the same protobuf shape as the subject.
		familyID, secret, err := decodeSubject(tok)
		if err != nil || familyID == "" || secret == "" {
			return "", "", false
		}
		return familyID, secret, true
	}
	if familyID == "" || secret == "" || strings.Contains(secret, ".") {
		return "", "", false
	}
	return familyID, secret, true
}

// getFamily reads a refresh family. A family that does not exist may be
// a Dex session the storage holds in Dex's form: it becomes a family
// first (storage.DexRefreshImporter).
func (s *Server) getFamily(ctx context.Context, id string) (storage.RefreshFamily, error) {
	f, err := s.opts.Storage.GetRefreshFamily(ctx, id)
	imp, ok := s.opts.Storage.(storage.DexRefreshImporter)
	if !errors.Is(err, storage.ErrNotFound) || !ok {
		return f, err
	}
	switch err := imp.ImportDexRefreshToken(ctx, id); {
	case err == nil, errors.Is(err, storage.ErrAlreadyExists):
		return s.opts.Storage.GetRefreshFamily(ctx, id)
	default:
		return storage.RefreshFamily{}, err
	}
}

func nextSecret(rotationKey []byte, presented string) string {
	m := hmac.New(sha256.New, rotationKey)
	m.Write([]byte(presented))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// createFamily starts a new refresh token family (one login session of
// one client) and returns its first token.
func (s *Server) createFamily(r *http.Request, p tokenParams, connData []byte) (string, error) {
	now := s.now()
	secret := randomToken(32)
	f := storage.RefreshFamily{
		ID: p.familyID, ClientID: p.clientID, ConnectorID: p.connectorID, Scopes: p.scopes, Nonce: p.nonce,
		Claims: p.claims, ConnectorData: connData, ClaimsRefreshedAt: now, AuthTime: p.authTime,
		Generation: 1, CurrentHash: sha256Bytes(secret), RotationKey: []byte(randomToken(32)),
		CreatedAt: now, LastUsed: now, ClientIP: s.opts.ClientIP(r),
	}
	if err := s.opts.Storage.CreateRefreshFamily(r.Context(), f); err != nil {
		return "", fmt.Errorf("create refresh family: %w", err)
	}
	return f.ID + "." + secret, nil
}

func (s *Server) revokeFamily(r *http.Request, id string) error {
	err := s.opts.Storage.UpdateRefreshFamily(r.Context(), id, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.Revoked = true
		return f, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// grantRefreshToken rotates a refresh token (RFC 6749 6, RFC 9700 4.14.2).
func (s *Server) grantRefreshToken(r *http.Request, client *Client) (issuedTokens, error) {
	invalid := badRequest(errInvalidGrant, "the refresh token is invalid, expired or revoked; log in again")
	familyID, secret, ok := splitRefreshToken(r.PostForm.Get("refresh_token"))
	if !ok {
		if r.PostForm.Get("refresh_token") == "" {
			return issuedTokens{}, badRequest(errInvalidRequest, "refresh_token is required")
		}
		return issuedTokens{}, invalid
	}
	ctx := r.Context()
	f, err := s.getFamily(ctx, familyID)
	if errors.Is(err, storage.ErrNotFound) {
		return issuedTokens{}, invalid
	}
	if err != nil {
		return issuedTokens{}, err
	}
	// A token is bound to the client it was issued to.
	if f.ClientID != client.ID || f.Revoked {
		return issuedTokens{}, invalid
	}
	now := s.now()
	exp := s.opts.Expiry
	if f.IdleExpired(now, exp.RefreshValidIfNotUsed) {
		return issuedTokens{}, badRequest(errInvalidGrant, "the refresh token expired because it was not used for too long; log in again")
	}
	if f.AbsoluteExpired(now, exp.RefreshAbsoluteLife) {
		return issuedTokens{}, badRequest(errInvalidGrant, "the login session reached its maximum lifetime; log in again")
	}
	if !clientAllowsConnector(client, f.ConnectorID) {
		return issuedTokens{}, badRequest(errInvalidGrant, "this client may not use the connector that authenticated the user")
	}
	scopes := f.Scopes
	if req := strings.Fields(r.PostForm.Get("scope")); len(req) > 0 {
		for _, sc := range req {
			if !slices.Contains(f.Scopes, sc) {
				return issuedTokens{}, badRequest(errInvalidScope, "scope "+quoteOrEmpty(sc)+" was not granted to this session")
			}
		}
		scopes = req
	}

	presented := sha256Bytes(secret)
	isCurrent := subtle.ConstantTimeCompare(presented, f.CurrentHash) == 1

	// Refresh the identity upstream (outside any transaction: it is a
	// network call). Only the holder of the current token pays for it.
	claims, connData, refreshedAt := f.Claims, f.ConnectorData, f.ClaimsRefreshedAt
	if isCurrent {
		if rc, ok := s.connectors[f.ConnectorID].implRefresh(); ok {
			ident, err := rc.Refresh(ctx, s.scopes(f.Scopes), identityFromClaims(f.Claims, f.ConnectorData))
			if err != nil {
				if te := upstreamUnavailable(err, s.connectors[f.ConnectorID]); te != nil {
					// Nothing was rotated or revoked: the same refresh
					// token works once the upstream answers again.
					s.opts.Metrics.loginsFailed.WithLabelValues("refresh_unavailable").Inc()
					s.log.Warn("upstream unavailable during refresh; the refresh token stays valid", "connector", f.ConnectorID, "user_id", f.Claims.UserID, "retry_after", te.retryAfter.String(), "err", err)
					return issuedTokens{}, te
				}
				s.opts.Metrics.loginsFailed.WithLabelValues("refresh_refused").Inc()
				s.log.Info("upstream refused refresh", "connector", f.ConnectorID, "user_id", f.Claims.UserID, "err", err)
				if ue, ok := connector.AsUserError(err); ok {
					return issuedTokens{}, badRequest(errInvalidGrant, ue.Title+": "+ue.Message)
				}
				return issuedTokens{}, badRequest(errInvalidGrant, "the identity provider refused to refresh the session; log in again")
			}
			if ident.UserID != f.Claims.UserID {
				return issuedTokens{}, badRequest(errInvalidGrant, "the identity provider returned a different user; log in again")
			}
			claims, connData, refreshedAt = claimsFromIdentity(ident), ident.ConnectorData, now
		} else if _, known := s.connectors[f.ConnectorID]; !known {
			return issuedTokens{}, badRequest(errInvalidGrant, "the connector of this session no longer exists; log in again")
		}
	}

	var (
		newToken string
		replay   bool
		reused   bool
		final    storage.RefreshFamily
	)
	err = s.opts.Storage.UpdateRefreshFamily(ctx, familyID, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		replay, reused = false, false
		if f.Revoked || f.ClientID != client.ID {
			return f, invalid
		}
		switch {
		case subtle.ConstantTimeCompare(presented, f.CurrentHash) == 1:
			if isCurrent {
				f.Claims, f.ConnectorData, f.ClaimsRefreshedAt = claims, connData, refreshedAt
			}
			f.LastUsed = now
			if exp.RefreshDisableRotation {
				newToken = familyID + "." + secret
				break
			}
			next := nextSecret(f.RotationKey, secret)
			f.PreviousHash, f.CurrentHash = f.CurrentHash, sha256Bytes(next)
			f.RotatedAt = now
			f.Generation++
			newToken = familyID + "." + next
		case len(f.PreviousHash) > 0 && subtle.ConstantTimeCompare(presented, f.PreviousHash) == 1 &&
			exp.RefreshReuseInterval > 0 && now.Sub(f.RotatedAt) <= exp.RefreshReuseInterval:
			// A concurrent client inside the reuse interval: the same
			// successor, no new rotation.
			reused = true
			f.LastUsed = now
			newToken = familyID + "." + nextSecret(f.RotationKey, secret)
		default:
			// An old token of a live family: someone holds a copy. Revoke
			// the whole family so neither copy works (RFC 9700 4.14.2).
			replay = true
			f.Revoked = true
		}
		final = f
		return f, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return issuedTokens{}, invalid
	}
	if err != nil {
		return issuedTokens{}, err
	}
	if replay {
		s.opts.Metrics.replays.WithLabelValues("refresh_token").Inc()
		s.log.Warn("refresh token replayed; session revoked", "family", familyID, "client_id", client.ID, "user_id", final.Claims.UserID, "remote", s.opts.ClientIP(r))
		return issuedTokens{}, badRequest(errInvalidGrant, "the refresh token was already used; the session has been revoked for safety; log in again")
	}
	if reused {
		s.opts.Metrics.refreshReuse.Inc()
	}
	return s.mint(ctx, tokenParams{
		clientID: client.ID, connectorID: final.ConnectorID, scopes: scopes, nonce: final.Nonce,
		claims: final.Claims, authTime: final.AuthTime, familyID: familyID,
	}, newToken)
}

// defaultUpstreamRetry is the Retry-After of a refresh or a token exchange
// refused because the upstream did not answer, when the connector does not
// say.
const defaultUpstreamRetry = 30 * time.Second

// upstreamUnavailable returns the token endpoint's answer when a
// connector's refresh failed because its upstream is busy or down rather
// than because it refused the user: the connector is still opening
// (retry), the upstream answered 429 or 5xx (the connectors' UserError
// with Status 429, 502, 503 or 504), or it could not be reached at all.
// The answer is 503 temporarily_unavailable with Retry-After, which RFC
// 6749 5.2 does not list for the token endpoint but 4.1.2.1 defines for
// the same condition and OAuth clients (golang.org/x/oauth2, kubelogin,
// gatehouse's plugin) read as "try again later". Dex v2.45.1 answers 500
// invalid_request without a description (refreshhandlers.go) and, like
// gatehouse, keeps the refresh token. nil: a refusal, not an outage.
func upstreamUnavailable(err error, conn *Connector) *tokenError {
	name := "the identity provider"
	if conn != nil && conn.Name != "" {
		name = conn.Name
	}
	te := &tokenError{
		status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, retryAfter: defaultUpstreamRetry,
		description: name + " cannot be reached at the moment; the session is kept: retry the refresh later",
	}
	if ue, ok := connector.AsUserError(err); ok {
		switch ue.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return nil
		}
		if ue.RetryAfter > 0 {
			te.retryAfter = ue.RetryAfter
		}
		if ue.Description != "" {
			te.description = ue.Description + "; the session is kept: retry the refresh later"
		}
		return te
	}
	if retry.Unreachable(err) || errors.Is(err, context.DeadlineExceeded) {
		return te
	}
	return nil
}

func (c *Connector) implRefresh() (connector.RefreshConnector, bool) {
	if c == nil {
		return nil, false
	}
	rc, ok := c.Impl.(connector.RefreshConnector)
	return rc, ok
}
