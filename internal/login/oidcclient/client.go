// Package oidcclient is the plugin's OpenID Connect client: discovery, the
// token endpoint for each grant, ID token verification, and revocation. It
// stands on golang.org/x/oauth2 and github.com/coreos/go-oidc/v3 and is
// used only off the warm path (a cache hit never builds a Client).
package oidcclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Config describes the client registration and how to reach the issuer.
type Config struct {
	IssuerURL    string
	ClientID     string
	ClientSecret string
	// ExtraScopes are requested with openid.
	ExtraScopes []string
	// PKCEMethod is auto (S256 when discovery lists it), no, or S256.
	PKCEMethod string
	// UseAccessToken hands the access token to kubectl instead of the ID token.
	UseAccessToken bool
	// HTTPClient carries the TLS settings (default http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock for token verification (default time.Now).
	Now func() time.Time
}

// TokenSet is what a successful grant returns.
type TokenSet struct {
	// IDToken is the credential for kubectl (the access token with
	// UseAccessToken).
	IDToken      string
	RefreshToken string
	// Claims is the verified token's payload.
	Claims map[string]any
}

// Client talks to one issuer.
type Client struct {
	cfg      Config
	provider *oidc.Provider
	meta     metadata
	oauth    oauth2.Config
}

type metadata struct {
	Issuer                            string   `json:"issuer"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// New fetches the issuer's discovery document.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", cfg.IssuerURL, err)
	}
	var m metadata
	if err := p.Claims(&m); err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", cfg.IssuerURL, err)
	}
	ep := p.Endpoint()
	ep.DeviceAuthURL = m.DeviceAuthorizationEndpoint
	if cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams // a public client sends client_id in the form
	}
	scopes := append([]string{oidc.ScopeOpenID}, cfg.ExtraScopes...)
	// Dex and gatehouse issue a refresh token only for offline_access;
	// without one, every hour ends in a browser. Ask for it when the
	// issuer offers it (kubelogin does not; its users add it by hand).
	if slices.Contains(m.ScopesSupported, oidc.ScopeOfflineAccess) && !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		scopes = append(scopes, oidc.ScopeOfflineAccess)
	}
	c := &Client{cfg: cfg, provider: p, meta: m, oauth: oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: ep, Scopes: scopes,
	}}
	return c, nil
}

// CloseIdleConnections closes the HTTP client's idle connections.
func (c *Client) CloseIdleConnections() { c.cfg.HTTPClient.CloseIdleConnections() }

// Issuer is the issuer identifier from discovery.
func (c *Client) Issuer() string { return c.meta.Issuer }

// UsePKCE says whether to send a S256 code challenge.
func (c *Client) UsePKCE() bool {
	switch c.cfg.PKCEMethod {
	case "no":
		return false
	case "S256":
		return true
	}
	return slices.Contains(c.meta.CodeChallengeMethodsSupported, "S256")
}

// ISSParameterRequired says whether the issuer promised the RFC 9207 iss
// parameter on authorization responses (then a response without it is
// rejected).
func (c *Client) ISSParameterRequired() bool { return c.meta.AuthorizationResponseISSSupported }

// DeviceFlowSupported says whether discovery offers a device endpoint.
func (c *Client) DeviceFlowSupported() bool { return c.meta.DeviceAuthorizationEndpoint != "" }

// AuthRequest is one authorization request's secrets.
type AuthRequest struct {
	State, Nonce, Verifier, RedirectURL string
	Extra                               map[string]string
}

// AuthCodeURL builds the authorization URL.
func (c *Client) AuthCodeURL(r AuthRequest) string {
	cfg := c.oauth
	cfg.RedirectURL = r.RedirectURL
	opts := []oauth2.AuthCodeOption{oidc.Nonce(r.Nonce)}
	if r.Verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(r.Verifier))
	}
	for k, v := range r.Extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return cfg.AuthCodeURL(r.State, opts...)
}

// ExchangeCode redeems an authorization code and verifies the ID token,
// nonce included.
func (c *Client) ExchangeCode(ctx context.Context, r AuthRequest, code string) (TokenSet, error) {
	cfg := c.oauth
	cfg.RedirectURL = r.RedirectURL
	var opts []oauth2.AuthCodeOption
	if r.Verifier != "" {
		opts = append(opts, oauth2.VerifierOption(r.Verifier))
	}
	tok, err := cfg.Exchange(c.ctx(ctx), code, opts...)
	if err != nil {
		return TokenSet{}, fmt.Errorf("redeem the authorization code: %w", err)
	}
	return c.verify(ctx, tok, r.Nonce)
}

// Refresh redeems a refresh token.
//
// An issuer that is busy, failing or unreachable gives an
// *UnavailableError: the refresh token is still good.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (TokenSet, error) {
	src := c.oauth.TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return TokenSet{}, fmt.Errorf("refresh: %w", Unavailable(err))
	}
	ts, err := c.verify(ctx, tok, "")
	if err == nil && ts.RefreshToken == "" {
		ts.RefreshToken = refreshToken // the issuer kept the old one
	}
	return ts, err
}

// Password runs the resource owner password credentials grant.
func (c *Client) Password(ctx context.Context, username, password string) (TokenSet, error) {
	tok, err := c.oauth.PasswordCredentialsToken(c.ctx(ctx), username, password)
	if err != nil {
		return TokenSet{}, fmt.Errorf("password grant: %w", err)
	}
	return c.verify(ctx, tok, "")
}

// ClientCredentials runs the client credentials grant (RFC 6749 4.4, for
// kubelogin's --grant-type=client-credentials) with the client's secret in
// the Authorization header and params as extra form parameters, as
// kubelogin does. It asks for openid and the extra scopes only: a refresh
// token has no use here (RFC 6749 4.4.3).
func (c *Client) ClientCredentials(ctx context.Context, params map[string]string) (TokenSet, error) {
	cc := clientcredentials.Config{
		ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, TokenURL: c.oauth.Endpoint.TokenURL,
		Scopes: append([]string{oidc.ScopeOpenID}, c.cfg.ExtraScopes...), AuthStyle: oauth2.AuthStyleInHeader,
	}
	if len(params) > 0 {
		cc.EndpointParams = url.Values{}
		for k, v := range params {
			cc.EndpointParams.Set(k, v)
		}
	}
	tok, err := cc.Token(c.ctx(ctx))
	if err != nil {
		return TokenSet{}, fmt.Errorf("client credentials grant: %w", err)
	}
	return c.verify(ctx, tok, "")
}

// DeviceAuth starts the device authorization grant (RFC 8628).
func (c *Client) DeviceAuth(ctx context.Context) (*oauth2.DeviceAuthResponse, error) {
	if !c.DeviceFlowSupported() {
		return nil, fmt.Errorf("the issuer %s offers no device_authorization_endpoint", c.cfg.IssuerURL)
	}
	var opts []oauth2.AuthCodeOption
	if c.cfg.ClientSecret != "" {
		// RFC 8628 3.1: a confidential client authenticates here too;
		// x/oauth2 sends only client_id, so add the secret to the form.
		opts = append(opts, oauth2.SetAuthURLParam("client_secret", c.cfg.ClientSecret))
	}
	r, err := c.oauth.DeviceAuth(c.ctx(ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	return r, nil
}

// DeviceToken polls the token endpoint at the interval the issuer asked
// for, slowing down when told to, until the user approves, denies, or the
// code or ctx expires.
func (c *Client) DeviceToken(ctx context.Context, r *oauth2.DeviceAuthResponse) (TokenSet, error) {
	tok, err := c.oauth.DeviceAccessToken(c.ctx(ctx), r)
	if err != nil {
		return TokenSet{}, fmt.Errorf("device code: %w", err)
	}
	return c.verify(ctx, tok, "")
}

// RevocationSupported says whether discovery offers revocation_endpoint.
func (c *Client) RevocationSupported() bool { return c.meta.RevocationEndpoint != "" }

// Revoke revokes a token (RFC 7009).
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	if !c.RevocationSupported() {
		return errors.New("the issuer offers no revocation_endpoint")
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	if c.cfg.ClientSecret == "" {
		form.Set("client_id", c.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.meta.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke: %s answered %s", c.meta.RevocationEndpoint, resp.Status)
	}
	return nil
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient)
}

// verify checks the ID token's signature, issuer, audience, expiry and,
// when nonce is set, its nonce.
func (c *Client) verify(ctx context.Context, tok *oauth2.Token, nonce string) (TokenSet, error) {
	raw, _ := tok.Extra("id_token").(string)
	ctx = oidc.ClientContext(ctx, c.cfg.HTTPClient)
	ts := TokenSet{RefreshToken: tok.RefreshToken}
	if raw == "" && !c.cfg.UseAccessToken {
		return TokenSet{}, errors.New("the token response has no id_token")
	}
	if raw != "" {
		idt, err := c.provider.Verifier(&oidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now}).Verify(ctx, raw)
		if err != nil {
			return TokenSet{}, fmt.Errorf("verify the ID token: %w", err)
		}
		if nonce != "" && idt.Nonce != nonce {
			return TokenSet{}, errors.New("verify the ID token: nonce does not match the authorization request (replayed or injected token)")
		}
		if err := idt.Claims(&ts.Claims); err != nil {
			return TokenSet{}, fmt.Errorf("verify the ID token: %w", err)
		}
		ts.IDToken = raw
	}
	if c.cfg.UseAccessToken {
		if tok.AccessToken == "" {
			return TokenSet{}, errors.New("the token response has no access_token")
		}
		at, err := c.provider.Verifier(&oidc.Config{SkipClientIDCheck: true, Now: c.cfg.Now}).Verify(ctx, tok.AccessToken)
		if err != nil {
			return TokenSet{}, fmt.Errorf("verify the access token: %w", err)
		}
		ts.Claims = nil
		if err := at.Claims(&ts.Claims); err != nil {
			return TokenSet{}, fmt.Errorf("verify the access token: %w", err)
		}
		ts.IDToken = tok.AccessToken
	}
	return ts, nil
}
