package issuer

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// GrantTokenExchange is the token exchange grant (RFC 8693).
const GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// errInvalidTarget is RFC 8693 2.2.2's error for an audience the issuer
// will not mint for.
const errInvalidTarget = "invalid_target"

// exchangeResponse is RFC 8693 2.2.1's response, in Dex's shape: the
// issued token is in access_token whatever its type, token_type is
// "bearer" (as Dex: clients such as golang.org/x/oauth2 send it as a
// bearer token), and there is never a refresh token.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// grantTokenExchange is the token exchange grant, Dex's request with two
// kinds of subject token:
//
//   - with connector_id: a token of that connector's upstream (a CI
//     job's workload token), verified by the connector
//     (connector.TokenIdentityConnector); its claims are mapped as a
//     login's.
//   - without: an ID token of this issuer issued to the requesting client,
//     exchanged for one whose aud is the audience client (per-cluster
//     tokens from one login). audience is then required.
//
// audience (a client ID of this issuer) asks for a token minted for that
// client, which must list the requester in trustedPeers. The token lives
// expiry.idTokens at most, and never beyond the subject token.
func (s *Server) grantTokenExchange(r *http.Request, client *Client) (exchangeResponse, error) {
	f := r.PostForm
	for _, k := range []string{"actor_token", "actor_token_type", "resource"} {
		if f.Has(k) {
			return exchangeResponse{}, badRequest(errInvalidRequest, k+" is not supported: gatehouse does not exchange for delegation (actor tokens) or resource URIs; name a client ID in audience")
		}
	}
	subject, subjectType := f.Get("subject_token"), f.Get("subject_token_type")
	if subject == "" {
		return exchangeResponse{}, badRequest(errInvalidRequest, "subject_token is required")
	}
	if !isTokenType(subjectType) {
		return exchangeResponse{}, badRequest(errInvalidRequest, "subject_token_type must be "+connector.TokenTypeIDToken+" or "+connector.TokenTypeAccessToken+", not "+quoteOrEmpty(subjectType))
	}
	requested := f.Get("requested_token_type")
	if requested == "" {
		requested = connector.TokenTypeAccessToken // Dex's default
	}
	if !isTokenType(requested) {
		return exchangeResponse{}, badRequest(errInvalidRequest, "requested_token_type must be "+connector.TokenTypeIDToken+" or "+connector.TokenTypeAccessToken+", not "+quoteOrEmpty(requested))
	}
	scopes := strings.Fields(f.Get("scope"))
	if err := s.exchangeScopes(client, scopes); err != nil {
		return exchangeResponse{}, err
	}
	aud := f.Get("audience")

	var (
		p   tokenParams
		err error
	)
	if connID := f.Get("connector_id"); connID != "" {
		p, err = s.exchangeUpstream(r, client, connID, subjectType, subject)
		p.scopes = scopes
	} else {
		if aud == "" {
			return exchangeResponse{}, badRequest(errInvalidRequest, "audience is required to exchange an ID token of this issuer (no connector_id): name the client ID the new token is for; to exchange an upstream token, name its connector in connector_id")
		}
		p, err = s.exchangeOwn(r, client, subjectType, subject, scopes)
	}
	if err != nil {
		return exchangeResponse{}, err
	}

	p.clientID, p.azp = client.ID, client.ID
	if aud != "" && aud != client.ID {
		peer, ok := s.clients[aud]
		switch {
		case !ok:
			return exchangeResponse{}, badRequest(errInvalidTarget, "audience "+strconv.Quote(aud)+" is not a client of this issuer")
		case !slices.Contains(peer.TrustedPeers, client.ID):
			return exchangeResponse{}, badRequest(errInvalidTarget, "client "+strconv.Quote(aud)+" does not trust "+strconv.Quote(client.ID)+" (its trustedPeers)")
		case !clientAllowsConnector(peer, p.connectorID):
			return exchangeResponse{}, badRequest(errInvalidTarget, "client "+strconv.Quote(aud)+" may not use connector "+strconv.Quote(p.connectorID)+" (its allowedConnectors)")
		}
		p.clientID = aud
	}

	base := s.baseClaims(p)
	var tok string
	if requested == connector.TokenTypeIDToken {
		tok, err = s.signIDToken(r.Context(), p, base, "")
	} else {
		tok, err = s.signAccessToken(r.Context(), p, base)
	}
	if err != nil {
		return exchangeResponse{}, err
	}
	s.log.Info("token exchanged", "client_id", client.ID, "audience", p.clientID, "connector", p.connectorID,
		"user_id", p.claims.UserID, "issued_token_type", requested, "expires", time.Unix(base.Expiry, 0).UTC(),
		"request_id", requestIDFrom(r.Context()))
	return exchangeResponse{
		AccessToken: tok, IssuedTokenType: requested, TokenType: "bearer",
		ExpiresIn: base.Expiry - base.IssuedAt,
	}, nil
}

func isTokenType(t string) bool {
	return t == connector.TokenTypeIDToken || t == connector.TokenTypeAccessToken
}

// exchangeScopes accepts Dex's scopes (openid is not required, as in
// Dex's exchange). offline_access is accepted and has no effect: an
// exchanged token never comes with a refresh token.
func (s *Server) exchangeScopes(client *Client, scopes []string) error {
	if e := s.knownScopes(client, scopes); e != nil {
		return badRequest(e.code, e.description)
	}
	return nil
}

// exchangeUpstream verifies an upstream subject token through its
// connector.
func (s *Server) exchangeUpstream(r *http.Request, client *Client, connID, subjectType, subject string) (tokenParams, error) {
	conn, ok := s.connectors[connID]
	if !ok {
		return tokenParams{}, badRequest(errInvalidRequest, "connector_id "+quoteOrEmpty(connID)+" names no connector")
	}
	tc, ok := conn.Impl.(connector.TokenIdentityConnector)
	if !ok {
		return tokenParams{}, badRequest(errInvalidRequest, "connector "+strconv.Quote(connID)+" cannot verify subject tokens: token exchange needs an oidc connector")
	}
	if !clientAllowsConnector(client, connID) {
		return tokenParams{}, badRequest(errUnauthorizedClient, "client "+strconv.Quote(client.ID)+" may not use connector "+strconv.Quote(connID)+" (its allowedConnectors)")
	}
	if !connector.Available(conn.Impl) {
		return tokenParams{}, &tokenError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, retryAfter: defaultUpstreamRetry,
			description: "connector " + strconv.Quote(connID) + " cannot reach its provider at the moment; try again in a few minutes"}
	}
	ident, err := tc.TokenIdentity(r.Context(), subjectType, subject)
	if err != nil {
		return tokenParams{}, s.exchangeRefusal(r, client, connID, err)
	}
	if ident.Expiry.IsZero() {
		return tokenParams{}, errors.New("token exchange: connector " + connID + " returned an identity without the subject token's expiry")
	}
	return tokenParams{connectorID: connID, claims: claimsFromIdentity(ident), notAfter: ident.Expiry}, nil
}

// exchangeRefusal answers a subject token the connector refused:
// invalid_grant with the connector's reason, and a log line naming the
// connector, the client and the rule or check that refused.
func (s *Server) exchangeRefusal(r *http.Request, client *Client, connID string, err error) error {
	if errors.Is(err, connector.ErrTokenExchangeUnsupported) {
		return badRequest(errInvalidRequest, "connector "+strconv.Quote(connID)+" cannot verify subject tokens: token exchange needs an oidc connector")
	}
	ue, ok := connector.AsUserError(err)
	if ok && ue.Status == http.StatusServiceUnavailable {
		return &tokenError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, description: ue.Description,
			retryAfter: cmp.Or(ue.RetryAfter, defaultUpstreamRetry)}
	}
	if !ok {
		s.log.Error("token exchange: verifying the subject token failed", "connector", connID, "client_id", client.ID, "err", err, "request_id", requestIDFrom(r.Context()))
		return &tokenError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, retryAfter: defaultUpstreamRetry,
			description: "the subject token could not be verified at the moment; try again"}
	}
	s.opts.Metrics.loginsFailed.WithLabelValues("exchange_" + ue.Reason).Inc()
	s.log.Info("token exchange refused", "connector", connID, "client_id", client.ID, "reason", ue.Reason, "err", err,
		"remote", s.opts.ClientIP(r), "request_id", requestIDFrom(r.Context()))
	desc := ue.Description
	if desc == "" {
		desc = ue.Title
	}
	return badRequest(errInvalidGrant, desc)
}

// exchangeOwn verifies an ID token of this issuer issued to client.
func (s *Server) exchangeOwn(r *http.Request, client *Client, subjectType, subject string, requested []string) (tokenParams, error) {
	if subjectType != connector.TokenTypeIDToken {
		return tokenParams{}, badRequest(errInvalidRequest, "without connector_id, subject_token must be an ID token of this issuer (subject_token_type="+connector.TokenTypeIDToken+")")
	}
	refuse := func(why string) (tokenParams, error) {
		s.log.Info("token exchange refused", "client_id", client.ID, "reason", why, "remote", s.opts.ClientIP(r), "request_id", requestIDFrom(r.Context()))
		return tokenParams{}, badRequest(errInvalidGrant, why)
	}
	payload, typ, err := s.opts.Keys.Verify(r.Context(), subject)
	if err != nil || typ != keys.TypeIDToken {
		return refuse("the subject token is not an ID token signed by this issuer")
	}
	var c idTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return refuse("the subject token's claims cannot be read")
	}
	now := s.now()
	switch {
	case c.Issuer != s.opts.Issuer:
		return refuse("the subject token is from another issuer")
	case now.Unix() >= c.Expiry:
		return refuse("the subject token has expired; log in again")
	case !slices.Contains(c.Audience, client.ID):
		// Not azp: a token exchanged for cluster A names the requester in
		// azp, and must not buy a token for cluster B.
		return refuse("the subject token was not issued to client " + strconv.Quote(client.ID) + " (its aud)")
	}
	userID, connID, err := decodeSubject(c.Subject)
	if err != nil || userID == "" {
		return refuse("the subject token's sub was not issued by this issuer")
	}
	if _, ok := s.connectors[connID]; !ok {
		return refuse("the connector that authenticated the subject no longer exists; log in again")
	}
	if !clientAllowsConnector(client, connID) {
		return tokenParams{}, badRequest(errUnauthorizedClient, "client "+strconv.Quote(client.ID)+" may not use connector "+strconv.Quote(connID)+" (its allowedConnectors)")
	}
	claims := storage.Claims{
		UserID: userID, Username: c.Name, PreferredUsername: c.PreferredUsername,
		Email: c.Email, Groups: c.Groups,
	}
	if c.EmailVerified != nil {
		claims.EmailVerified = *c.EmailVerified
	}
	return tokenParams{
		connectorID: connID, claims: claims, notAfter: time.Unix(c.Expiry, 0),
		scopes: carriedScopes(c, requested),
	}, nil
}

// carriedScopes are the scopes whose claims the subject token carries,
// restricted to requested when any were: an exchanged token says no more
// about the user than the token it came from.
func carriedScopes(c idTokenClaims, requested []string) []string {
	carried := []string{scopeOpenID}
	if c.Name != "" || c.PreferredUsername != "" {
		carried = append(carried, scopeProfile)
	}
	if c.Email != "" || c.EmailVerified != nil {
		carried = append(carried, scopeEmail)
	}
	if len(c.Groups) > 0 {
		carried = append(carried, scopeGroups)
	}
	if c.FederatedIDClaims != nil {
		carried = append(carried, scopeFederatedID)
	}
	if len(requested) == 0 {
		return carried
	}
	var out []string
	for _, sc := range requested {
		if slices.Contains(carried, sc) {
			out = append(out, sc)
		}
	}
	return out
}
