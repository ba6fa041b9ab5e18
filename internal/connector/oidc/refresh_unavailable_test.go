package oidc

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// TestRefreshUpstreamUnavailable: the upstream provider (a gatehouse
// whose own directory is down) answers the refresh 503
// temporarily_unavailable with Retry-After; the connector reports a 503
// UserError with that wait, which the issuer turns into its own 503
// without ending the session, and the same upstream session refreshes
// once the provider is back.
func TestRefreshUpstreamUnavailable(t *testing.T) {
	u := startUpstream(t)
	c := newConnector(t, u.config())
	offline := connector.Scopes{OfflineAccess: true}
	id, err := u.fullLogin(t, c, offline)
	if err != nil {
		t.Fatal(err)
	}
	u.dir.mu.Lock()
	u.dir.down = &connector.UserError{Status: http.StatusServiceUnavailable, Description: "directory down", RetryAfter: 42 * time.Second}
	u.dir.mu.Unlock()
	_, err = c.Refresh(context.Background(), offline, id)
	ue, ok := connector.AsUserError(err)
	if !ok || ue.Status != http.StatusServiceUnavailable || ue.RetryAfter != 42*time.Second || ue.Reason != "upstream_unavailable" {
		t.Fatalf("refresh while the provider is down: %v (%+v)", err, ue)
	}
	u.dir.mu.Lock()
	u.dir.down = errors.New("directory: user removed")
	u.dir.mu.Unlock()
	if _, err := c.Refresh(context.Background(), offline, id); err == nil {
		t.Fatal("a refusal was not an error")
	} else if ue, ok := connector.AsUserError(err); !ok || ue.Status != http.StatusBadRequest {
		t.Errorf("a refusal upstream (invalid_grant) became %v", err)
	}
	u.dir.mu.Lock()
	u.dir.down = nil
	u.dir.mu.Unlock()
	// The upstream gatehouse rotated nothing while its directory failed:
	// the same upstream refresh token works.
	if _, err := c.Refresh(context.Background(), offline, id); err != nil {
		t.Errorf("refresh after the outage: %v", err)
	}
}
