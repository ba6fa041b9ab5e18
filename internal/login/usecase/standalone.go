package usecase

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
	"github.com/gatehouse-dev/gatehouse/internal/login/kubeconfig"
)

// Kubeconfig finds and updates a kubeconfig user's oidc auth-provider.
type Kubeconfig interface {
	Find(ctx context.Context, explicit, contextName, user string) (*kubeconfig.AuthProvider, error)
	Update(ctx context.Context, p kubeconfig.AuthProvider) error
}

// Standalone is kubelogin's standalone mode (its root command): log in for
// the kubeconfig user's oidc auth-provider unless its ID token is still
// valid, and write the new ID token and refresh token into the kubeconfig.
// (kubectl 1.26 and later no longer read auth-provider; other clients do.)
type Standalone struct {
	Kubeconfig                      Kubeconfig
	Explicit, ContextName, UserName string
	// Login builds the authenticator for the provider the kubeconfig names.
	Login func(p kubeconfig.AuthProvider) Authenticator
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Stderr io.Writer
	// Logf takes the -v 1 log lines (nil: none).
	Logf func(format string, args ...any)
	// Setup is the setup command that the "no configuration" message
	// shows (kubectl oidc-login setup).
	Setup string
}

const noOIDCConfig = `No configuration found.
You need to set up the OIDC provider, role binding, Kubernetes API server and kubeconfig.
To show the setup instruction:

	%s

`

// Run executes the use case.
func (u *Standalone) Run(ctx context.Context) error {
	now := u.Now
	if now == nil {
		now = time.Now
	}
	logf := u.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	logf("WARNING: log may contain your secrets such as token or password")
	p, err := u.Kubeconfig.Find(ctx, u.Explicit, u.ContextName, u.UserName)
	if err != nil {
		fmt.Fprintf(u.Stderr, noOIDCConfig, u.Setup)
		return fmt.Errorf("could not find the current authentication provider: %w", err)
	}
	logf("using the authentication provider of the user %s", p.UserName)
	logf("a token will be written to %s", p.LocationOfOrigin)
	if p.IDToken != "" {
		logf("checking expiration of the existing token")
		exp, err := jwtpayload.Expiry(p.IDToken)
		if err != nil {
			return fmt.Errorf("invalid token cache (you may need to remove): %w", err)
		}
		if !exp.Before(now()) {
			logf("you already have a valid token until %s", exp.Local())
			return nil
		}
	}
	auth := u.Login(*p)
	if c, ok := auth.(io.Closer); ok {
		defer c.Close()
	}
	var ts tokenSet
	ok := false
	if p.RefreshToken != "" {
		logf("refreshing the token")
		r, err := auth.Refresh(ctx, p.RefreshToken)
		if err == nil {
			ts, ok = tokenSet{r.IDToken, r.RefreshToken}, true
		} else {
			logf("could not refresh the token: %s", err)
		}
	}
	if !ok {
		r, err := auth.Interactive(ctx)
		if err != nil {
			return fmt.Errorf("authentication error: %w", err)
		}
		ts = tokenSet{r.IDToken, r.RefreshToken}
	}
	exp, err := jwtpayload.Expiry(ts.id)
	if err != nil {
		return fmt.Errorf("you got an invalid token: %w", err)
	}
	fmt.Fprintf(u.Stderr, "You got a valid token until %s\n", exp.Local())
	p.IDToken, p.RefreshToken = ts.id, ts.refresh
	logf("writing the ID token and refresh token to %s", p.LocationOfOrigin)
	if err := u.Kubeconfig.Update(ctx, *p); err != nil {
		return fmt.Errorf("could not update the kubeconfig: %w", err)
	}
	return nil
}

type tokenSet struct{ id, refresh string }
