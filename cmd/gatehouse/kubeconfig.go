package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func newKubeconfigCommand() *cobra.Command {
	var o cluster.KubeconfigOptions
	var clusterYAML, gatehouseConfig, serverCAFile, issuerCAFile, out, fromKubeconfig string
	cmd := &cobra.Command{
		Use:   "kubeconfig --issuer-url URL --server URL [--certificate-authority FILE] [-o FILE]",
		Short: "Write the kubeconfig a team member needs (cluster, context, and a user that runs kubectl gatehouse)",
		Long: `Write a team member's kubeconfig: the cluster (server and CA, given or
taken from an admin kubeconfig with --from-kubeconfig), a context,
and a user whose exec runs 'kubectl gatehouse get-token' with kubelogin's
flags (--oidc-issuer-url, --oidc-client-id, --oidc-extra-scope, ...).
With --plugin oidc-login the same kubeconfig runs kubelogin (or gatehouse
installed as kubectl-oidc_login). With --config, the values come from
cluster.yaml and flags override them. With --gatehouse-config, the issuer
URL, the client and, for a confidential client, its secret come from
gatehouse's own config.yaml (the secret then ends up in the kubeconfig, as
with kubelogin: a client that kubectl runs on laptops cannot keep it).`,
		Example: `  gatehouse kubeconfig --issuer-url https://login.example.com --server https://api.example.com:6443 \
    --certificate-authority ca.crt -o team.kubeconfig
  gatehouse kubeconfig --from-kubeconfig example-kubeconfig --issuer-url https://login.example.com -o oidc-kubeconfig
  gatehouse kubeconfig --config cluster.yaml -o -
  gatehouse kubeconfig --gatehouse-config config.yaml --server https://api.example.com:6443 -o team.kubeconfig`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs := cmd.Flags()
			if clusterYAML != "" {
				c, err := cluster.Load(clusterYAML)
				if err != nil {
					return err
				}
				base, err := c.KubeconfigOptions()
				if err != nil {
					return err
				}
				merge := func(name string, dst *string, v string) {
					if fs.Changed(name) {
						*dst = v
					}
				}
				merge("issuer-url", &base.IssuerURL, o.IssuerURL)
				merge("client-id", &base.ClientID, o.ClientID)
				merge("client-secret", &base.ClientSecret, o.ClientSecret)
				merge("server", &base.Server, o.Server)
				merge("cluster-name", &base.ClusterName, o.ClusterName)
				merge("context", &base.ContextName, o.ContextName)
				merge("user", &base.UserName, o.UserName)
				merge("exec-command", &base.Command, o.Command)
				merge("plugin", &base.Plugin, o.Plugin)
				if fs.Changed("oidc-extra-scope") {
					base.ExtraScopes = o.ExtraScopes
				}
				if fs.Changed("arg") {
					base.ExtraArgs = o.ExtraArgs
				}
				o = base
			}
			if gatehouseConfig != "" {
				if err := clientFromGatehouse(gatehouseConfig, &o, fs.Changed("issuer-url") || clusterYAML != ""); err != nil {
					return err
				}
			}
			if fromKubeconfig != "" {
				if err := clusterFromKubeconfig(fromKubeconfig, &o, fs.Changed("server"), fs.Changed("cluster-name")); err != nil {
					return err
				}
			}
			if serverCAFile != "" {
				b, err := readPEMFile(serverCAFile)
				if err != nil {
					return fmt.Errorf("--certificate-authority: %w", err)
				}
				o.ServerCA = b
			}
			if issuerCAFile != "" {
				b, err := readPEMFile(issuerCAFile)
				if err != nil {
					return fmt.Errorf("--issuer-ca-file: %w", err)
				}
				o.IssuerCA = b
			}
			kc, err := o.Kubeconfig()
			if err != nil {
				return err
			}
			if o.ClientSecret == "" && gatehouseConfig == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "No client secret given: right for a public client. If client %q has a secret in gatehouse's staticClients, logins would fail with invalid_client: pass --client-secret, or --gatehouse-config with gatehouse's config.yaml.\n", o.ClientID)
			}
			data, err := yaml.Marshal(kc)
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s. Try: KUBECONFIG=%s kubectl auth whoami\n", out, out)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&clusterYAML, "config", "", "take the values from cluster.yaml (flags override)")
	fs.StringVar(&gatehouseConfig, "gatehouse-config", "", "gatehouse's own config.yaml: take the issuer URL, the client and its secret from it")
	fs.StringVar(&o.IssuerURL, "issuer-url", "", "gatehouse's issuer URL (--oidc-issuer-url)")
	fs.StringVar(&o.ClientID, "client-id", cluster.DefaultClientID, "OAuth client id (--oidc-client-id)")
	fs.StringVar(&o.ClientSecret, "client-secret", "", "client secret, for a confidential client (--oidc-client-secret)")
	fs.StringSliceVar(&o.ExtraScopes, "oidc-extra-scope", []string{"groups", "offline_access", "profile"}, "scopes besides openid (repeat or comma-separate)")
	fs.StringVar(&issuerCAFile, "issuer-ca-file", "", "PEM CA of the issuer, when not publicly trusted (--certificate-authority-data)")
	fs.StringVar(&o.Server, "server", "", "kube-apiserver URL")
	fs.StringVar(&fromKubeconfig, "from-kubeconfig", "", "take the server, CA and cluster name from this kubeconfig's current context (e.g. the admin kubeconfig KubeOne or kubeadm wrote)")
	fs.StringVar(&serverCAFile, "certificate-authority", "", "PEM CA of kube-apiserver (embedded as certificate-authority-data)")
	fs.StringVar(&o.ClusterName, "cluster-name", cluster.DefaultClusterName, "name of the cluster entry")
	fs.StringVar(&o.ContextName, "context", "", "name of the context (default: the cluster name)")
	fs.StringVar(&o.UserName, "user", cluster.DefaultUserName, "name of the user entry")
	fs.StringVar(&o.Command, "exec-command", "kubectl", "command kubectl runs for credentials")
	fs.StringVar(&o.Plugin, "plugin", "gatehouse", `plugin name as its first argument ("oidc-login" for kubelogin)`)
	fs.StringArrayVar(&o.ExtraArgs, "arg", nil, "extra argument for the plugin, e.g. --arg=--grant-type=device-code (repeat)")
	fs.StringVarP(&out, "output", "o", "-", "file to write (0600), or - for standard output")
	return cmd
}

// clientFromGatehouse takes the issuer URL, the client id and a
// confidential client's secret from gatehouse's config.yaml, with the
// rules of cluster render's --gatehouse-config (a client or issuer that
// gatehouse does not have is an error).
func clientFromGatehouse(file string, o *cluster.KubeconfigOptions, issuerGiven bool) error {
	g, err := config.Load(file)
	if err != nil {
		return err
	}
	c := &cluster.Config{Issuer: cluster.Issuer{ClientID: o.ClientID, ClientSecret: o.ClientSecret}, Audit: cluster.Audit{Webhook: cluster.AuditWebhook{Disabled: true}}}
	if issuerGiven {
		c.Issuer.URL = o.IssuerURL
	}
	if err := c.UseGatehouseConfig(g); err != nil {
		return fmt.Errorf("--gatehouse-config %s: %w", file, flagNames(err))
	}
	o.IssuerURL, o.ClientID, o.ClientSecret = c.Issuer.URL, c.Issuer.ClientID, c.Issuer.ClientSecret
	return nil
}

func readPEMFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New(name + " is empty")
	}
	return b, nil
}

// clusterFromKubeconfig copies the current context's cluster (server, CA
// and name) from an existing kubeconfig, as the seed article derived
// oidc-kubeconfig from the admin kubeconfig. Flags given explicitly win.
func clusterFromKubeconfig(file string, o *cluster.KubeconfigOptions, keepServer, keepName bool) error {
	kc, err := clientcmd.LoadFromFile(file)
	if err != nil {
		return fmt.Errorf("--from-kubeconfig: %w", err)
	}
	ctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok {
		return fmt.Errorf("--from-kubeconfig: %s has no current context", file)
	}
	cl, ok := kc.Clusters[ctx.Cluster]
	if !ok {
		return fmt.Errorf("--from-kubeconfig: %s has no cluster %q", file, ctx.Cluster)
	}
	if !keepServer {
		o.Server = cl.Server
	}
	if !keepName {
		o.ClusterName = ctx.Cluster
	}
	switch {
	case len(cl.CertificateAuthorityData) > 0:
		o.ServerCA = cl.CertificateAuthorityData
	case cl.CertificateAuthority != "":
		b, err := readPEMFile(cl.CertificateAuthority)
		if err != nil {
			return fmt.Errorf("--from-kubeconfig: %w", err)
		}
		o.ServerCA = b
	}
	return nil
}
