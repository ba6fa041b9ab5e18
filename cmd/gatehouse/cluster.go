package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// clusterFlags are the cluster.yaml keys that can be given (or
// overridden) on the command line.
type clusterFlags struct {
	config, gatehouseConfig string

	name, server, serverCAFile, authentication, nodeDir    string
	issuerURL, issuerCAFile, clientID, clientSecret        string
	audiences, scopes, teams, users                        []string
	usernameClaim, usernamePrefix, groupsClaim, groupsPref string
	sinkURL, sinkCAFile, sinkToken, sinkTokenFile          string
	sinkCertFile, sinkKeyFile                              string
	noAuditWebhook, noAuditLog                             bool
	auditLogPath                                           string
	// cluster: this cluster's own audience (client ID); see cluster.Config.Cluster.
	cluster               string
	proxyURL, proxyCAFile string
}

func (f *clusterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "cluster.yaml to read (flags below override its keys)")
	fs.StringVar(&f.gatehouseConfig, "gatehouse-config", "", "gatehouse's own config.yaml: take the issuer URL, client (and secret) and audit sink token from it, and refuse values that disagree with it")
	fs.StringVar(&f.name, "name", "", "cluster name in the team members' kubeconfig")
	fs.StringVar(&f.server, "server", "", "kube-apiserver URL for the team members' kubeconfig")
	fs.StringVar(&f.serverCAFile, "server-ca-file", "", "PEM CA of kube-apiserver's serving certificate")
	fs.StringVar(&f.authentication, "authentication", "", "what the kubeadm patch wires: structured (--authentication-config, 1.30+) or flags (--oidc-*)")
	fs.StringVar(&f.nodeDir, "node-dir", "", "folder of the rendered files on the control-plane nodes (default /etc/kubernetes/gatehouse)")
	fs.StringVar(&f.issuerURL, "issuer-url", "", "gatehouse's issuer URL, exactly as in the tokens' iss claim")
	fs.StringVar(&f.issuerCAFile, "issuer-ca-file", "", "PEM CA of the issuer's certificate, when not publicly trusted")
	fs.StringVar(&f.clientID, "client-id", "", "OAuth client id kubectl logs in with (default kubernetes)")
	fs.StringVar(&f.clientSecret, "client-secret", "", "client secret, for a confidential client (ends up in every kubeconfig)")
	fs.StringSliceVar(&f.audiences, "audience", nil, "accepted audience (repeat; default: the client id)")
	fs.StringSliceVar(&f.scopes, "extra-scope", nil, "scope requested besides openid (repeat; default: what the claims need)")
	fs.StringVar(&f.usernameClaim, "username-claim", "", "claim that becomes the username (default preferred_username)")
	fs.StringVar(&f.usernamePrefix, "username-prefix", "", `username prefix (default "oidc:"; "" for none)`)
	fs.StringVar(&f.groupsClaim, "groups-claim", "", "claim that becomes the groups (default groups)")
	fs.StringVar(&f.groupsPref, "groups-prefix", "", `groups prefix (default "oidc:"; "" for none)`)
	fs.StringArrayVar(&f.teams, "team", nil, "team binding ORG:TEAM=ROLE or ORG:TEAM=ROLE@NS[,NS] (repeat)")
	fs.StringArrayVar(&f.users, "user", nil, "user binding LOGIN=ROLE or LOGIN=ROLE@NS[,NS] (repeat)")
	fs.StringVar(&f.sinkURL, "audit-webhook-url", "", "gatehouse's audit sink (default https://<issuer host>/audit/webhook)")
	fs.StringVar(&f.sinkCAFile, "audit-webhook-ca-file", "", "PEM CA of the audit sink (default: the issuer's)")
	fs.StringVar(&f.sinkToken, "audit-webhook-token", "", "bearer token kube-apiserver sends to the sink")
	fs.StringVar(&f.sinkTokenFile, "audit-webhook-token-file", "", "file holding that bearer token")
	fs.StringVar(&f.sinkCertFile, "audit-webhook-client-cert", "", "client certificate for the sink (with --audit-webhook-client-key)")
	fs.StringVar(&f.sinkKeyFile, "audit-webhook-client-key", "", "client key for the sink")
	fs.BoolVar(&f.noAuditWebhook, "no-audit-webhook", false, "leave the audit webhook backend out")
	fs.BoolVar(&f.noAuditLog, "no-audit-log", false, "leave the audit log file backend out")
	fs.StringVar(&f.auditLogPath, "audit-log-path", "", "audit log file on the nodes (default /var/log/kubernetes/audit.log)")
	fs.StringVar(&f.cluster, "cluster", "", "give this cluster its own audience: gatehouse client ID NAME, trusting --client-id; one login, one token per cluster (docs/cluster.md)")
	fs.StringVar(&f.proxyURL, "proxy", "", "URL of gatehouse proxy in front of the API server (docs/proxy.md): the team kubeconfig points at it, and no kube-apiserver files are rendered")
	fs.StringVar(&f.proxyCAFile, "proxy-ca-file", "", "PEM CA of the proxy's serving certificate, when not publicly trusted")
}

// load reads --config (if any), applies the flags that were set, then
// defaults and validation.
func (f *clusterFlags) load(fs *pflag.FlagSet) (*cluster.Config, error) {
	c := &cluster.Config{}
	if f.config != "" {
		data, err := os.ReadFile(f.config)
		if err != nil {
			return nil, err
		}
		if c, err = cluster.Parse(data); err != nil {
			return nil, fmt.Errorf("%s: %w", f.config, err)
		}
		c.SetBaseDir(filepath.Dir(f.config))
	}
	set := func(name string, dst *string, v string) {
		if fs.Changed(name) {
			*dst = v
		}
	}
	set("name", &c.Name, f.name)
	set("server", &c.Server, f.server)
	if fs.Changed("server-ca-file") {
		c.ServerCAFile, c.ServerCAData = f.serverCAFile, ""
	}
	set("authentication", &c.Authentication, f.authentication)
	set("node-dir", &c.NodeDir, f.nodeDir)
	set("issuer-url", &c.Issuer.URL, f.issuerURL)
	if fs.Changed("issuer-ca-file") {
		c.Issuer.CAFile, c.Issuer.CAData = f.issuerCAFile, ""
	}
	set("client-id", &c.Issuer.ClientID, f.clientID)
	set("client-secret", &c.Issuer.ClientSecret, f.clientSecret)
	if fs.Changed("audience") {
		c.Issuer.Audiences = f.audiences
	}
	if fs.Changed("extra-scope") {
		c.Issuer.ExtraScopes = f.scopes
	}
	set("username-claim", &c.Claims.Username.Claim, f.usernameClaim)
	set("groups-claim", &c.Claims.Groups.Claim, f.groupsClaim)
	if fs.Changed("username-prefix") {
		p := f.usernamePrefix
		c.Claims.Username.Prefix = &p
	}
	if fs.Changed("groups-prefix") {
		p := f.groupsPref
		c.Claims.Groups.Prefix = &p
	}
	for kind, list := range map[string][]string{"team": f.teams, "user": f.users} {
		for _, spec := range list {
			name, b, err := parseBindingFlag(spec)
			if err != nil {
				return nil, fmt.Errorf("--%s %q: %w", kind, spec, err)
			}
			m := &c.Teams
			if kind == "user" {
				m = &c.Users
			}
			if *m == nil {
				*m = map[string]cluster.Binding{}
			}
			(*m)[name] = b
		}
	}
	w := &c.Audit.Webhook
	set("audit-webhook-url", &w.URL, f.sinkURL)
	if fs.Changed("audit-webhook-ca-file") {
		w.CAFile, w.CAData = f.sinkCAFile, ""
	}
	if fs.Changed("audit-webhook-token") {
		w.BearerToken, w.BearerTokenFile = f.sinkToken, ""
	}
	if fs.Changed("audit-webhook-token-file") {
		w.BearerTokenFile, w.BearerToken = f.sinkTokenFile, ""
	}
	set("audit-webhook-client-cert", &w.ClientCertFile, f.sinkCertFile)
	set("audit-webhook-client-key", &w.ClientKeyFile, f.sinkKeyFile)
	if f.noAuditWebhook {
		w.Disabled = true
	}
	if f.noAuditLog {
		c.Audit.Log.Disabled = true
	}
	set("audit-log-path", &c.Audit.Log.Path, f.auditLogPath)
	set("cluster", &c.Cluster, f.cluster)
	if fs.Changed("proxy") || fs.Changed("proxy-ca-file") {
		if c.Proxy == nil {
			c.Proxy = &cluster.Proxy{}
		}
		set("proxy", &c.Proxy.URL, f.proxyURL)
		if fs.Changed("proxy-ca-file") {
			c.Proxy.CAFile, c.Proxy.CAData = f.proxyCAFile, ""
		}
	}
	if f.gatehouseConfig != "" {
		g, err := config.Load(f.gatehouseConfig)
		if err != nil {
			return nil, err
		}
		if err := c.UseGatehouseConfig(g); err != nil {
			src := "the flags disagree"
			if f.config != "" {
				src = f.config + " disagrees"
			}
			return nil, fmt.Errorf("%s with %s: %w", src, f.gatehouseConfig, nameFlags(err, f.config != "", fs.Changed))
		}
	}
	if err := c.Complete(); err != nil {
		src := "the flags"
		if f.config != "" {
			src = f.config + " and the flags"
		}
		return nil, fmt.Errorf("%s:\n%w", src, nameFlags(err, f.config != "", fs.Changed))
	}
	return c, nil
}

// parseBindingFlag reads NAME=ROLE or NAME=ROLE@NS[,NS]. The name may
// contain ':' (org:team) but not '='.
func parseBindingFlag(spec string) (string, cluster.Binding, error) {
	i := strings.LastIndex(spec, "=")
	if i <= 0 || i == len(spec)-1 {
		return "", cluster.Binding{}, errors.New("want NAME=ROLE or NAME=ROLE@NAMESPACE[,NAMESPACE]")
	}
	name, rest := spec[:i], spec[i+1:]
	b := cluster.Binding{Role: rest}
	if role, ns, ok := strings.Cut(rest, "@"); ok {
		b.Role = role
		b.Namespaces = strings.Split(ns, ",")
	}
	return name, b, nil
}

func newClusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Render and check the Kubernetes side: authentication config, audit, RBAC, kubeconfig",
	}
	cmd.AddCommand(newClusterRenderCommand(), newClusterCheckCommand())
	return cmd
}

func newClusterRenderCommand() *cobra.Command {
	var f clusterFlags
	var out string
	cmd := &cobra.Command{
		Use:   "render --config cluster.yaml --out DIR",
		Short: "Write kube-apiserver's authentication and audit files, KubeOne and kubeadm snippets, RBAC and the team kubeconfig",
		Long: `Render everything a cluster needs to trust gatehouse from one cluster.yaml
(or flags): authentication-config.yaml (1.30+) and apiserver-flags.txt
(legacy --oidc-* flags), audit-policy.yaml, audit-webhook.kubeconfig and
audit-flags.txt, kubeone-features.yaml, kubeadm-patch.yaml, rbac.yaml and
the team members' kubeconfig. See docs/cluster.md.

With --proxy URL (or proxy: in cluster.yaml) the cluster is reached through
gatehouse proxy instead (docs/proxy.md): the kubeconfig's server is the
proxy, and only what the proxy reads is written (authentication-config.yaml,
audit-policy.yaml, audit-webhook.kubeconfig, and proxy-values.yaml for the
Helm chart) with rbac.yaml; no kube-apiserver flags or node files.`,
		Example: `  gatehouse cluster render --config cluster.yaml --out rendered/
  gatehouse cluster render --issuer-url https://login.example.com --server https://api.example.com:6443 \
    --team exampleorg:infra-team=cluster-admin --team exampleorg:web=edit@web \
    --audit-webhook-token-file sink-token --out rendered/
  # A cluster whose API server you cannot configure (GKE, AKS, EKS): through gatehouse proxy
  gatehouse cluster render --config cluster.yaml --proxy https://k8s.example.com --out rendered/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.load(cmd.Flags())
			if err != nil {
				return err
			}
			files, err := c.Render()
			if err != nil {
				return err
			}
			if err := cluster.WriteFiles(out, files); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if c.Proxy != nil {
				fmt.Fprintf(w, "Rendered into %s for gatehouse proxy at %s:\n", out, c.Proxy.URL)
			} else {
				fmt.Fprintf(w, "Rendered into %s (copy to %s on every control-plane node):\n", out, c.NodeDir)
			}
			for _, file := range files {
				fmt.Fprintf(w, "  %-28s %s\n", file.Name, file.Purpose)
			}
			if c.Proxy != nil {
				fmt.Fprintln(w, "The cluster's kube-apiserver needs no flags, webhook or files on its nodes: the proxy authenticates")
				fmt.Fprintln(w, "and audits. Give it these files (Helm chart: proxy.enabled, docs/proxy.md) and apply rbac.yaml.")
			} else if c.Server == "" {
				fmt.Fprintln(w, "No server given (--server or server:), so no team kubeconfig was written.")
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVarP(&out, "out", "o", "", "folder to write into (created if missing)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newClusterCheckCommand() *cobra.Command {
	var f clusterFlags
	var kubeconfig, kubeContext, token, tokenFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check --kubeconfig ADMIN [--config cluster.yaml] [--token ID_TOKEN]",
		Short: "Compare a live cluster with the rendered configuration and say what differs",
		Long: `Check a live cluster, reached with an admin kubeconfig, against what
'gatehouse cluster render' produces: a probe token (TokenReview) shows
whether kube-apiserver has an authenticator for the issuer and its keys,
a server-side dry-run apply of every
rendered binding shows what applying rbac.yaml would change, bindings that
gatehouse rendered earlier but the config no longer has are listed, and with
--token (an ID token from 'kubectl gatehouse get-token') kube-apiserver is
asked who that token's bearer is (SelfSubjectReview), to compare with the
prefixes and teams of the config. Exits 1 when anything differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.load(cmd.Flags())
			if err != nil {
				return err
			}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			restCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
			if err != nil {
				return fmt.Errorf("admin kubeconfig: %w", err)
			}
			restCfg.Timeout = timeout
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			report, err := c.Check(ctx, restCfg, cluster.CheckOptions{Token: token})
			report.Write(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if !report.OK() {
				return errors.New("the cluster differs from the configuration (see above)")
			}
			fmt.Fprintln(cmd.OutOrStdout(), "The cluster matches the configuration.")
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "admin kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "context in the admin kubeconfig")
	cmd.Flags().StringVar(&token, "token", "", "an ID token to ask kube-apiserver about (SelfSubjectReview)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding that ID token")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "bound for the whole check")
	return cmd
}

// keyFlag pairs a cluster.yaml key with the flag that sets it.
type keyFlag struct{ key, flag string }

// clusterKeyFlags lists every cluster.yaml key a flag sets, longer keys
// before their prefixes.
var clusterKeyFlags = []keyFlag{
	{"audit.webhook.bearerTokenFile", "--audit-webhook-token-file"},
	{"audit.webhook.bearerToken", "--audit-webhook-token"},
	{"audit.webhook.clientCertFile", "--audit-webhook-client-cert"},
	{"audit.webhook.clientKeyFile", "--audit-webhook-client-key"},
	{"audit.webhook.caFile", "--audit-webhook-ca-file"},
	{"audit.webhook.url", "--audit-webhook-url"},
	{"audit.log.path", "--audit-log-path"},
	{"issuer.url", "--issuer-url"},
	{"issuer.caFile", "--issuer-ca-file"},
	{"issuer.clientID", "--client-id"},
	{"issuer.clientSecret", "--client-secret"},
	{"issuer.audiences", "--audience"},
	{"issuer.extraScopes", "--extra-scope"},
	{"claims.username.claim", "--username-claim"},
	{"claims.username.prefix", "--username-prefix"},
	{"claims.groups.claim", "--groups-claim"},
	{"claims.groups.prefix", "--groups-prefix"},
	{"serverCAFile", "--server-ca-file"},
	{"nodeDir", "--node-dir"},
	{"proxy.url", "--proxy"},
	{"proxy.caFile", "--proxy-ca-file"},
}

// clusterPhrases rewrite advice written for cluster.yaml into the flags'
// terms.
var clusterPhrases = []keyFlag{
	{"or set audit.webhook.disabled: true here", "or pass --no-audit-webhook"},
	{"(or set audit.webhook.disabled: true)", "(or pass --no-audit-webhook)"},
	{"bearerToken, bearerTokenFile, or clientCertFile and clientKeyFile", "--audit-webhook-token, --audit-webhook-token-file, or --audit-webhook-client-cert and --audit-webhook-client-key"},
	{"set caFile or caData, not both", "give the CA once"},
	{"set bearerToken or bearerTokenFile, not both", "give --audit-webhook-token or --audit-webhook-token-file, not both"},
	{"clientCertFile and clientKeyFile go together", "--audit-webhook-client-cert and --audit-webhook-client-key go together"},
}

// keyName matches a key where a message names it: at the start of a line
// or after a space or parenthesis, and followed by a colon, space, comma,
// parenthesis or the end.
func keyName(key string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[\s(])` + regexp.QuoteMeta(key) + `([:\s,)]|$)`)
}

// nameFlags rewrites the cluster.yaml keys in err's message as the flags
// the user typed: every key when no cluster.yaml was read, else the keys
// whose flag was given. The message keeps its lines and advice.
func nameFlags(err error, fromFile bool, changed func(flag string) bool) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if !fromFile {
		for _, p := range clusterPhrases {
			msg = strings.ReplaceAll(msg, p.key, p.flag)
		}
		msg = regexp.MustCompile(`(?m)^audit\.webhook: `).ReplaceAllString(msg, "the audit webhook: ")
	}
	for _, kf := range clusterKeyFlags {
		if fromFile && !changed(strings.TrimPrefix(kf.flag, "--")) {
			continue
		}
		msg = keyName(kf.key).ReplaceAllString(msg, "${1}"+kf.flag+"${2}")
	}
	if msg == err.Error() {
		return err
	}
	return &renamedError{msg: msg, err: err}
}

// flagNames is nameFlags for commands that read no cluster.yaml.
func flagNames(err error) error { return nameFlags(err, false, nil) }

// renamedError is an error whose message names flags; it unwraps to the
// original.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
