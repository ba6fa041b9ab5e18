package cli

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
)

// newLogin wires the flags into a flow.Login.
func newLogin(o *options.Flags, env Env) *flow.Login {
	method, _ := o.PKCE()
	return &flow.Login{Options: flow.Options{
		Client: oidcclient.Config{
			IssuerURL: o.IssuerURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			ExtraScopes: o.ExtraScopes, PKCEMethod: method, UseAccessToken: o.UseAccessToken,
			HTTPClient: env.HTTPClient, Now: env.Now,
		},
		CAFiles: o.CAFiles, CAData: o.CAData, Insecure: o.Insecure, Renegotiation: tls.RenegotiationSupport(o.Renegotiation()),
		RequestHeaders: o.RequestHeaders.Map(),
		GrantType:      o.GrantType, ListenAddresses: o.ListenAddress, RedirectURL: o.RedirectURL,
		Extra: o.AuthRequestExtraParams.Map(), SkipOpenBrowser: o.SkipOpenBrowser, BrowserCommand: o.BrowserCommand,
		LocalServerCert: o.LocalServerCert, LocalServerKey: o.LocalServerKey, OpenURLAfterAuthentication: o.OpenURLAfterAuthentication,
		Username: o.Username, Password: o.Password,
		Timeout: time.Duration(o.TimeoutSec) * time.Second,
		Opener:  env.Opener,
		Stdin:   env.Stdin, Stderr: env.Stderr, ReadPassword: env.ReadPassword,
	}}
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "--password=") {
			a = "--password=..."
		}
		if a == "" || strings.ContainsAny(a, " \t\n'\"$`\\|&;<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
