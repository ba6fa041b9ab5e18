package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// tokenError is an RFC 6749 5.2 error with its HTTP status.
type tokenError struct {
	status      int
	code        string
	description string
	// retryAfter, when set, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *tokenError) Error() string { return e.code + ": " + e.description }

func badRequest(code, description string) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: code, description: description}
}

var errClientAuth = &tokenError{status: http.StatusUnauthorized, code: errInvalidClient, description: "client authentication failed"}

// authenticateClient applies RFC 6749 2.3.1: client_secret_basic or
// client_secret_post (not both), or client_id alone for public clients.
// Secrets are compared in constant time.
func (s *Server) authenticateClient(r *http.Request) (*Client, *tokenError) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if hasBasic {
		// RFC 6749 2.3.1: the id and secret are form-urlencoded inside Basic.
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, errClientAuth
		}
		if formSecret != "" {
			return nil, badRequest(errInvalidRequest, "use one client authentication method, not both Basic and client_secret")
		}
		if formID != "" && formID != basicID {
			return nil, badRequest(errInvalidRequest, "client_id does not match the Basic credentials")
		}
	}
	id, secret := formID, formSecret
	if hasBasic {
		id, secret = basicID, basicSecret
	}
	if id == "" {
		return nil, errClientAuth
	}
	c, ok := s.clients[id]
	if !ok {
		// Compare anyway so that unknown and known clients take equal time.
		constantTimeEqual(secret, "unknown-client-placeholder")
		return nil, errClientAuth
	}
	if c.Public {
		return c, nil
	}
	if secret == "" || !constantTimeEqual(secret, c.Secret) {
		return nil, errClientAuth
	}
	return c, nil
}

// admit waits for one of the token endpoint's slots (Options.
// TokenConcurrency) and returns the function that gives it back. Waiters
// are served in arrival order: a channel's blocked senders queue first in,
// first out. Token requests are CPU-heavy (an RSA signature, a bcrypt
// check); left to the Go scheduler, many of them interleave and some
// wait far longer than others. Measured with bench/refresh.sh (16
// workers, 2 CPUs, docs/benchmarks.md): p99 of the refresh grant 40 ms
// without the gate, 17-24 ms with two slots per CPU, at the same or
// higher throughput. Two per CPU rather than one, so that a request
// waiting on storage (a PostgreSQL round trip) does not leave a CPU idle.
func (s *Server) admit(ctx context.Context) (func(), error) {
	s.opts.Metrics.tokenWaiting.Inc()
	defer s.opts.Metrics.tokenWaiting.Dec()
	select {
	case s.tokenSlots <- struct{}{}:
		return func() { <-s.tokenSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handleToken is the token endpoint.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	if len(r.URL.RawQuery) > 0 && (r.URL.Query().Has("client_secret") || r.URL.Query().Has("password") || r.URL.Query().Has("code")) {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "credentials must be sent in the body, not the URL")
		return
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "the parameter "+k+" appears more than once")
			return
		}
	}
	release, err := s.admit(r.Context())
	if err != nil {
		return // the client went away while waiting
	}
	defer release()
	client, terr := s.authenticateClient(r)
	if terr != nil {
		writeOAuthError(w, terr.status, terr.code, terr.description)
		return
	}
	grant := r.PostForm.Get("grant_type")
	if !slices.Contains(SupportedGrantTypes, grant) {
		writeOAuthError(w, http.StatusBadRequest, errUnsupportedGrantType, "unsupported grant_type "+quoteOrEmpty(grant))
		return
	}
	if !s.grants[grant] {
		writeOAuthError(w, http.StatusBadRequest, errUnsupportedGrantType, "the grant "+quoteOrEmpty(grant)+" is not enabled on this issuer (oauth2.grantTypes)")
		return
	}
	if !s.grantAllowed(client, grant) {
		writeOAuthError(w, http.StatusBadRequest, errUnauthorizedClient, "this client may not use the "+grant+" grant")
		return
	}
	if grant == GrantTokenExchange {
		out, err := s.grantTokenExchange(r, client)
		if s.answerGrantError(w, r, grant, client, err) {
			return
		}
		s.opts.Metrics.tokens.WithLabelValues(grantLabel(grant)).Inc()
		writeJSON(w, http.StatusOK, out)
		return
	}
	var out issuedTokens
	switch grant {
	case GrantAuthorizationCode:
		out, err = s.grantAuthorizationCode(r, client)
	case GrantRefreshToken:
		out, err = s.grantRefreshToken(r, client)
	case GrantDeviceCode:
		out, err = s.grantDeviceCode(r, client)
	case GrantPassword:
		out, err = s.grantPassword(w, r, client)
		if errors.Is(err, errAnswered) {
			return
		}
	}
	if s.answerGrantError(w, r, grant, client, err) {
		return
	}
	s.opts.Metrics.tokens.WithLabelValues(grantLabel(grant)).Inc()
	writeJSON(w, http.StatusOK, out)
}

// answerGrantError writes the error response of a failed grant and
// reports whether there was one.
func (s *Server) answerGrantError(w http.ResponseWriter, r *http.Request, grant string, client *Client, err error) bool {
	if err == nil {
		return false
	}
	var te *tokenError
	if errors.As(err, &te) {
		if te.retryAfter > 0 {
			w.Header().Set("Retry-After", formatSeconds(te.retryAfter))
		}
		writeOAuthError(w, te.status, te.code, te.description)
		return true
	}
	s.log.Error("token endpoint", "grant_type", grant, "client_id", client.ID, "err", err, "request_id", requestIDFrom(r.Context()))
	writeOAuthError(w, http.StatusInternalServerError, errServerError, "internal error")
	return true
}

func grantLabel(g string) string {
	switch g {
	case GrantDeviceCode:
		return "device_code"
	case GrantTokenExchange:
		return "token_exchange"
	}
	return g
}

func quoteOrEmpty(v string) string {
	if v == "" {
		return "(empty)"
	}
	if len(v) > 64 {
		v = v[:64]
	}
	return `"` + v + `"`
}

// grantAuthorizationCode redeems a code exactly once. A second redemption
// is a replay (RFC 6749 4.1.2, RFC 9700 4.5): it revokes the refresh
// family the first one created.
func (s *Server) grantAuthorizationCode(r *http.Request, client *Client) (issuedTokens, error) {
	code := r.PostForm.Get("code")
	if code == "" {
		return issuedTokens{}, badRequest(errInvalidRequest, "code is required")
	}
	now := s.now()
	var redeemed storage.AuthCode
	replayedFamily := ""
	invalid := badRequest(errInvalidGrant, "the authorization code is invalid, expired or already used")
	familyID := randomToken(16)
	err := s.opts.Storage.UpdateAuthCode(r.Context(), sha256Hex(code), func(c storage.AuthCode) (storage.AuthCode, error) {
		if c.ClientID != client.ID {
			return c, invalid
		}
		if !c.RedeemedAt.IsZero() {
			replayedFamily = c.FamilyID
			return c, invalid
		}
		if now.After(c.Expiry) {
			return c, invalid
		}
		if r.PostForm.Get("redirect_uri") != c.RedirectURI {
			return c, badRequest(errInvalidGrant, "redirect_uri does not match the authorization request")
		}
		if err := verifyPKCE(c.PKCE, r.PostForm.Get("code_verifier")); err != nil {
			return c, err
		}
		c.RedeemedAt = now
		c.FamilyID = familyID
		redeemed = c
		return c, nil
	})
	if replayedFamily != "" {
		s.opts.Metrics.replays.WithLabelValues("authorization_code").Inc()
		s.log.Warn("authorization code replayed; revoking what it issued", "client_id", client.ID, "family", replayedFamily)
		if err := s.revokeFamily(r, replayedFamily); err != nil {
			s.log.Error("revoke family after code replay", "err", err)
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return issuedTokens{}, invalid
	}
	if err != nil {
		return issuedTokens{}, err
	}
	if !clientAllowsConnector(client, redeemed.ConnectorID) {
		return issuedTokens{}, badRequest(errInvalidGrant, "this client may not use the connector that authenticated the user")
	}
	scopes, withAuthTime := splitAuthTimeScope(redeemed.Scopes)
	p := tokenParams{
		clientID: client.ID, connectorID: redeemed.ConnectorID, scopes: scopes, nonce: redeemed.Nonce,
		claims: redeemed.Claims, authTime: redeemed.AuthTime, withAuthTime: withAuthTime,
	}
	refresh := ""
	if slices.Contains(scopes, scopeOfflineAccess) && s.grantAllowed(client, GrantRefreshToken) {
		p.familyID = familyID
		if refresh, err = s.createFamily(r, p, redeemed.ConnectorData); err != nil {
			return issuedTokens{}, err
		}
	}
	return s.mint(r.Context(), p, refresh)
}

// verifyPKCE checks the code_verifier against the stored challenge
// (RFC 7636 4.6). A verifier without a challenge is refused too, so a
// downgrade cannot go unnoticed.
func verifyPKCE(p storage.PKCE, verifier string) *tokenError {
	if p.CodeChallenge == "" {
		if verifier != "" {
			return badRequest(errInvalidGrant, "code_verifier sent but the authorization request had no code_challenge")
		}
		return nil
	}
	if verifier == "" {
		return badRequest(errInvalidGrant, "code_verifier is required (PKCE)")
	}
	if !pkceChallenge.MatchString(verifier) {
		return badRequest(errInvalidGrant, "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	var computed string
	switch p.CodeChallengeMethod {
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		computed = base64.RawURLEncoding.EncodeToString(sum[:])
	case "plain":
		computed = verifier
	default:
		return badRequest(errInvalidGrant, "unsupported code_challenge_method")
	}
	if !constantTimeEqual(computed, p.CodeChallenge) {
		return badRequest(errInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return nil
}

// errAnswered means the grant already answered (a 429), or that the
// client went away: nothing more to write.
var errAnswered = errors.New("already answered")

// grantPassword is the resource owner password grant through
// oauth2.passwordConnector (for automation and tests).
func (s *Server) grantPassword(w http.ResponseWriter, r *http.Request, client *Client) (issuedTokens, error) {
	connID := s.opts.PasswordConnector
	conn := s.connectors[connID]
	pc, ok := conn.implPassword()
	if !ok {
		return issuedTokens{}, badRequest(errUnsupportedGrantType, "the password grant is not configured (oauth2.passwordConnector)")
	}
	if !clientAllowsConnector(client, connID) {
		return issuedTokens{}, badRequest(errUnauthorizedClient, "this client may not use connector "+connID)
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || password == "" {
		return issuedTokens{}, badRequest(errInvalidRequest, "username and password are required")
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{scopeOpenID}
	}
	if e := s.validateScopes(client, scopes); e != nil {
		return issuedTokens{}, badRequest(e.code, e.description)
	}
	att, wait, err := s.limiter.begin(r.Context(), userKey(connID, username), ipKey(s.opts.ClientIP(r)))
	if err != nil {
		return issuedTokens{}, errAnswered // the client went away while waiting
	}
	if att == nil {
		s.opts.Metrics.loginsFailed.WithLabelValues("rate_limited").Inc()
		writeRateLimited(w, wait)
		return issuedTokens{}, errAnswered
	}
	defer att.end(false)
	ident, valid, err := pc.Login(r.Context(), s.scopes(scopes), username, password)
	if err != nil {
		return issuedTokens{}, err
	}
	if !valid {
		att.end(true)
		s.opts.Metrics.loginsFailed.WithLabelValues("invalid_credentials").Inc()
		s.log.Info("login failed", "connector", connID, "username", username, "remote", s.opts.ClientIP(r), "reason", "invalid_credentials", "grant_type", "password")
		return issuedTokens{}, badRequest(errInvalidGrant, "invalid username or password")
	}
	p := tokenParams{
		clientID: client.ID, connectorID: connID, scopes: scopes,
		claims: claimsFromIdentity(ident), authTime: s.now(),
	}
	refresh := ""
	if slices.Contains(scopes, scopeOfflineAccess) && s.grantAllowed(client, GrantRefreshToken) {
		p.familyID = randomToken(16)
		if refresh, err = s.createFamily(r, p, ident.ConnectorData); err != nil {
			return issuedTokens{}, err
		}
	}
	return s.mint(r.Context(), p, refresh)
}
