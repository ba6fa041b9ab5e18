package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Tokens is a token response.
type Tokens struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// Browser drives an OAuth 2.0 authorization code login the way a browser
// does: it follows every redirect (issuer, upstream GitHub, the issuer's
// callback) until the issuer sends it to the client's redirect URI, which
// nothing listens on; the code is taken from that URL.
type Browser struct {
	Client      *http.Client
	RedirectURI string
}

// NewBrowser trusts the given PEM CAs and keeps cookies.
func NewBrowser(redirectURI string, caPEMs ...[]byte) *Browser {
	pool := x509.NewCertPool()
	for _, p := range caPEMs {
		pool.AppendCertsFromPEM(p)
	}
	jar, _ := cookiejar.New(nil)
	redirectHost := mustURL(redirectURI).Host
	return &Browser{
		RedirectURI: redirectURI,
		Client: &http.Client{
			Timeout:   30 * time.Second,
			Jar:       jar,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Host == redirectHost || len(via) > 10 {
					return http.ErrUseLastResponse
				}
				return nil
			},
		},
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// SetCookie sets a cookie for a site (e.g. the fake GitHub's login).
func (b *Browser) SetCookie(site, name, value string) {
	b.Client.Jar.SetCookies(mustURL(site), []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// LoginError is a login that ended on a page instead of at the client.
type LoginError struct {
	Status int
	Page   string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("login ended on a %d page: %s", e.Status, e.Page)
}

// Login starts at the issuer's authorization endpoint and returns the
// authorization code the issuer sends to the redirect URI.
func (b *Browser) Login(ctx context.Context, issuerURL, clientID, scope string) (string, error) {
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {b.RedirectURI}, "response_type": {"code"},
		"scope": {scope}, "state": {"e2e-state-0123456789"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuerURL+"/auth?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode < 300 || resp.StatusCode >= 400 || loc == nil {
		return "", &LoginError{Status: resp.StatusCode, Page: string(body)}
	}
	if e := loc.Query().Get("error"); e != "" {
		return "", fmt.Errorf("login: the issuer answered %s: %s", e, loc.Query().Get("error_description"))
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("login: redirect without a code: %s", loc)
	}
	return code, nil
}

// Exchange redeems a code (or, with grant refresh_token, a refresh token)
// at the token endpoint as a confidential client.
func (b *Browser) Exchange(ctx context.Context, issuerURL, clientID, clientSecret string, form url.Values) (Tokens, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuerURL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := b.Client.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return Tokens{}, fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, body)
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil {
		return Tokens{}, fmt.Errorf("token response: %w", err)
	}
	if t.IDToken == "" {
		return Tokens{}, fmt.Errorf("token response without id_token: %s", body)
	}
	return t, nil
}

// TokenKubeconfig writes a kubeconfig for this cluster whose user is a
// static bearer token.
func (c *Cluster) TokenKubeconfig(name, token string) (string, error) {
	return c.writeUserKubeconfig(name, fmt.Sprintf("    token: %s\n", token))
}
