// Package github logs users in through GitHub (github.com or GitHub
// Enterprise Server) with an OAuth App or a GitHub App, and turns their
// organization and team memberships into groups formed as Dex forms them
// ("org:team"). It reads Dex's github connector configuration and adds
// parent teams, bounded group refreshes, expiring GitHub App user tokens,
// and clear pages for rate limits and denied users.
package github

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	gh "github.com/google/go-github/v84/github"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

const (
	scopeEmail = "user:email"
	scopeOrgs  = "read:org"

	defaultRequestTimeout = 10 * time.Second
	defaultTimeout        = 30 * time.Second
	// expiryMargin refreshes a GitHub App token this long before it expires.
	expiryMargin = time.Minute
)

var (
	_ connector.CallbackConnector = (*Connector)(nil)
	_ connector.RefreshConnector  = (*Connector)(nil)
)

// Connector is a GitHub connector. It is safe for concurrent use.
type Connector struct {
	cfg     *settings
	logger  *slog.Logger
	client  *http.Client
	now     func() time.Time
	timeout time.Duration
	limited *prometheus.CounterVec
}

// Option changes how New builds a Connector, mostly for tests.
type Option func(*options)

type options struct {
	client   *http.Client
	webURL   string
	apiURL   string
	now      func() time.Time
	timeout  time.Duration
	registry prometheus.Registerer
}

// WithHTTPClient makes the connector use c for OAuth and REST calls
// (instead of one built from rootCA with a 10-second timeout).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithURLs overrides where GitHub is: webURL is the host root serving
// /login/oauth/..., apiURL the REST base (https://api.github.com, or
// https://HOST/api/v3 for Enterprise).
func WithURLs(webURL, apiURL string) Option {
	return func(o *options) { o.webURL, o.apiURL = webURL, apiURL }
}

// WithClock sets the clock used for token expiry and refresh intervals.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTimeout bounds a whole login or refresh, all GitHub calls included
// (default 30s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRegisterer registers the connector's metrics
// (gatehouse_github_rate_limited_total) on r. Several connectors may share
// one registry.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.registry = r } }

// New validates cfg and returns a connector. Errors name the offending key.
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Connector, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.webURL != "" {
		s.webURL = trimSlash(o.webURL)
		s.apiURL = trimSlash(o.apiURL) + "/"
	}
	c := &Connector{
		cfg:     s,
		logger:  logger.With("connector_type", "github"),
		client:  o.client,
		now:     o.now,
		timeout: o.timeout,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.roots}
		c.client = &http.Client{Transport: tr, Timeout: defaultRequestTimeout}
	}
	c.client = c.sameHostRedirects(c.client)
	if c.limited, err = rateLimitedCounter(o.registry); err != nil {
		return nil, err
	}
	if cfg.Org != "" {
		c.logger.Warn("github connector: the legacy key org is in use; prefer orgs")
	}
	if cfg.LoadAllGroups && (cfg.Org != "" || len(cfg.Orgs) > 0) {
		c.logger.Warn("github connector: loadAllGroups has no effect when org or orgs is set")
	}
	return c, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// sameHostRedirects returns a copy of hc that follows redirects only to
// the API's own host, so a token is never sent elsewhere. GitHub
// redirects a membership check to the public membership check on the same
// host.
func (c *Connector) sameHostRedirects(hc *http.Client) *http.Client {
	cp := *hc
	api, _ := url.Parse(c.cfg.apiURL)
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 || req.URL.Host != api.Host || req.URL.Scheme != api.Scheme {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &cp
}

func (c *Connector) oauth2Config(s connector.Scopes) *oauth2.Config {
	scopes := []string{scopeEmail}
	if c.cfg.groupsRequired(s.Groups) {
		scopes = append(scopes, scopeOrgs)
	}
	return &oauth2.Config{
		ClientID:     c.cfg.ClientID,
		ClientSecret: c.cfg.ClientSecret,
		RedirectURL:  c.cfg.RedirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   c.cfg.webURL + "/login/oauth/authorize",
			TokenURL:  c.cfg.webURL + "/login/oauth/access_token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// apiClient returns a go-github client calling the API with token.
func (c *Connector) apiClient(token string) (*gh.Client, error) {
	cl := gh.NewClient(c.client).WithAuthToken(token)
	if c.cfg.enterprise {
		return cl.WithEnterpriseURLs(c.cfg.apiURL, c.cfg.apiURL)
	}
	base, err := url.Parse(c.cfg.apiURL)
	if err != nil {
		return nil, fmt.Errorf("github: API URL: %w", err)
	}
	cl.BaseURL = base
	return cl, nil
}

// connectorData is kept with a session for Refresh. The first three keys
// are Dex's, so sessions carried over from Dex keep refreshing.
type connectorData struct {
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	// RefreshExpiry is when a GitHub App refresh token stops working.
	RefreshExpiry time.Time `json:"refreshExpiry,omitzero"`
	// GroupsFetchedAt is when the identity and groups were last read from
	// GitHub; Refresh skips GitHub until groupsRefreshInterval has passed.
	GroupsFetchedAt time.Time `json:"groupsFetchedAt,omitzero"`
}

// LoginURL sends the user to GitHub's authorize page, with PKCE (the
// verifier is returned as connData).
func (c *Connector) LoginURL(_ context.Context, s connector.Scopes, callbackURL, state string) (string, []byte, error) {
	if callbackURL != c.cfg.RedirectURI {
		return "", nil, fmt.Errorf("github: callback URL %q does not match redirectURI %q", callbackURL, c.cfg.RedirectURI)
	}
	verifier := oauth2.GenerateVerifier()
	return c.oauth2Config(s).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), []byte(verifier), nil
}

// HandleCallback exchanges the code from GitHub's redirect for a token and
// reads the user, their email and their groups, enforcing org and team
// restrictions.
func (c *Connector) HandleCallback(ctx context.Context, s connector.Scopes, connData []byte, r *http.Request) (connector.Identity, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return connector.Identity{}, &connector.UserError{
				Status: http.StatusForbidden, Reason: "access_denied",
				Title:       "GitHub authorization cancelled",
				Message:     "You did not authorize this app on GitHub, so you are not logged in. Start again and choose Authorize to log in.",
				Description: "authorization cancelled at GitHub",
				Err:         fmt.Errorf("github: %s: %s", e, q.Get("error_description")),
			}
		}
		return connector.Identity{}, &connector.UserError{
			Status: http.StatusBadGateway, Reason: "upstream_error",
			Title:   "GitHub did not complete the login",
			Message: "GitHub sent you back with an error instead of a login. Start again; if it keeps happening, tell your administrator the request ID below.",
			// GitHub's error codes are a short fixed list
			// (redirect_uri_mismatch, application_suspended, ...).
			Description: "GitHub returned error " + e,
			Err:         fmt.Errorf("github: authorize returned %s: %s", e, q.Get("error_description")),
		}
	}
	code := q.Get("code")
	if code == "" {
		return connector.Identity{}, &connector.UserError{Status: http.StatusBadRequest, Reason: "missing_code",
			Title: "Login incomplete", Message: "GitHub did not send an authorization code back. Start the login again.",
			Description: "GitHub sent no authorization code; start the login again"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)

	var exchangeOpts []oauth2.AuthCodeOption
	if len(connData) > 0 {
		exchangeOpts = append(exchangeOpts, oauth2.VerifierOption(string(connData)))
	}
	tok, err := c.oauth2Config(s).Exchange(ctx, code, exchangeOpts...)
	if err != nil {
		return connector.Identity{}, c.tokenError(ctx, "exchange code", err)
	}
	now := c.now()
	data := connectorData{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, GroupsFetchedAt: now}
	setExpiry(&data, tok, now)

	client, err := c.apiClient(data.AccessToken)
	if err != nil {
		return connector.Identity{}, err
	}
	id, err := c.identity(ctx, client, s)
	if err != nil {
		return connector.Identity{}, err
	}
	if s.OfflineAccess {
		if id.ConnectorData, err = json.Marshal(data); err != nil {
			return connector.Identity{}, fmt.Errorf("github: encode connector data: %w", err)
		}
	}
	return id, nil
}

// setExpiry records when a GitHub App token pair expires, by our clock.
func setExpiry(d *connectorData, tok *oauth2.Token, now time.Time) {
	d.Expiry, d.RefreshExpiry = time.Time{}, time.Time{}
	if n := numberExtra(tok.Extra("expires_in")); n > 0 {
		d.Expiry = now.Add(time.Duration(n) * time.Second)
	} else if tok.ExpiresIn > 0 {
		d.Expiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	} else if !tok.Expiry.IsZero() {
		d.Expiry = tok.Expiry
	}
	if n := numberExtra(tok.Extra("refresh_token_expires_in")); n > 0 {
		d.RefreshExpiry = now.Add(time.Duration(n) * time.Second)
	}
}

func numberExtra(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return 0
}

// Refresh re-reads the user and their groups from GitHub, so that a
// person removed from a team or org loses it, but at most once per
// groupsRefreshInterval per session; in between it returns id unchanged.
// An expiring GitHub App token is renewed first with its refresh token.
//
// GitHub's refresh tokens are single-use: when the token was renewed but a
// later call failed (a rate limit, say), the returned error comes with an
// identity whose ConnectorData holds the new tokens; an issuer that keeps
// it lets the session refresh again later.
func (c *Connector) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	var data connectorData
	if len(id.ConnectorData) == 0 {
		return id, errors.New("github: no upstream token kept for this session; log in again")
	}
	if err := json.Unmarshal(id.ConnectorData, &data); err != nil {
		return id, fmt.Errorf("github: decode connector data: %w", err)
	}
	if data.AccessToken == "" && data.RefreshToken == "" {
		return id, errors.New("github: no upstream token kept for this session; log in again")
	}
	now := c.now()
	if age := now.Sub(data.GroupsFetchedAt); !data.GroupsFetchedAt.IsZero() && age >= 0 && age < c.cfg.refreshInterval {
		return id, nil
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)

	if data.RefreshToken != "" && !data.Expiry.IsZero() && !now.Before(data.Expiry.Add(-expiryMargin)) {
		if !data.RefreshExpiry.IsZero() && !now.Before(data.RefreshExpiry) {
			return id, tokenInvalid(errors.New("github: the GitHub App refresh token has expired"))
		}
		tok, err := c.oauth2Config(s).TokenSource(ctx, &oauth2.Token{RefreshToken: data.RefreshToken}).Token()
		if err != nil {
			return id, c.tokenError(ctx, "refresh token", err)
		}
		data.AccessToken = tok.AccessToken
		if tok.RefreshToken != "" {
			data.RefreshToken = tok.RefreshToken
		}
		setExpiry(&data, tok, now)
		c.logger.DebugContext(ctx, "github: refreshed the GitHub App user token", "expiry", data.Expiry)
		// The old refresh token no longer works: keep the new one even if
		// what follows fails.
		if b, err := json.Marshal(data); err == nil {
			id.ConnectorData = b
		}
	}

	client, err := c.apiClient(data.AccessToken)
	if err != nil {
		return id, err
	}
	fresh, err := c.identity(ctx, client, s)
	if err != nil {
		return id, err
	}
	id.Username = fresh.Username
	id.PreferredUsername = fresh.PreferredUsername
	id.Email = fresh.Email
	id.EmailVerified = fresh.EmailVerified
	id.Groups = fresh.Groups
	data.GroupsFetchedAt = now
	if id.ConnectorData, err = json.Marshal(data); err != nil {
		return id, fmt.Errorf("github: encode connector data: %w", err)
	}
	return id, nil
}

// identity reads the user, their email and, when needed, their groups.
func (c *Connector) identity(ctx context.Context, client *gh.Client, s connector.Scopes) (connector.Identity, error) {
	u, _, err := client.Users.Get(ctx, "")
	if err != nil {
		return connector.Identity{}, c.apiError(ctx, "get user", "", err)
	}
	login := u.GetLogin()
	id := connector.Identity{
		UserID:            strconv.FormatInt(u.GetID(), 10),
		Username:          u.GetName(),
		PreferredUsername: login,
		Email:             u.GetEmail(),
		EmailVerified:     true,
	}
	if c.cfg.UseLoginAsID {
		id.UserID = login
	}
	if id.Username == "" {
		id.Username = login
	}
	if id.Email == "" || c.cfg.PreferredEmailDomain != "" {
		if id.Email, err = c.email(ctx, client, login); err != nil {
			return connector.Identity{}, err
		}
	}
	if c.cfg.groupsRequired(s.Groups) {
		if id.Groups, err = c.groups(ctx, client, login, s.Groups); err != nil {
			return connector.Identity{}, err
		}
	}
	return id, nil
}
