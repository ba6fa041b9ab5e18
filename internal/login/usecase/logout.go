package usecase

import (
	"context"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// Revoker is the part of the OIDC client that logout needs.
type Revoker interface {
	Client(ctx context.Context) (*oidcclient.Client, error)
}

// Logout is `logout`: revoke the cached refresh token at the issuer
// (RFC 7009, when discovery offers revocation_endpoint), then delete the
// cache entry. The entry is deleted even when revocation fails; the error
// is reported.
type Logout struct {
	Cache tokencache.Store
	Key   tokencache.Key
	// Exchanged are entries of tokens exchanged from this login (a
	// cluster's, --exchange-audience), deleted with it. They cannot be
	// revoked: they hold no refresh token and expire with the login's ID
	// token at the latest.
	Exchanged []tokencache.Key
	Login     Revoker
	Stderr    io.Writer
}

// Run executes the use case.
func (u *Logout) Run(ctx context.Context) error {
	e, err := u.Cache.Load(u.Key)
	if err != nil {
		fmt.Fprintln(u.Stderr, "Not logged in: no cached token for this issuer and client.")
		return u.deleteAll()
	}
	var revokeErr error
	if e.RefreshToken != "" {
		c, err := u.Login.Client(ctx)
		switch {
		case err != nil:
			revokeErr = err
		case !c.RevocationSupported():
			fmt.Fprintln(u.Stderr, "The issuer offers no revocation endpoint: the refresh token stays valid at the issuer until it expires.")
		default:
			if revokeErr = c.Revoke(ctx, e.RefreshToken, "refresh_token"); revokeErr == nil {
				fmt.Fprintln(u.Stderr, "Revoked the refresh token at the issuer.")
			}
		}
	}
	if err := u.deleteAll(); err != nil {
		return err
	}
	fmt.Fprintln(u.Stderr, "Deleted the cached tokens.")
	if revokeErr != nil {
		return fmt.Errorf("the cache entry is deleted but the refresh token could not be revoked: %w", revokeErr)
	}
	return nil
}

func (u *Logout) deleteAll() error {
	for _, k := range u.Exchanged {
		if err := u.Cache.Delete(k); err != nil {
			return err
		}
	}
	return u.Cache.Delete(u.Key)
}
