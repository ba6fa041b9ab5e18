package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/apiserversim"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

func setup(ctx context.Context, args []string, env Env) error {
	var o options.Flags
	var sim apiserversim.Flags
	var authnConfig, clusterRole, namespace string
	f := newFlagSet("setup", env)
	o.Add(f, false)
	f.StringVar(&sim.IssuerURL, "apiserver-oidc-issuer-url", "", "[gatehouse] kube-apiserver's --oidc-issuer-url (default: --oidc-issuer-url)")
	f.StringVar(&sim.ClientID, "apiserver-oidc-client-id", "", "[gatehouse] kube-apiserver's --oidc-client-id (default: --oidc-client-id)")
	f.StringVar(&sim.UsernameClaim, "apiserver-oidc-username-claim", "sub", "[gatehouse] kube-apiserver's --oidc-username-claim")
	f.StringVar(&sim.UsernamePrefix, "apiserver-oidc-username-prefix", "", `[gatehouse] kube-apiserver's --oidc-username-prefix (unset: "ISSUER#" for claims other than email; "-": none)`)
	f.StringVar(&sim.GroupsClaim, "apiserver-oidc-groups-claim", "", "[gatehouse] kube-apiserver's --oidc-groups-claim")
	f.StringVar(&sim.GroupsPrefix, "apiserver-oidc-groups-prefix", "", "[gatehouse] kube-apiserver's --oidc-groups-prefix")
	f.StringToStringVar(&sim.RequiredClaims, "apiserver-oidc-required-claim", nil, "[gatehouse] kube-apiserver's --oidc-required-claim (key=value)")
	f.StringVar(&authnConfig, "authentication-config", "", "[gatehouse] kube-apiserver's --authentication-config file (AuthenticationConfiguration); replaces the --apiserver-oidc-* flags")
	f.StringVar(&clusterRole, "clusterrole", "cluster-admin", "[gatehouse] ClusterRole for the suggested bindings")
	f.StringVar(&namespace, "namespace", "default", "[gatehouse] Namespace for the suggested RoleBindings")
	if err := f.Parse(args); err != nil {
		return err
	}
	if o.IssuerURL == "" || o.ClientID == "" {
		fmt.Fprintln(env.Stderr, "Usage: kubectl gatehouse setup --oidc-issuer-url=URL --oidc-client-id=ID [flags]\n\nFlags:")
		f.PrintDefaults()
		return fmt.Errorf("setup: --oidc-issuer-url and --oidc-client-id are required")
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	o.ExpandHome()
	login := newLogin(&o, env)
	defer login.Close()
	u := &usecase.Setup{
		Login: login, ClusterRole: clusterRole, Namespace: namespace,
		GetTokenArgs: changedFlags(f, map[string]bool{"authentication-config": true, "clusterrole": true, "namespace": true}, "apiserver-"),
		Stdout:       env.Stdout, Stderr: env.Stderr,
	}
	if authnConfig != "" {
		c, err := apiserversim.LoadFile(authnConfig)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		u.Config, u.Source = c, "--authentication-config "+authnConfig
	} else {
		if sim.IssuerURL == "" {
			sim.IssuerURL = o.IssuerURL
		}
		if sim.ClientID == "" {
			sim.ClientID = o.ClientID
		}
		j := apiserversim.FromFlags(sim)
		u.Authenticator = &j
		u.Source = fmt.Sprintf("kube-apiserver --oidc-issuer-url=%s --oidc-client-id=%s --oidc-username-claim=%s", sim.IssuerURL, sim.ClientID, sim.UsernameClaim)
		if f.Changed("apiserver-oidc-username-prefix") {
			u.Source += " --oidc-username-prefix=" + sim.UsernamePrefix
		}
		if sim.GroupsClaim != "" {
			u.Source += " --oidc-groups-claim=" + sim.GroupsClaim + " --oidc-groups-prefix=" + sim.GroupsPrefix
		}
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// changedFlags lists the flags the user set, as --name=value, for the
// kubeconfig's get-token arguments (as kubelogin's setup does).
func changedFlags(f *pflag.FlagSet, skip map[string]bool, skipPrefix string) []string {
	var out []string
	f.Visit(func(fl *pflag.Flag) {
		if skip[fl.Name] || (skipPrefix != "" && len(fl.Name) > len(skipPrefix) && fl.Name[:len(skipPrefix)] == skipPrefix) {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+fl.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+fl.Name+"="+fl.Value.String())
	})
	return out
}
