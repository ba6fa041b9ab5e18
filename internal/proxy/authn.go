package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	requestunion "k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authentication/request/websocket"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
)

// tokenSuccessTTL is kube-apiserver's default token cache TTL
// (--token-success-cache-ttl is not a flag, BuiltInAuthenticationOptions
// sets 10s): a valid token is not verified again for 10 seconds.
const tokenSuccessTTL = 10 * time.Second

// Authenticator is the request authenticator and its readiness.
type Authenticator struct {
	authenticator.Request
	jwts []oidc.AuthenticatorTokenWithHealthCheck
}

// Ready reports whether every JWT authenticator has fetched its
// issuer's discovery document and keys (kube-apiserver's
// /readyz/poststarthook/jwt... equivalent).
func (a *Authenticator) Ready() error {
	var errs []error
	for _, j := range a.jwts {
		if err := j.HealthCheck(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// staticCA is the issuer's certificateAuthority from the configuration.
type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

// NewAuthenticator builds the authenticator kube-apiserver builds from
// the configuration's jwt authenticators: each is oidc.New with every
// signing algorithm kube-apiserver allows with --authentication-config,
// in a union, cached for 10s, behind the bearer token and WebSocket
// protocol authenticators, with system:authenticated added. There is no
// anonymous authenticator: a request without a valid token fails.
func NewAuthenticator(ctx context.Context, cfg *apiserver.AuthenticationConfiguration, compiler authenticationcel.Compiler) (*Authenticator, error) {
	a := &Authenticator{}
	tokens := make([]authenticator.Token, 0, len(cfg.JWT))
	for i, j := range cfg.JWT {
		opts := oidc.Options{
			JWTAuthenticator:     j,
			Compiler:             compiler,
			SupportedSigningAlgs: oidc.AllValidSigningAlgorithms(),
		}
		if j.Issuer.CertificateAuthority != "" {
			opts.CAContentProvider = staticCA(j.Issuer.CertificateAuthority)
		}
		t, err := oidc.New(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("jwt[%d] (issuer %s): %w", i, j.Issuer.URL, err)
		}
		a.jwts = append(a.jwts, t)
		tokens = append(tokens, t)
	}
	token := tokencache.New(tokenunion.New(tokens...), true, tokenSuccessTTL, 0)
	a.Request = group.NewAuthenticatedGroupAdder(requestunion.New(
		bearertoken.New(token),
		websocket.NewProtocolAuthenticator(token),
	))
	return a, nil
}
