package issuer_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// outageIssuer runs an issuer whose password connector goes through
// retry (as serve wires every upstream connector) to an upstream that
// can go down; open decides whether the connector can open.
func outageIssuer(t *testing.T, open func() error) (*issuertest.Server, *issuertest.Flaky) {
	t.Helper()
	return outageIssuerWith(t, memory.New(), open)
}

// outageIssuerWith is outageIssuer on store.
func outageIssuerWith(t *testing.T, store storage.Storage, open func() error) (*issuertest.Server, *issuertest.Flaky) {
	t.Helper()
	up := &issuertest.Flaky{Connector: issuertest.LocalConnector(t, store)}
	rc := retry.NewPassword(retry.Options{ID: local.ID, Type: "ldap", Name: "Corp Directory", MinBackoff: time.Hour,
		Open: func(context.Context) (any, error) {
			if err := open(); err != nil {
				return nil, err
			}
			return up, nil
		}}, "Username")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rc.Start(ctx)
	<-rc.First()
	s := issuertest.Start(t, issuertest.Options{Storage: store, Connectors: []issuer.Connector{{ID: local.ID, Type: "ldap", Name: "Corp Directory", Impl: rc}}})
	return s, up
}

func login(t *testing.T, s *issuertest.Server) tokenResponse {
	t.Helper()
	r := postToken(t, s, url.Values{"grant_type": {"password"}, "username": {s.Username}, "password": {s.Password}, "scope": {"openid offline_access"}}, s.ClientID, s.ClientSecret)
	if r.status != http.StatusOK || r.RefreshToken == "" {
		t.Fatalf("login: %d %s %s", r.status, r.Error, r.Description)
	}
	return r
}

func refreshWith(t *testing.T, s *issuertest.Server, tok string) tokenResponse {
	t.Helper()
	return postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}, s.ClientID, s.ClientSecret)
}

// TestRefreshDuringOutageKeepsTheSession: while the user's upstream is
// down or busy, a refresh gets 503 temporarily_unavailable with
// Retry-After and nothing rotates or is revoked: once the upstream is
// back, the same refresh token works, and only once (rotation resumes).
func TestRefreshDuringOutageKeepsTheSession(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name      string
		err       error
		wantRetry string
		wantDesc  string
	}{
		{"unreachable", opErr, "30", "Corp Directory cannot be reached"},
		{"upstream 503", &connector.UserError{Status: http.StatusServiceUnavailable, Description: "the identity provider is temporarily unavailable", RetryAfter: 90 * time.Second, Err: errors.New("503")},
			"90", "the identity provider is temporarily unavailable; the session is kept"},
		{"upstream 429", &connector.UserError{Status: http.StatusTooManyRequests, Description: "GitHub rate limit reached; try again in 5 minutes", RetryAfter: 5 * time.Minute},
			"300", "GitHub rate limit reached"},
		{"upstream timeout", &connector.UserError{Status: http.StatusBadGateway, Description: "GitHub did not answer in time; try again in a minute", Err: context.DeadlineExceeded},
			"30", "GitHub did not answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, up := outageIssuer(t, func() error { return nil })
			first := login(t, s)
			up.Fail(tc.err)
			for range 3 { // retries during the outage change nothing either
				r := refreshWith(t, s, first.RefreshToken)
				if r.status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" || r.header.Get("Retry-After") != tc.wantRetry ||
					!strings.Contains(r.Description, tc.wantDesc) || r.RefreshToken != "" {
					t.Fatalf("refresh during outage: %d %q %q Retry-After %q", r.status, r.Error, r.Description, r.header.Get("Retry-After"))
				}
			}
			up.Fail(nil)
			next := refreshWith(t, s, first.RefreshToken)
			if next.status != http.StatusOK || next.RefreshToken == "" || next.RefreshToken == first.RefreshToken {
				t.Fatalf("refresh after the outage: %d %s %s", next.status, next.Error, next.Description)
			}
			if again := refreshWith(t, s, next.RefreshToken); again.status != http.StatusOK {
				t.Fatalf("the successor does not work: %d %s", again.status, again.Error)
			}
		})
	}
}

// TestRefreshWhileConnectorOpens: a connector still opening in the
// background (its upstream unreachable since start-up, as after a restart
// during an outage) answers refreshes 503 with Retry-After; once it opens,
// the refresh token issued before works.
func TestRefreshWhileConnectorOpens(t *testing.T) {
	var mu sync.Mutex
	openErr := error(nil)
	s, _ := outageIssuer(t, func() error { mu.Lock(); defer mu.Unlock(); return openErr })
	first := login(t, s)
	// A second issuer on the same storage whose connector cannot open yet:
	// the replica that restarted during the outage.
	mu.Lock()
	openErr = &net.DNSError{Err: "no such host", Name: "ldap.corp.example"}
	mu.Unlock()
	s2, _ := outageIssuerWith(t, s.Storage, func() error { mu.Lock(); defer mu.Unlock(); return openErr })
	r := refreshWith(t, s2, first.RefreshToken)
	if r.status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" || r.header.Get("Retry-After") == "" || !strings.Contains(r.Description, "Corp Directory cannot be reached") {
		t.Fatalf("refresh while the connector opens: %d %q %q Retry-After %q", r.status, r.Error, r.Description, r.header.Get("Retry-After"))
	}
	mu.Lock()
	openErr = nil
	mu.Unlock()
	if r := refreshWith(t, s2, first.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("refresh once the connector opens: %d %s %s", r.status, r.Error, r.Description)
	}
}

// TestRefreshRefusedUpstreamIsNotAnOutage: an upstream that refuses the
// user (a 4xx UserError, an error of another kind) still ends the session
// with invalid_grant.
func TestRefreshRefusedUpstreamIsNotAnOutage(t *testing.T) {
	for _, err := range []error{
		&connector.UserError{Status: http.StatusBadRequest, Title: "Login expired", Message: "log in again"},
		&connector.UserError{Status: http.StatusForbidden, Title: "Not a member", Message: "of exampleorg"},
		errors.New("oidc: refresh: the ID token's subject changed"),
	} {
		s, up := outageIssuer(t, func() error { return nil })
		first := login(t, s)
		up.Fail(err)
		if r := refreshWith(t, s, first.RefreshToken); r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("%v: %d %q %q", err, r.status, r.Error, r.Description)
		}
	}
}
