package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v84/github"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// defaultSecondaryWait is what the user is told to wait when GitHub's
// secondary rate limit names no time.
const defaultSecondaryWait = time.Minute

func rateLimitedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_github_rate_limited_total",
		Help: "GitHub API calls refused by a rate limit, by kind (primary: hourly budget used up; secondary: too fast).",
	}, []string{"kind"})
	if reg == nil {
		return cv, nil
	}
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("github connector: register metrics: %w", err)
	}
	return cv, nil
}

// Collector returns the connector's metrics, for callers that register
// them themselves instead of using WithRegisterer.
func (c *Connector) Collector() prometheus.Collector { return c.limited }

// apiError turns a REST error into what the issuer should show: a rate
// limit or an unreachable GitHub becomes a UserError, a rejected token a
// UserError asking to log in again, anything else a wrapped error.
func (c *Connector) apiError(ctx context.Context, what, login string, err error) error {
	var (
		primary   *gh.RateLimitError
		secondary *gh.AbuseRateLimitError
		resp      *gh.ErrorResponse
	)
	switch {
	case errors.As(err, &primary):
		reset := primary.Rate.Reset.Time
		if now := c.now(); !reset.After(now) {
			reset = now.Add(defaultSecondaryWait) // no usable reset header
		}
		return c.rateLimited(ctx, "primary", reset.Sub(c.now()), reset, primary.Rate.Resource, what, login, err)
	case errors.As(err, &secondary):
		wait := defaultSecondaryWait
		if secondary.RetryAfter != nil && *secondary.RetryAfter > 0 {
			wait = *secondary.RetryAfter
		}
		return c.rateLimited(ctx, "secondary", wait, c.now().Add(wait), "", what, login, err)
	case errors.As(err, &resp) && resp.Response != nil:
		switch code := resp.Response.StatusCode; {
		case code == http.StatusUnauthorized:
			return tokenInvalid(fmt.Errorf("github: %s: %w", what, err))
		case code == http.StatusTooManyRequests || (code == http.StatusForbidden && resp.Response.Header.Get("Retry-After") != ""):
			wait := retryAfter(resp.Response.Header)
			return c.rateLimited(ctx, "secondary", wait, c.now().Add(wait), "", what, login, err)
		case code >= 500:
			return &connector.UserError{
				Status: http.StatusServiceUnavailable, Reason: "github_unavailable", RetryAfter: retryAfter(resp.Response.Header),
				Title:       "GitHub is not answering properly",
				Message:     "GitHub answered with an error of its own. Try again in a minute.",
				Description: "GitHub answered " + strconv.Itoa(code) + "; try again in a minute",
				Err:         fmt.Errorf("github: %s: %w", what, err),
			}
		}
	}
	if ue := unavailable(err); ue != nil {
		return ue
	}
	return fmt.Errorf("github: %s: %w", what, err)
}

func retryAfter(h http.Header) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return defaultSecondaryWait
}

// unavailable reports a GitHub that did not answer (timeout, connection
// refused) as a UserError, so the user sees "try again" and not a 500.
func unavailable(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) && !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return &connector.UserError{
		Status: http.StatusBadGateway, Reason: "github_unavailable",
		Title:       "GitHub did not answer",
		Message:     "GitHub could not be reached in time. Try again in a minute.",
		Description: "GitHub did not answer in time; try again in a minute",
		Err:         err,
	}
}

// rateLimited counts, logs and explains a rate limit. It never waits.
func (c *Connector) rateLimited(ctx context.Context, kind string, wait time.Duration, reset time.Time, resource, what, login string, err error) error {
	wait = max(wait, time.Second).Round(time.Second)
	c.limited.WithLabelValues(kind).Inc()
	c.logger.WarnContext(ctx, "github: rate limited",
		"kind", kind, "reset", reset.UTC().Format(time.RFC3339), "retry_after", wait.String(),
		"resource", resource, "call", what, "user", login, "err", err)
	msg := fmt.Sprintf("GitHub's API rate limit for your account is used up, so your organization and team memberships cannot be checked now. It resets at %s UTC: try again in %s.",
		reset.UTC().Format("15:04"), humanWait(wait))
	if kind == "secondary" {
		msg = fmt.Sprintf("GitHub is briefly limiting requests from this server (a secondary rate limit). Try again in %s.", humanWait(wait))
	}
	return &connector.UserError{
		Status: http.StatusTooManyRequests, Reason: "rate_limited",
		Title: "GitHub rate limit reached", Message: msg, RetryAfter: wait,
		Description: "GitHub rate limit reached; try again in " + humanWait(wait),
		Err:         fmt.Errorf("github: %s: %w", what, err),
	}
}

func humanWait(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	case d < 2*time.Minute:
		return "about a minute"
	default:
		return fmt.Sprintf("about %d minutes", int((d+time.Minute-1)/time.Minute))
	}
}

// tokenInvalid is a GitHub token that no longer works: revoked by the
// user, or expired beyond refresh.
func tokenInvalid(err error) error {
	return &connector.UserError{
		Status: http.StatusUnauthorized, Reason: "token_revoked",
		Title:       "GitHub authorization no longer valid",
		Message:     "GitHub no longer accepts this app's authorization for your account (it was revoked or has expired). Log in again.",
		Description: "GitHub no longer accepts this app's authorization; log in again",
		Err:         err,
	}
}

// tokenError explains a failure of GitHub's token endpoint.
func (c *Connector) tokenError(ctx context.Context, what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "bad_verification_code":
			return &connector.UserError{
				Status: http.StatusBadRequest, Reason: "bad_verification_code",
				Title:       "Login expired",
				Message:     "GitHub's authorization code was already used or has expired. Start the login again.",
				Description: "GitHub's authorization code was already used or has expired; start the login again",
				Err:         fmt.Errorf("github: %s: %w", what, err),
			}
		case "bad_refresh_token":
			return tokenInvalid(fmt.Errorf("github: %s: %w", what, err))
		case "incorrect_client_credentials":
			return fmt.Errorf("github: %s: GitHub rejected clientID/clientSecret: %w", what, err)
		case "redirect_uri_mismatch":
			return fmt.Errorf("github: %s: redirectURI %q is not the app's callback URL on GitHub: %w", what, c.cfg.RedirectURI, err)
		}
		if re.Response != nil && (re.Response.StatusCode == http.StatusTooManyRequests || re.Response.StatusCode == http.StatusForbidden) {
			wait := retryAfter(re.Response.Header)
			return c.rateLimited(ctx, "secondary", wait, c.now().Add(wait), "", what, "", err)
		}
	}
	if ue := unavailable(err); ue != nil {
		return ue
	}
	return fmt.Errorf("github: %s: %w", what, err)
}

// denied is the page for a user outside every allowed org or team.
func (c *Connector) denied(login string, inSomeOrg bool) error {
	ue := &connector.UserError{Status: http.StatusForbidden, Reason: "not_in_org", Title: "Not a member of an allowed organization"}
	if inSomeOrg {
		ue.Reason, ue.Title = "not_in_team", "Not a member of an allowed team"
	}
	settings := c.cfg.webURL + "/settings/connections/applications/" + url.PathEscape(c.cfg.ClientID)
	if c.cfg.ShowRequiredGroups {
		ue.Description = fmt.Sprintf("membership in %s required; signed in to GitHub as %s", c.requiredShort(), login)
		ue.Message = fmt.Sprintf("You are signed in to GitHub as %s. Logging in here needs membership in %s. Ask an owner to add you, then log in again. If you are already a member, the organization may not have approved this app (see %s).",
			login, c.required(), settings)
	} else {
		ue.Description = "not in an organization or team allowed to log in; signed in to GitHub as " + login
		ue.Message = fmt.Sprintf("You are signed in to GitHub as %s, which is not in an organization or team allowed to log in here. Ask your administrator for access. If you should have it, the organization may not have approved this app (see %s).",
			login, settings)
	}
	ue.Err = fmt.Errorf("github: user %q not in required orgs or teams", login)
	return ue
}

// requiredShort names the allowed orgs and teams in a few words, for the
// client application ("exampleorg", "exampleorg/infra-team or exampleorg/sre").
func (c *Connector) requiredShort() string {
	if c.cfg.Org != "" {
		return c.cfg.Org
	}
	var parts []string
	for _, o := range c.cfg.Orgs {
		if len(o.Teams) == 0 {
			parts = append(parts, o.Name)
			continue
		}
		for _, t := range o.Teams {
			parts = append(parts, o.Name+"/"+t)
		}
	}
	return strings.Join(parts, " or ")
}

// required describes the allowed orgs and teams for the denial page.
func (c *Connector) required() string {
	if c.cfg.Org != "" {
		return "the organization " + c.cfg.Org
	}
	var parts []string
	for _, o := range c.cfg.Orgs {
		if len(o.Teams) == 0 {
			parts = append(parts, "the organization "+o.Name)
			continue
		}
		parts = append(parts, fmt.Sprintf("one of the teams %s of the organization %s", strings.Join(o.Teams, ", "), o.Name))
	}
	return strings.Join(parts, "; or ")
}
