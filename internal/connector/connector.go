// Package connector defines how the issuer talks to an identity source:
// GitHub, an upstream OpenID Connect provider, or local passwords. A
// connector implements the small capability interfaces below that fit it;
// the issuer asks which ones it has. Connectors know nothing of routing or
// storage.
package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Scopes tells a connector what the client asked for, so it can fetch only
// what is needed (groups cost GitHub API calls).
type Scopes struct {
	// OfflineAccess: the client wants a refresh token, so the connector
	// should keep what it needs to refresh upstream in ConnectorData.
	OfflineAccess bool
	// Groups: the client asked for the groups claim.
	Groups bool
}

// Identity is what a connector learned about a user.
type Identity struct {
	// UserID is stable for the user at this connector (GitHub's numeric id).
	UserID string
	// Username is the display name ("name" claim).
	Username string
	// PreferredUsername is the login ("preferred_username" claim).
	PreferredUsername string
	Email             string
	EmailVerified     bool
	Groups            []string
	// ConnectorData is opaque to the issuer and stored with the session;
	// the connector gets it back on Refresh.
	ConnectorData []byte
	// Expiry, when set, is when the evidence of this identity expires (a
	// subject token's exp): the issuer issues nothing that outlives it.
	Expiry time.Time
}

// PasswordConnector logs users in with a username and password typed on
// the issuer's own page (local users, LDAP-like sources).
type PasswordConnector interface {
	// Prompt is the label of the username field ("Email Address").
	Prompt() string
	// Login returns valid=false (and no error) for wrong credentials.
	Login(ctx context.Context, s Scopes, username, password string) (id Identity, valid bool, err error)
}

// CallbackConnector sends the user to an upstream login page, which
// redirects back to the issuer's /callback.
type CallbackConnector interface {
	// LoginURL returns where to send the user. state must come back
	// unchanged on the callback. connData is kept with the auth request and
	// handed to HandleCallback (for example a PKCE verifier or nonce).
	LoginURL(ctx context.Context, s Scopes, callbackURL, state string) (loginURL string, connData []byte, err error)
	// HandleCallback completes the login from the upstream's redirect.
	HandleCallback(ctx context.Context, s Scopes, connData []byte, r *http.Request) (Identity, error)
}

// RefreshConnector refreshes an identity when the client refreshes its
// tokens, so that removed users and changed groups take effect. It may
// return the identity unchanged if it was refreshed recently.
type RefreshConnector interface {
	Refresh(ctx context.Context, s Scopes, id Identity) (Identity, error)
}

// Token types of RFC 8693 3 that the token exchange grant takes.
const (
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// TokenIdentityConnector verifies a token the upstream issued to someone
// else (a CI job's workload token) and returns the identity it proves:
// the token exchange grant (RFC 8693), with Dex's meaning. Only the oidc
// connector implements it. A token that fails a check, or whose subject
// the connector's policy refuses, is an error the issuer answers with
// invalid_grant; its message says which check or rule refused it.
type TokenIdentityConnector interface {
	TokenIdentity(ctx context.Context, subjectTokenType, subjectToken string) (Identity, error)
}

// ErrTokenExchangeUnsupported is returned by a connector (or a wrapper
// around one) that cannot verify subject tokens.
var ErrTokenExchangeUnsupported = errors.New("this connector cannot verify subject tokens (token exchange needs an oidc connector)")

// UserError is an error the user can act on, rather than a server error:
// not in an allowed org, rate limited, login cancelled. The issuer ends the
// login with it: the client application gets Description (and the error
// code that Status implies), and where the client cannot be told, the
// browser shows Title and Message on a page.
type UserError struct {
	// Status is the HTTP status of the page (403, 429, 400, ...).
	Status int
	// Title is a short heading ("Not a member of an allowed team").
	Title string
	// Message explains what happened and what to do.
	Message string
	// Description is the one-line reason sent to the client application
	// with the error (OAuth's error_description), e.g. "membership in
	// exampleorg required; signed in to GitHub as mallory". It reaches the
	// application and whoever runs it: no tokens, no internal detail.
	// Empty: Title is sent.
	Description string
	// Reason is a short machine label for metrics and logs
	// ("not_in_org", "rate_limited", "access_denied").
	Reason string
	// RetryAfter, when set, says when trying again may succeed.
	RetryAfter time.Duration
	// Err is the underlying cause, for logs only.
	Err error
}

func (e *UserError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Title, e.Message, e.Err)
	}
	return e.Title + ": " + e.Message
}

func (e *UserError) Unwrap() error { return e.Err }

// AsUserError returns the UserError in err's chain, if any.
func AsUserError(err error) (*UserError, bool) {
	var ue *UserError
	if errors.As(err, &ue) {
		return ue, true
	}
	return nil, false
}

// Availability is implemented by a connector that can be temporarily
// unusable, such as one whose upstream could not be reached yet (see
// internal/connector/retry). The issuer marks it on the login page.
type Availability interface {
	// Available reports whether logins through the connector can work now.
	Available() bool
}

// Available reports whether the connector impl can be used now: true
// unless it implements Availability and says otherwise.
func Available(impl any) bool {
	if a, ok := impl.(Availability); ok {
		return a.Available()
	}
	return true
}
