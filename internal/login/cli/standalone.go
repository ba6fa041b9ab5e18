package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/kubeconfig"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

// standaloneOptions are the flags of kubelogin's root command.
type standaloneOptions struct {
	kubeconfig, context, user string
	login                     options.Flags
}

func standaloneFlags(f *pflag.FlagSet) *standaloneOptions {
	var o standaloneOptions
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file")
	f.StringVar(&o.context, "context", "", "Name of the kubeconfig context to use")
	f.StringVar(&o.user, "user", "", "Name of the kubeconfig user to use. Prior to --context")
	o.login.AddStandalone(f)
	addLogFlags(f)
	return &o
}

// standalone is kubelogin's standalone mode: `kubectl oidc-login
// [--kubeconfig F] [--context C] [--user U] [login flags]` logs in for the
// kubeconfig user's oidc auth-provider and writes the tokens into it.
func standalone(ctx context.Context, name string, args []string, env Env) error {
	f := newFlagSet(name, env)
	o := standaloneFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unknown command %q for %q", f.Arg(0), name)
	}
	switch o.login.GrantType {
	case "auto", "authcode", "authcode-keyboard", "device-code", "password", "client-credentials":
	default:
		return fmt.Errorf("invalid option: grant-type must be one of (auto|authcode|authcode-keyboard|password|device-code|client-credentials)")
	}
	o.login.ExpandHome()
	u := &usecase.Standalone{
		Kubeconfig: kubeconfig.Kubectl{Command: env.Kubectl, Getenv: env.Getenv},
		Explicit:   o.kubeconfig, ContextName: o.context, UserName: o.user,
		Login: func(p kubeconfig.AuthProvider) usecase.Authenticator {
			l := o.login
			l.IssuerURL, l.ClientID, l.ClientSecret, l.ExtraScopes = p.IDPIssuerURL, p.ClientID, p.ClientSecret, p.ExtraScopes
			if p.IDPCertificateAuthority != "" {
				l.CAFiles = append(append([]string(nil), l.CAFiles...), p.IDPCertificateAuthority)
			}
			if p.IDPCertificateAuthorityData != "" {
				l.CAData = append(append([]string(nil), l.CAData...), p.IDPCertificateAuthorityData)
			}
			return newLogin(&l, env)
		},
		Now: env.Now, Stderr: env.Stderr, Logf: vlog,
		Setup: strings.Join(pluginCommand(name), " ") + " setup",
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}
