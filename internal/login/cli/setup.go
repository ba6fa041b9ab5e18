package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/apiserversim"
	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

// setupFlags registers setup's flags: kubelogin's login flags,
// gatehouse's description of the cluster, and klog's.
func setupFlags(f *pflag.FlagSet) (o *options.Flags, sim *apiserversim.Flags, authnConfig, clusterRole, namespace *string) {
	o, sim = new(options.Flags), new(apiserversim.Flags)
	authnConfig, clusterRole, namespace = new(string), new(string), new(string)
	o.Add(f, false)
	f.StringVar(&o.Exchange.Audience, "exchange-audience", "", "[gatehouse] The cluster's own client ID: show the token exchanged for it, which kubectl gets (see get-token)")
	f.StringVar(&sim.IssuerURL, "apiserver-oidc-issuer-url", "", "[gatehouse] kube-apiserver's --oidc-issuer-url (default: --oidc-issuer-url)")
	f.StringVar(&sim.ClientID, "apiserver-oidc-client-id", "", "[gatehouse] kube-apiserver's --oidc-client-id (default: --oidc-client-id)")
	f.StringVar(&sim.UsernameClaim, "apiserver-oidc-username-claim", "sub", "[gatehouse] kube-apiserver's --oidc-username-claim")
	f.StringVar(&sim.UsernamePrefix, "apiserver-oidc-username-prefix", "", `[gatehouse] kube-apiserver's --oidc-username-prefix (unset: "ISSUER#" for claims other than email; "-": none)`)
	f.StringVar(&sim.GroupsClaim, "apiserver-oidc-groups-claim", "", "[gatehouse] kube-apiserver's --oidc-groups-claim")
	f.StringVar(&sim.GroupsPrefix, "apiserver-oidc-groups-prefix", "", "[gatehouse] kube-apiserver's --oidc-groups-prefix")
	f.StringToStringVar(&sim.RequiredClaims, "apiserver-oidc-required-claim", nil, "[gatehouse] kube-apiserver's --oidc-required-claim (key=value)")
	f.StringVar(authnConfig, "authentication-config", "", "[gatehouse] kube-apiserver's --authentication-config file (AuthenticationConfiguration); replaces the --apiserver-oidc-* flags")
	f.StringVar(clusterRole, "clusterrole", "cluster-admin", "[gatehouse] ClusterRole for the suggested bindings")
	f.StringVar(namespace, "namespace", "default", "[gatehouse] Namespace for the suggested RoleBindings")
	addLogFlags(f)
	return
}

// setup is `setup`; name is the plugin's executable name, so that the
// commands it prints work under that name.
func setup(ctx context.Context, name string, args []string, env Env) error {
	f := newFlagSet("setup", env)
	o, sim, authnConfig, clusterRole, namespace := setupFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("setup takes no arguments, got %q", f.Args())
	}
	command := pluginCommand(name)
	if o.IssuerURL == "" || o.ClientID == "" {
		// As kubelogin's setup: without the issuer and client, the help.
		fmt.Fprintf(env.Stdout, "Log in and show what the cluster will make of the token.\n\nUsage:\n  %s setup --oidc-issuer-url=ISSUER_URL --oidc-client-id=YOUR_CLIENT_ID [flags]\n\nFlags:\n", strings.Join(command, " "))
		f.SetOutput(env.Stdout)
		f.PrintDefaults()
		return nil
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	o.ExpandHome()
	login := newLogin(o, env)
	defer login.Close()
	u := &usecase.Setup{
		Login: login, ClusterRole: *clusterRole, Namespace: *namespace,
		GetTokenArgs: changedFlags(f, setupOnlyFlags(), "apiserver-"),
		Command:      command, Whoami: whoamiCommand(name),
		Stdout: env.Stdout, Stderr: env.Stderr,
	}
	if o.Exchange.Audience != "" {
		x := &flow.Exchanger{Login: login, Flags: o.Exchange}
		u.Exchange = x.Exchange
	}
	if *authnConfig != "" {
		c, err := apiserversim.LoadFile(*authnConfig)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		u.Config, u.Source = c, "--authentication-config "+*authnConfig
	} else {
		if sim.IssuerURL == "" {
			sim.IssuerURL = o.IssuerURL
		}
		if sim.ClientID == "" {
			sim.ClientID = o.ClientID
			if o.Exchange.Audience != "" {
				sim.ClientID = o.Exchange.Audience // the cluster's audience
			}
		}
		j := apiserversim.FromFlags(*sim)
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

// setupOnlyFlags are setup's flags that get-token does not take (besides
// the apiserver- ones), and klog's: a kubeconfig should not log every
// kubectl command because setup was run with -v.
func setupOnlyFlags() map[string]bool {
	skip := map[string]bool{"authentication-config": true, "clusterrole": true, "namespace": true}
	for _, d := range kubeloginLogDefaults {
		skip[d.name] = true
	}
	return skip
}

// pluginCommand is how the user runs the plugin named name: kubectl finds
// kubectl-oidc_login as `kubectl oidc-login` (a "-" in the command is "_"
// in the file name); any other name is run as it is (kubelogin).
func pluginCommand(name string) []string {
	if plugin, ok := strings.CutPrefix(name, "kubectl-"); ok && plugin != "" {
		return []string{"kubectl", strings.ReplaceAll(plugin, "_", "-")}
	}
	return []string{name}
}

// whoamiCommand shows the identity the cluster derives: gatehouse's
// whoami, which kubelogin's names do not answer, else kubectl's own.
func whoamiCommand(name string) string {
	if isKubeloginName(name) {
		return "kubectl auth whoami"
	}
	return strings.Join(pluginCommand(name), " ") + " whoami"
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
