package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
)

// KubeconfigOptions describe a team member's kubeconfig: one cluster, one
// context, and a user whose exec runs the gatehouse plugin with
// kubelogin-compatible flags.
type KubeconfigOptions struct {
	// ClusterName, ContextName and UserName name the entries.
	ClusterName string
	ContextName string
	UserName    string
	// Server is the kube-apiserver URL; ServerCA its PEM CA bundle (nil:
	// system roots).
	Server   string
	ServerCA []byte
	// IssuerURL, ClientID, ClientSecret and ExtraScopes are passed to the
	// plugin as --oidc-issuer-url, --oidc-client-id, --oidc-client-secret
	// and --oidc-extra-scope.
	IssuerURL    string
	ClientID     string
	ClientSecret string
	ExtraScopes  []string
	// ExchangeAudience, when set, is the cluster's own client ID, passed
	// as --exchange-audience: the plugin logs in once per issuer and
	// exchanges the ID token for one with this audience.
	ExchangeAudience string
	// IssuerCA is the issuer's PEM CA bundle when not publicly trusted;
	// passed as --certificate-authority-data.
	IssuerCA []byte
	// Command kubectl runs (default "kubectl") and Plugin, its first
	// argument (default "gatehouse"; "oidc-login" for kubelogin).
	Command string
	Plugin  string
	// ExtraArgs are appended to the plugin's arguments as given.
	ExtraArgs []string
}

// ExecArgs returns the plugin arguments after the command.
func (o KubeconfigOptions) ExecArgs() []string {
	plugin := o.Plugin
	if plugin == "" {
		plugin = "gatehouse"
	}
	args := []string{plugin, "get-token",
		"--oidc-issuer-url=" + o.IssuerURL,
		"--oidc-client-id=" + o.ClientID,
	}
	if o.ClientSecret != "" {
		args = append(args, "--oidc-client-secret="+o.ClientSecret)
	}
	for _, s := range o.ExtraScopes {
		args = append(args, "--oidc-extra-scope="+s)
	}
	if len(o.IssuerCA) > 0 {
		args = append(args, "--certificate-authority-data="+base64.StdEncoding.EncodeToString(o.IssuerCA))
	}
	if o.ExchangeAudience != "" {
		args = append(args, "--exchange-audience="+o.ExchangeAudience)
	}
	return append(args, o.ExtraArgs...)
}

// Kubeconfig builds the kubeconfig (clientcmd v1).
func (o KubeconfigOptions) Kubeconfig() (*clientcmdv1.Config, error) {
	var errs []error
	if u, err := url.Parse(o.Server); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("server %q: must be the kube-apiserver URL, e.g. https://api.example.com:6443", o.Server))
	}
	if u, err := url.Parse(o.IssuerURL); err != nil || u.Host == "" || u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("issuer URL %q: must be an https URL", o.IssuerURL))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("client id: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cluster, ctx, user := o.ClusterName, o.ContextName, o.UserName
	if cluster == "" {
		cluster = DefaultClusterName
	}
	if ctx == "" {
		ctx = cluster
	}
	if user == "" {
		user = DefaultUserName
	}
	command := o.Command
	if command == "" {
		command = "kubectl"
	}
	return &clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    cluster,
			Cluster: clientcmdv1.Cluster{Server: o.Server, CertificateAuthorityData: o.ServerCA},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{
			Name: user,
			AuthInfo: clientcmdv1.AuthInfo{Exec: &clientcmdv1.ExecConfig{
				APIVersion:      "client.authentication.k8s.io/v1",
				Command:         command,
				Args:            o.ExecArgs(),
				InstallHint:     "Install the gatehouse kubectl plugin (kubectl-gatehouse) on your PATH; see docs/kubectl-plugin.md.",
				InteractiveMode: clientcmdv1.IfAvailableExecInteractiveMode,
			}},
		}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    ctx,
			Context: clientcmdv1.Context{Cluster: cluster, AuthInfo: user},
		}},
		CurrentContext: ctx,
	}, nil
}

// KubeconfigOptions derives the team members' kubeconfig from the config.
func (c *Config) KubeconfigOptions() (KubeconfigOptions, error) {
	serverCA, err := c.readPEM("serverCAFile", c.ServerCAFile, c.ServerCAData)
	if err != nil {
		return KubeconfigOptions{}, err
	}
	issuerCA, err := c.readPEM("issuer.caFile", c.Issuer.CAFile, c.Issuer.CAData)
	if err != nil {
		return KubeconfigOptions{}, err
	}
	server := c.Server
	if c.Proxy != nil {
		// kubectl talks to the proxy, which forwards to the API server.
		server = c.Proxy.URL
		if serverCA, err = c.readPEM("proxy.caFile", c.Proxy.CAFile, c.Proxy.CAData); err != nil {
			return KubeconfigOptions{}, err
		}
	}
	return KubeconfigOptions{
		ClusterName:      c.Name,
		ContextName:      c.Kubeconfig.Context,
		UserName:         c.Kubeconfig.User,
		Server:           server,
		ServerCA:         serverCA,
		IssuerURL:        c.Issuer.URL,
		ClientID:         c.Issuer.ClientID,
		ClientSecret:     c.Issuer.ClientSecret,
		ExtraScopes:      c.Issuer.ExtraScopes,
		ExchangeAudience: c.Cluster,
		IssuerCA:         issuerCA,
		Command:          c.Kubeconfig.Command,
		Plugin:           c.Kubeconfig.Plugin,
	}, nil
}
