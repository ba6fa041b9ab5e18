package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
)

// Exchanger gets exchanged tokens from the issuer: the per-cluster token
// for a login's ID token, or a CI job's token for its own subject token.
type Exchanger struct {
	Login *Login
	// Flags are the exchange flags: audience, source, connector.
	Flags options.Exchange
	// Getenv reads the environment (GitHub Actions' variables, env:NAME).
	Getenv func(string) string
	// ActionsClient makes the request to GitHub Actions' token service
	// (nil: http.DefaultClient, with the system roots: it is GitHub's
	// service, not the issuer, so the issuer's CA flags do not apply).
	ActionsClient *http.Client
}

// Exchange exchanges subject (an ID token of the issuer's) for a token
// whose audience is the cluster's client ID.
func (x *Exchanger) Exchange(ctx context.Context, subject string) (oidcclient.TokenSet, error) {
	c, err := x.Login.Client(ctx)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	return c.Exchange(ctx, oidcclient.ExchangeRequest{SubjectToken: subject, Audience: x.Flags.Audience})
}

// ExchangeSubject gets the CI job's own token from its source and
// exchanges it through the connector. It never opens a browser.
func (x *Exchanger) ExchangeSubject(ctx context.Context) (oidcclient.TokenSet, error) {
	subject, err := x.subjectToken(ctx)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	c, err := x.Login.Client(ctx)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	return c.Exchange(ctx, oidcclient.ExchangeRequest{
		SubjectToken: subject, Audience: x.Flags.Audience, ConnectorID: x.Flags.ConnectorID,
	})
}

func (x *Exchanger) subjectToken(ctx context.Context) (string, error) {
	if x.Flags.SubjectTokenSource != options.SourceGitHubActions {
		return x.Flags.SubjectToken(x.Getenv)
	}
	return GitHubActionsToken(ctx, x.ActionsClient, x.Getenv(options.EnvActionsRequestURL), x.Getenv(options.EnvActionsRequestToken), x.Flags.SubjectTokenAudience)
}

// GitHubActionsToken asks GitHub Actions for the job's OIDC token, as
// actions/toolkit's core.getIDToken does: GET the request URL with
// &audience=, the request token as a bearer token; the answer is
// {"value": "<JWT>"}.
func GitHubActionsToken(ctx context.Context, hc *http.Client, requestURL, requestToken, audience string) (string, error) {
	if requestURL == "" || requestToken == "" {
		return "", fmt.Errorf("--subject-token-source=github-actions: %s and %s are not set: give the workflow (or job) `permissions: id-token: write`",
			options.EnvActionsRequestURL, options.EnvActionsRequestToken)
	}
	u, err := url.Parse(requestURL)
	if err != nil {
		return "", fmt.Errorf("%s: %w", options.EnvActionsRequestURL, err)
	}
	if audience != "" {
		q := u.Query()
		q.Set("audience", audience)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions token request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+requestToken)
	req.Header.Set("Accept", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("GitHub Actions token request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GitHub Actions token request: %s answered %s: %s", u.Host, resp.Status, strings.TrimSpace(string(body)))
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		return "", fmt.Errorf("GitHub Actions token request: %s answered no {\"value\": token}", u.Host)
	}
	return v.Value, nil
}
