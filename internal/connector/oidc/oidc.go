// Package oidc logs users in through an upstream OpenID Connect provider
// (Google, Microsoft Entra ID, Keycloak, GitLab, another gatehouse): Dex's
// `type: oidc` connector, with Dex's keys and identity mapping.
//
// Against Dex it adds checks: the upstream ID token must carry the nonce
// this connector sent, the code exchange uses PKCE (S256), userinfo must
// name the ID token's subject, and a refreshed session must stay the same
// upstream subject.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// Type is the connector type in Dex's config.
const Type = "oidc"

var (
	_ connector.CallbackConnector = (*Connector)(nil)
	_ connector.RefreshConnector  = (*Connector)(nil)
)

// Connector is an upstream OpenID Connect provider. It is safe for
// concurrent use.
type Connector struct {
	s        *settings
	client   *http.Client
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	endpoint oauth2.Endpoint
	// offlineScope: the provider advertises offline_access.
	offlineScope bool
	logger       *slog.Logger
	// keys and exchangeVerifier check subject tokens (TokenIdentity).
	keys             *keyCache
	exchangeVerifier *oidc.IDTokenVerifier
	now              func() time.Time
}

// loginData is the connData of one login: kept by the issuer with the auth
// request between LoginURL and HandleCallback.
type loginData struct {
	Nonce    string `json:"nonce"`
	Verifier string `json:"pkce"`
}

// sessionData is Identity.ConnectorData. RefreshToken keeps Dex's key and
// encoding (base64 in JSON), so Dex's stored sessions read the same.
type sessionData struct {
	RefreshToken []byte `json:"RefreshToken"`
	// Subject is the upstream "sub", which a refresh must not change.
	Subject string `json:"sub,omitempty"`
}

// New validates cfg and discovers the provider at cfg.Issuer, trusting the
// system's CAs and cfg.RootCAs. ctx bounds discovery only. It is Prepare
// then Open.
func New(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) (*Connector, error) {
	p, err := Prepare(cfg, logger, opts...)
	if err != nil {
		return nil, err
	}
	return p.Open(ctx)
}

// Prepared is a connector whose configuration is valid but which has not
// reached its provider yet. A configuration mistake fails Prepare (at
// start-up, naming the key); an unreachable provider fails Open, which may
// be tried again later (gatehouse retries it with backoff).
type Prepared struct {
	s      *settings
	client *http.Client
	logger *slog.Logger
	opts   options
}

type options struct {
	metrics     *Metrics
	connectorID string
	now         func() time.Time
}

// Option configures Prepare.
type Option func(*options)

// WithMetrics counts the connector's JWKS fetches in m under the label
// connector=id.
func WithMetrics(m *Metrics, id string) Option {
	return func(o *options) { o.metrics, o.connectorID = m, id }
}

// WithClock sets the clock that subject tokens' exp, nbf and iat and the
// JWKS cache's intervals are measured with (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Prepare validates cfg without any network access.
func Prepare(cfg Config, logger *slog.Logger, opts ...Option) (*Prepared, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The caller's logger names the connector (its id, "connector"); this
	// one adds the type and the upstream under keys of their own, so that
	// no JSON log line repeats a key.
	p := &Prepared{s: s, client: newHTTPClient(s.rootCAs), logger: logger.With("connector_type", Type, "upstream", s.issuer), opts: o}
	if s.issuerAlias != "" {
		p.logger.Warn("issuerAlias is set: the discovery document's issuer is not checked; tokens must name issuerAlias", "issuerAlias", s.issuerAlias)
	}
	return p, nil
}

// ExchangeOnly reports whether the connector has no client at the
// provider (neither clientID nor redirectURI): it serves the token
// exchange grant only, and must not be offered for login.
func (p *Prepared) ExchangeOnly() bool { return p.s.exchangeOnly }

// Issuer is the provider's issuer URL that Open discovers.
func (p *Prepared) Issuer() string { return p.s.issuer }

// Open discovers the provider (its discovery document and keys URL) and
// returns the connector. ctx bounds discovery.
func (p *Prepared) Open(ctx context.Context) (*Connector, error) {
	s := p.s
	c := &Connector{s: s, client: p.client, logger: p.logger, now: p.opts.now}

	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, c.client), 30*time.Second)
	defer cancel()
	if s.issuerAlias != "" {
		dctx = oidc.InsecureIssuerURLContext(dctx, s.issuerAlias)
	}
	provider, err := oidc.NewProvider(dctx, s.issuer)
	if err != nil {
		return nil, discoveryError(s.issuer, err)
	}
	c.provider = provider

	var meta struct {
		ScopesSupported      []string `json:"scopes_supported"`
		CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
		JWKSURI              string   `json:"jwks_uri"`
		SigningAlgs          []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc connector: issuer: discovery document of %s: %w", s.issuer, err)
	}
	c.offlineScope = slices.Contains(meta.ScopesSupported, "offline_access")
	if len(meta.CodeChallengeMethods) > 0 && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		c.logger.Warn("the provider does not advertise PKCE S256; gatehouse sends it anyway", "code_challenge_methods_supported", meta.CodeChallengeMethods)
	}
	if s.getUserInfo && provider.UserInfoEndpoint() == "" {
		return nil, configError("getUserInfo", "the provider's discovery document has no userinfo_endpoint")
	}

	c.endpoint = provider.Endpoint()
	switch {
	case s.basicAuthUnsupported != nil:
		if *s.basicAuthUnsupported {
			c.endpoint.AuthStyle = oauth2.AuthStyleInParams
		}
	case knownNoBasicAuth(s.issuer):
		c.endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	c.verifier = provider.Verifier(&oidc.Config{ClientID: s.clientID})
	c.openExchange(meta.JWKSURI, meta.SigningAlgs, p.opts)
	// The keys for token exchange, now rather than at the first exchange
	// (a failure here is not the connector's: the first exchange retries).
	if err := c.keys.ensure(dctx); err != nil {
		c.logger.Warn("the provider's keys could not be fetched yet; token exchange will retry", "err", err)
	}
	return c, nil
}

// openExchange prepares the verification of subject tokens: the
// provider's keys (keyCache) and the algorithms it announces that are on
// the asymmetric allow-list (RS256 when it announces none).
func (c *Connector) openExchange(jwksURI string, announced []string, o options) {
	var algs []string
	for _, a := range announced {
		if slices.Contains(exchangeAlgs, a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		if len(announced) > 0 {
			c.logger.Warn("the provider announces no asymmetric signing algorithm; subject tokens are accepted with RS256 only", "id_token_signing_alg_values_supported", announced)
		}
		algs = []string{oidc.RS256}
	}
	joseAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		joseAlgs[i] = jose.SignatureAlgorithm(a)
	}
	c.keys = &keyCache{url: jwksURI, client: c.client, algs: joseAlgs, now: c.now, logger: c.logger,
		fetches: o.metrics.jwksFetches.WithLabelValues(o.connectorID)}
	iss := c.s.issuer
	if c.s.issuerAlias != "" {
		iss = c.s.issuerAlias
	}
	c.exchangeVerifier = oidc.NewVerifier(iss, c.keys, &oidc.Config{
		// aud is checked against tokenExchange.audiences (several may be allowed).
		SkipClientIDCheck: true, SupportedSigningAlgs: algs, Now: c.now,
	})
}

// knownNoBasicAuth: providers that refuse HTTP Basic client
// authentication, as Dex detects them when basicAuthUnsupported is unset.
func knownNoBasicAuth(issuer string) bool {
	u, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	host := u.Hostname()
	for _, d := range []string{"okta.com", "oktapreview.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// discoveryError explains a failed discovery, above all a TLS failure.
func discoveryError(issuer string, err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		verifyErr *tls.CertificateVerificationError
		hostErr   x509.HostnameError
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("oidc connector: issuer: the TLS certificate of %s is signed by a CA this host does not trust; if the provider uses a private CA, list its PEM file in rootCAs: %w", issuer, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("oidc connector: issuer: the TLS certificate of %s is not valid for that host name; check issuer: %w", issuer, err)
	case errors.As(err, &verifyErr):
		return fmt.Errorf("oidc connector: issuer: cannot verify the TLS certificate of %s (check rootCAs and the provider's certificate): %w", issuer, err)
	}
	return fmt.Errorf("oidc connector: issuer: discovery at %s/.well-known/openid-configuration failed: %w", strings.TrimSuffix(issuer, "/"), err)
}

func (c *Connector) oauth2Config(scopes []string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.s.clientID, ClientSecret: c.s.clientSecret,
		Endpoint: c.endpoint, RedirectURL: c.s.redirectURI, Scopes: scopes,
	}
}

// scopes are openid, the configured scopes, and offline_access when the
// client asked for offline access and the provider advertises it.
func (c *Connector) scopes(s connector.Scopes) []string {
	out := append([]string{oidc.ScopeOpenID}, c.s.scopes...)
	if s.OfflineAccess && c.offlineScope && !slices.Contains(out, oidc.ScopeOfflineAccess) {
		out = append(out, oidc.ScopeOfflineAccess)
	}
	return out
}

// LoginURL returns the provider's authorization URL with the issuer's
// state, a fresh nonce and a PKCE S256 challenge; connData keeps the nonce
// and the verifier for HandleCallback.
func (c *Connector) LoginURL(_ context.Context, s connector.Scopes, callbackURL, state string) (string, []byte, error) {
	if c.s.exchangeOnly {
		return "", nil, &connector.UserError{
			Status: http.StatusBadRequest, Reason: "exchange_only",
			Title:       "No login here",
			Message:     "This connector has no client at its provider (no clientID): it only exchanges tokens (for CI jobs). Choose another login method.",
			Description: "this connector only accepts token exchange",
			Err:         errors.New("oidc: login through a connector without clientID"),
		}
	}
	if callbackURL != c.s.redirectURI {
		return "", nil, fmt.Errorf("oidc: callback URL %q does not match redirectURI %q", callbackURL, c.s.redirectURI)
	}
	nonce, err := randomString()
	if err != nil {
		return "", nil, err
	}
	ld := loginData{Nonce: nonce, Verifier: oauth2.GenerateVerifier()}
	connData, err := json.Marshal(ld)
	if err != nil {
		return "", nil, fmt.Errorf("oidc: encode login data: %w", err)
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(ld.Verifier), oidc.Nonce(nonce)}
	if len(c.s.acrValues) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(c.s.acrValues, " ")))
	}
	if s.OfflineAccess {
		opts = append(opts, oauth2.AccessTypeOffline)
		if c.s.prompt != "" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", c.s.prompt))
		}
	}
	return c.oauth2Config(c.scopes(s)).AuthCodeURL(state, opts...), connData, nil
}

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("oidc: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HandleCallback exchanges the code (with the PKCE verifier), verifies the
// ID token (signature, issuer, audience, expiry, nonce) and maps its
// claims, merged with userinfo's when getUserInfo is set.
func (c *Connector) HandleCallback(ctx context.Context, _ connector.Scopes, connData []byte, r *http.Request) (connector.Identity, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return connector.Identity{}, upstreamError(e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return connector.Identity{}, &connector.UserError{
			Status: http.StatusBadRequest, Reason: "no_code",
			Title:       "Login not completed",
			Message:     "The identity provider sent you back without a login code. Start again from your application.",
			Description: "the identity provider sent no authorization code",
			Err:         errors.New("oidc: callback without code or error"),
		}
	}
	var ld loginData
	if err := json.Unmarshal(connData, &ld); err != nil || ld.Nonce == "" || ld.Verifier == "" {
		return connector.Identity{}, fmt.Errorf("oidc: the auth request has no usable login data (nonce, PKCE verifier)")
	}
	ctx = oidc.ClientContext(ctx, c.client)
	token, err := c.oauth2Config(nil).Exchange(ctx, code, oauth2.VerifierOption(ld.Verifier))
	if err != nil {
		return connector.Identity{}, c.tokenError("exchange the code", err)
	}
	return c.identity(ctx, token, ld.Nonce, "")
}

// upstreamError maps an error= on the callback. The provider's own
// error_description goes to the client with access_denied: providers
// write it for people ("AADSTS50105: ... not assigned to a role for the
// application"), and it is often the only useful word on why.
func upstreamError(code, desc string) error {
	cause := fmt.Errorf("oidc: the provider returned error=%s: %s", code, desc)
	switch code {
	case "access_denied":
		d := "access denied at the identity provider"
		if desc != "" {
			d += ": " + desc
		}
		return &connector.UserError{
			Status: http.StatusForbidden, Reason: "access_denied",
			Title:       "Login cancelled",
			Message:     "The login was cancelled or access was denied at your identity provider. Start again from your application to retry.",
			Description: d,
			Err:         cause,
		}
	case "login_required", "consent_required", "interaction_required", "account_selection_required":
		return &connector.UserError{
			Status: http.StatusForbidden, Reason: code,
			Title:       "Login not completed",
			Message:     "Your identity provider needs you to log in or consent again. Start again from your application.",
			Description: "the identity provider needs you to log in or consent again (" + code + ")",
			Err:         cause,
		}
	case "temporarily_unavailable":
		return &connector.UserError{
			Status: http.StatusServiceUnavailable, Reason: code, RetryAfter: time.Minute,
			Title:       "Identity provider unavailable",
			Message:     "Your identity provider is temporarily unavailable. Try again in a minute.",
			Description: "the identity provider is temporarily unavailable; try again in a minute",
			Err:         cause,
		}
	}
	// invalid_request, unauthorized_client, invalid_scope, server_error,
	// ...: the provider refused gatehouse's request (a configuration to
	// fix) or failed itself; the user can only tell the administrator.
	return &connector.UserError{
		Status: http.StatusBadGateway, Reason: "upstream_error",
		Title:       "Login failed at your identity provider",
		Message:     "Your identity provider sent you back with an error instead of a login. Try again; if it keeps failing, tell your administrator the request ID below.",
		Description: "the identity provider returned error " + code,
		Err:         cause,
	}
}

// tokenError explains a refused token request.
func (c *Connector) tokenError(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "invalid_grant":
			return &connector.UserError{
				Status: http.StatusBadRequest, Reason: "invalid_grant",
				Title:       "Login expired",
				Message:     "Your identity provider no longer accepts this login or session. Log in again from your application.",
				Description: "the identity provider no longer accepts this login; log in again",
				Err:         fmt.Errorf("oidc: %s: %w", what, err),
			}
		case "invalid_client", "unauthorized_client":
			return fmt.Errorf("oidc: %s: the provider refused the client (check clientID, clientSecret, basicAuthUnsupported): %w", what, err)
		}
		// A provider that is busy or failing (429, 5xx, or its own
		// temporarily_unavailable): try again later, nothing was refused.
		if code := retrieveStatus(re); code == http.StatusTooManyRequests || code >= 500 || re.ErrorCode == "temporarily_unavailable" {
			wait := time.Minute
			if re.Response != nil {
				if n, err := strconv.Atoi(strings.TrimSpace(re.Response.Header.Get("Retry-After"))); err == nil && n > 0 {
					wait = time.Duration(n) * time.Second
				}
			}
			return &connector.UserError{
				Status: http.StatusServiceUnavailable, Reason: "upstream_unavailable", RetryAfter: wait,
				Title:       "Identity provider unavailable",
				Message:     "Your identity provider is temporarily unavailable. Try again in a minute.",
				Description: "the identity provider is temporarily unavailable",
				Err:         fmt.Errorf("oidc: %s: %w", what, err),
			}
		}
	}
	return fmt.Errorf("oidc: %s: %w", what, err)
}

func retrieveStatus(re *oauth2.RetrieveError) int {
	if re.Response == nil {
		return 0
	}
	return re.Response.StatusCode
}

// verifyError is a reply from the provider that failed a check.
func verifyError(err error) error {
	return &connector.UserError{
		Status: http.StatusForbidden, Reason: "id_token_invalid",
		Title:       "Login could not be verified",
		Message:     "The reply from your identity provider did not pass gatehouse's checks. Start the login again; if it keeps failing, tell your administrator.",
		Description: "the identity provider's reply failed verification",
		Err:         err,
	}
}

// identity verifies the token response and maps its claims. nonce is the
// one sent at login ("" on refresh, where prevSub is the subject the
// session started with).
func (c *Connector) identity(ctx context.Context, token *oauth2.Token, nonce, prevSub string) (connector.Identity, error) {
	claims := map[string]any{}
	idSub := ""
	raw, _ := token.Extra("id_token").(string)
	switch {
	case raw != "":
		idt, err := c.verifier.Verify(ctx, raw)
		if err != nil {
			return connector.Identity{}, verifyError(fmt.Errorf("oidc: verify the ID token: %w", err))
		}
		if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
			return connector.Identity{}, verifyError(fmt.Errorf("oidc: the ID token's nonce %q is not the one sent", idt.Nonce))
		}
		if idt.AccessTokenHash != "" {
			if err := idt.VerifyAccessToken(token.AccessToken); err != nil {
				return connector.Identity{}, verifyError(fmt.Errorf("oidc: at_hash: %w", err))
			}
		}
		if err := idt.Claims(&claims); err != nil {
			return connector.Identity{}, fmt.Errorf("oidc: decode ID token claims: %w", err)
		}
		idSub = idt.Subject
	case nonce != "":
		return connector.Identity{}, errors.New("oidc: the provider's token response has no id_token (is openid granted to this client?)")
	case !c.s.getUserInfo:
		return connector.Identity{}, errors.New("oidc: the provider returned no ID token on refresh; set getUserInfo: true to refresh through the userinfo endpoint")
	}

	if c.s.getUserInfo {
		ui, err := c.provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token.AccessToken, TokenType: "Bearer"}))
		if err != nil {
			return connector.Identity{}, fmt.Errorf("oidc: userinfo: %w", err)
		}
		if idSub != "" && ui.Subject != idSub {
			return connector.Identity{}, verifyError(fmt.Errorf("oidc: userinfo is for subject %q, the ID token for %q", ui.Subject, idSub))
		}
		if err := ui.Claims(&claims); err != nil {
			return connector.Identity{}, fmt.Errorf("oidc: decode userinfo claims: %w", err)
		}
	}

	sub, _ := claims["sub"].(string)
	if prevSub != "" && sub != prevSub {
		return connector.Identity{}, verifyError(fmt.Errorf("oidc: refresh returned subject %q, the session is for %q", sub, prevSub))
	}
	id, err := c.s.mapClaims(claims)
	if err != nil {
		return connector.Identity{}, err
	}
	data, err := json.Marshal(sessionData{RefreshToken: []byte(token.RefreshToken), Subject: sub})
	if err != nil {
		return connector.Identity{}, fmt.Errorf("oidc: encode session data: %w", err)
	}
	id.ConnectorData = data
	return id, nil
}

// Refresh redeems the upstream refresh token kept in ConnectorData and
// reads the claims again, so a user removed upstream loses access and
// changed groups take effect. A refusal by the provider is an error.
func (c *Connector) Refresh(ctx context.Context, _ connector.Scopes, id connector.Identity) (connector.Identity, error) {
	var sd sessionData
	if err := json.Unmarshal(id.ConnectorData, &sd); err != nil {
		return connector.Identity{}, fmt.Errorf("oidc: refresh: session data: %w", err)
	}
	if len(sd.RefreshToken) == 0 {
		return connector.Identity{}, &connector.UserError{
			Status: http.StatusBadRequest, Reason: "no_upstream_refresh_token",
			Title:       "Log in again",
			Message:     "Your identity provider gave no refresh token for this session, so it cannot be extended. Log in again.",
			Description: "the identity provider gave no refresh token for this session; log in again",
			Err:         errors.New("oidc: refresh: the session has no upstream refresh token"),
		}
	}
	ctx = oidc.ClientContext(ctx, c.client)
	// An expired token makes the TokenSource refresh at once.
	old := &oauth2.Token{RefreshToken: string(sd.RefreshToken), Expiry: time.Unix(1, 0)}
	token, err := c.oauth2Config(nil).TokenSource(ctx, old).Token()
	if err != nil {
		return connector.Identity{}, c.tokenError("refresh", err)
	}
	return c.identity(ctx, token, "", sd.Subject)
}
