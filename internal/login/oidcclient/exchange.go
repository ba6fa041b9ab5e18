package oidcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Token exchange (RFC 8693) identifiers.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
)

// ExchangeRequest is one token exchange: the subject token, and what to
// exchange it for.
type ExchangeRequest struct {
	// SubjectToken is an ID token: the issuer's own (per-cluster tokens)
	// or an upstream workload's (CI), which ConnectorID then names.
	SubjectToken string
	// Audience is the client ID the issued token is for ("" for the
	// requesting client itself).
	Audience string
	// ConnectorID is Dex's connector_id: the connector that verifies an
	// upstream subject token ("" for the issuer's own).
	ConnectorID string
}

// ErrorResponse is an RFC 6749 5.2 error from the token endpoint.
type ErrorResponse struct {
	Status      int
	Code        string
	Description string
}

func (e *ErrorResponse) Error() string {
	msg := "the issuer refused the token exchange: " + e.Code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg + exchangeHint(e.Code)
}

// exchangeHint says what to do about a refusal, by its RFC code.
func exchangeHint(code string) string {
	switch code {
	case "invalid_target":
		return " (the cluster's client must list this client in its trustedPeers; see gatehouse cluster render --cluster)"
	case "unauthorized_client":
		return " (the issuer does not let this client exchange tokens through that connector: see allowed connectors in its staticClients entry)"
	case "unsupported_grant_type":
		return " (the issuer does not offer token exchange: add " + GrantTokenExchange + " to oauth2.grantTypes, or leave grantTypes unset)"
	}
	return ""
}

// Exchange runs the token exchange grant and verifies the issued ID token
// against the issuer's keys, with the audience asked for. The issuer
// gives no refresh token for it: a new one is an exchange again.
func (c *Client) Exchange(ctx context.Context, r ExchangeRequest) (TokenSet, error) {
	scopes := make([]string, 0, len(c.oauth.Scopes))
	for _, s := range c.oauth.Scopes {
		if s != oidc.ScopeOfflineAccess { // no refresh token for an exchange
			scopes = append(scopes, s)
		}
	}
	form := url.Values{
		"grant_type":           {GrantTokenExchange},
		"subject_token":        {r.SubjectToken},
		"subject_token_type":   {TokenTypeIDToken},
		"requested_token_type": {TokenTypeIDToken},
		"scope":                {strings.Join(scopes, " ")},
	}
	if r.Audience != "" {
		form.Set("audience", r.Audience)
	}
	if r.ConnectorID != "" {
		form.Set("connector_id", r.ConnectorID)
	}
	if c.cfg.ClientSecret == "" {
		form.Set("client_id", c.cfg.ClientID)
	}
	tokenURL := c.oauth.Endpoint.TokenURL
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return TokenSet{}, fmt.Errorf("token exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.cfg.ClientSecret != "" {
		// RFC 6749 2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return TokenSet{}, Unavailable(fmt.Errorf("token exchange: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return TokenSet{}, fmt.Errorf("token exchange: read %s's answer: %w", tokenURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || e.Error == "temporarily_unavailable" {
			// The issuer (or its upstream) cannot do it now: the caller
			// may keep a cached token that is still valid.
			out := &UnavailableError{Status: resp.StatusCode, Code: e.Error, Description: e.Description,
				Err: fmt.Errorf("token exchange: %s answered %s: %s", tokenURL, resp.Status, snippet(body))}
			if n, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && n > 0 {
				out.RetryAfter = time.Duration(n) * time.Second
			}
			return TokenSet{}, out
		}
		if e.Error == "" {
			return TokenSet{}, fmt.Errorf("token exchange: %s answered %s: %s", tokenURL, resp.Status, snippet(body))
		}
		return TokenSet{}, &ErrorResponse{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	var ok struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return TokenSet{}, fmt.Errorf("token exchange: %s answered 200 with no JSON token response: %w", tokenURL, err)
	}
	if ok.IssuedTokenType != TokenTypeIDToken {
		return TokenSet{}, fmt.Errorf("token exchange: asked for an ID token, the issuer issued %q", ok.IssuedTokenType)
	}
	if ok.AccessToken == "" {
		return TokenSet{}, errors.New("token exchange: the response has no access_token")
	}
	aud := r.Audience
	if aud == "" {
		aud = c.cfg.ClientID
	}
	idt, err := c.provider.Verifier(&oidc.Config{ClientID: aud, Now: c.cfg.Now}).Verify(oidc.ClientContext(ctx, c.cfg.HTTPClient), ok.AccessToken)
	if err != nil {
		return TokenSet{}, fmt.Errorf("token exchange: verify the issued ID token: %w", err)
	}
	ts := TokenSet{IDToken: ok.AccessToken}
	if err := idt.Claims(&ts.Claims); err != nil {
		return TokenSet{}, fmt.Errorf("token exchange: %w", err)
	}
	return ts, nil
}

// snippet is the start of a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
