// Package cluster renders, from one cluster.yaml, everything a Kubernetes
// cluster needs to trust gatehouse: kube-apiserver's structured
// authentication configuration (or the legacy --oidc-* flags), a curated
// audit policy, the audit webhook kubeconfig that points at gatehouse's
// audit sink, the --audit-* flags, a KubeOne features block, a kubeadm
// ClusterConfiguration patch, RBAC bindings for the team mapping, and the
// kubeconfig team members use. All objects are built from the upstream
// Kubernetes types, so what is rendered is what kube-apiserver and kubectl
// decode.
//
// One Config drives every file, so the issuer URL, client id, claims,
// prefixes and CA agree everywhere; that agreement is what the seed
// article kept by hand and lost as "You must be logged in to the server
// (Unauthorized)".
package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Authentication modes: how kube-apiserver is told about the issuer.
const (
	// ModeStructured is the AuthenticationConfiguration file
	// (--authentication-config, Kubernetes 1.30 and later).
	ModeStructured = "structured"
	// ModeFlags is the legacy --oidc-* flags (any version; the only way
	// before 1.30 and what KubeOne's openidConnect feature sets).
	ModeFlags = "flags"
)

// Defaults used when cluster.yaml leaves a key out.
const (
	DefaultClientID      = "kubernetes"
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
	DefaultPrefix        = "oidc:"
	DefaultNodeDir       = "/etc/kubernetes/gatehouse"
	DefaultAuditLogPath  = "/var/log/kubernetes/audit.log"
	DefaultAuditWebhook  = "/audit/webhook"
	DefaultClusterName   = "kubernetes"
	DefaultUserName      = "oidc"
	DefaultSigningAlg    = "RS256"
)

// Config is cluster.yaml: what gatehouse renders the cluster wiring from.
type Config struct {
	// Name of the cluster in the team members' kubeconfig (default
	// Cluster, else "kubernetes").
	Name string `json:"name,omitempty"`
	// Cluster, when set, gives this cluster its own audience: a client of
	// gatehouse with this ID, which trusts the plugin's client
	// (issuer.clientID, trustedPeers), so that one login gets each cluster
	// its own token by token exchange and a token for another cluster is
	// refused here. See docs/cluster.md, "One login, a token per cluster".
	Cluster string `json:"cluster,omitempty"`
	// Server is the kube-apiserver URL team members use.
	Server string `json:"server,omitempty"`
	// ServerCAFile is the PEM CA bundle that signed kube-apiserver's
	// serving certificate; ServerCAData is the same inline. Neither: the
	// system roots.
	ServerCAFile string `json:"serverCAFile,omitempty"`
	ServerCAData string `json:"serverCAData,omitempty"`
	// Authentication is ModeStructured (default) or ModeFlags; it chooses
	// what the kubeadm patch wires. Both forms are always rendered.
	Authentication string `json:"authentication,omitempty"`
	// NodeDir is where the rendered files live on control-plane nodes
	// (default /etc/kubernetes/gatehouse); flags refer to files there.
	NodeDir string `json:"nodeDir,omitempty"`

	Issuer Issuer `json:"issuer"`
	Claims Claims `json:"claims,omitempty"`
	// Teams maps a team as the issuer names it in the groups claim
	// ("org:team") to a role: a ClusterRole name for the whole cluster, or
	// {role, namespace} / {role, namespaces} for RoleBindings.
	Teams map[string]Binding `json:"teams,omitempty"`
	// Users maps a login (the username claim's value, without prefix) to a
	// role, for the rare binding to one person.
	Users map[string]Binding `json:"users,omitempty"`
	Audit Audit              `json:"audit,omitempty"`
	// Kubeconfig tunes the team members' kubeconfig.
	Kubeconfig KubeconfigSettings `json:"kubeconfig,omitempty"`
	// Proxy, when set, is `gatehouse proxy` in front of a cluster whose
	// kube-apiserver cannot be configured (docs/proxy.md): the team
	// kubeconfig points at it, and only the files the proxy reads are
	// rendered, no kube-apiserver flags or node files.
	Proxy *Proxy `json:"proxy,omitempty"`

	// baseDir resolves relative file names (the folder of cluster.yaml).
	baseDir string
}

// Issuer is gatehouse's OIDC issuer as kube-apiserver and the plugin see it.
type Issuer struct {
	// URL is the issuer URL exactly as in the ID tokens' iss claim (https).
	URL string `json:"url"`
	// CAFile / CAData: PEM CA bundle for the issuer's certificate, when it
	// is not signed by a public CA.
	CAFile string `json:"caFile,omitempty"`
	CAData string `json:"caData,omitempty"`
	// ClientID is the OAuth client kubectl logs in with (default
	// "kubernetes").
	ClientID string `json:"clientID,omitempty"`
	// ClientSecret, for a confidential client; it ends up in every team
	// member's kubeconfig, as with kubelogin.
	ClientSecret string `json:"clientSecret,omitempty"`
	// Audiences accepted in the aud claim (default: the client id).
	Audiences []string `json:"audiences,omitempty"`
	// ExtraScopes requested besides openid (default: what the claims need,
	// e.g. profile for preferred_username, groups, and offline_access).
	ExtraScopes []string `json:"extraScopes,omitempty"`
	// SigningAlgs accepted (default RS256); legacy flags only, the
	// structured config accepts the algorithms of the issuer's keys.
	SigningAlgs []string `json:"signingAlgs,omitempty"`
}

// Claims says which ID token claims become the Kubernetes username and
// groups, and how they are prefixed.
type Claims struct {
	Username ClaimMapping `json:"username,omitempty"`
	Groups   ClaimMapping `json:"groups,omitempty"`
}

// ClaimMapping is one claim and its prefix. A nil Prefix means the default
// "oidc:"; an empty one means no prefix at all.
type ClaimMapping struct {
	Claim  string  `json:"claim,omitempty"`
	Prefix *string `json:"prefix,omitempty"`
}

// Binding is what a team or user is granted: Role (a ClusterRole name)
// cluster-wide, or in the listed namespaces only.
type Binding struct {
	Role       string   `json:"role"`
	Namespace  string   `json:"namespace,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// UnmarshalJSON accepts a plain role name ("cluster-admin") or an object.
func (b *Binding) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*b = Binding{Role: s}
		return nil
	}
	type plain Binding
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("a role name or {role, namespace, namespaces}: %w", err)
	}
	*b = Binding(p)
	return nil
}

// AllNamespaces returns Namespace and Namespaces together, sorted, unique.
func (b Binding) AllNamespaces() []string {
	set := map[string]bool{}
	if b.Namespace != "" {
		set[b.Namespace] = true
	}
	for _, n := range b.Namespaces {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Audit configures kube-apiserver's audit backends.
type Audit struct {
	// Log is the log file backend.
	Log AuditLog `json:"log,omitempty"`
	// Webhook is the webhook backend, pointed at gatehouse's audit sink.
	Webhook AuditWebhook `json:"webhook,omitempty"`
}

// AuditLog is the audit log file on each control-plane node.
type AuditLog struct {
	// Disabled leaves the log backend out.
	Disabled bool `json:"disabled,omitempty"`
	// Path of the log file (default /var/log/kubernetes/audit.log).
	Path string `json:"path,omitempty"`
	// MaxAge in days (default 30), MaxBackup files (default 10), MaxSize
	// in megabytes (default 100).
	MaxAge    int `json:"maxAge,omitempty"`
	MaxBackup int `json:"maxBackup,omitempty"`
	MaxSize   int `json:"maxSize,omitempty"`
}

// AuditWebhook is where kube-apiserver posts audit events.
type AuditWebhook struct {
	// Disabled leaves the webhook backend out.
	Disabled bool `json:"disabled,omitempty"`
	// URL of the sink (default https://<issuer host>/audit/webhook).
	URL string `json:"url,omitempty"`
	// CAFile / CAData verify the sink (default: the issuer's CA).
	CAFile string `json:"caFile,omitempty"`
	CAData string `json:"caData,omitempty"`
	// BearerToken (or BearerTokenFile holding it) authenticates
	// kube-apiserver to the sink; it must be one of gatehouse's
	// audit.webhook.bearerTokens.
	BearerToken     string `json:"bearerToken,omitempty"`
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// ClientCertFile and ClientKeyFile: a client certificate instead of
	// (or besides) the token, signed by gatehouse's audit.webhook.clientCAFile.
	ClientCertFile string `json:"clientCertFile,omitempty"`
	ClientKeyFile  string `json:"clientKeyFile,omitempty"`
	// BatchMaxSize events per request (default 400) and BatchMaxWait
	// before a partial batch is sent (default 5s).
	BatchMaxSize int    `json:"batchMaxSize,omitempty"`
	BatchMaxWait string `json:"batchMaxWait,omitempty"`
}

// Proxy is where team members reach `gatehouse proxy`.
type Proxy struct {
	// URL of the proxy (https), the team kubeconfig's server.
	URL string `json:"url"`
	// CAFile / CAData: PEM CA of the proxy's serving certificate, when
	// not publicly trusted.
	CAFile string `json:"caFile,omitempty"`
	CAData string `json:"caData,omitempty"`
}

// KubeconfigSettings tune the team members' kubeconfig.
type KubeconfigSettings struct {
	// Context and User names (defaults: the cluster name; "oidc", or
	// "oidc-<cluster>" when the cluster has its own audience).
	Context string `json:"context,omitempty"`
	User    string `json:"user,omitempty"`
	// Command kubectl runs (default "kubectl") and the plugin's name as its
	// first argument (default "gatehouse"; "oidc-login" for kubelogin).
	Command string `json:"command,omitempty"`
	Plugin  string `json:"plugin,omitempty"`
}

// Load reads cluster.yaml strictly (an unknown key is an error), applies
// defaults and validates. Relative file names in it are relative to its
// folder.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c.SetBaseDir(filepath.Dir(file))
	if err := c.Complete(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// Parse decodes cluster.yaml strictly, without defaults or validation.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &c, nil
}

// SetBaseDir sets the folder relative file names are resolved against.
func (c *Config) SetBaseDir(dir string) { c.baseDir = dir }

// Complete applies the defaults and validates; call it once after Parse
// or after filling a Config by hand (flags).
func (c *Config) Complete() error {
	c.applyDefaults()
	return c.Validate()
}

func strPtr(s string) *string { return &s }

func (c *Config) applyDefaults() {
	if c.Name == "" {
		c.Name = c.Cluster
	}
	if c.Name == "" {
		c.Name = DefaultClusterName
	}
	if c.Authentication == "" {
		c.Authentication = ModeStructured
	}
	if c.NodeDir == "" {
		c.NodeDir = DefaultNodeDir
	}
	if c.Issuer.ClientID == "" {
		c.Issuer.ClientID = DefaultClientID
	}
	if len(c.Issuer.Audiences) == 0 {
		c.Issuer.Audiences = []string{c.Audience()}
	}
	if len(c.Issuer.SigningAlgs) == 0 {
		c.Issuer.SigningAlgs = []string{DefaultSigningAlg}
	}
	if c.Claims.Username.Claim == "" {
		c.Claims.Username.Claim = DefaultUsernameClaim
	}
	if c.Claims.Username.Prefix == nil {
		c.Claims.Username.Prefix = strPtr(DefaultPrefix)
	}
	if c.Claims.Groups.Claim == "" {
		c.Claims.Groups.Claim = DefaultGroupsClaim
	}
	if c.Claims.Groups.Prefix == nil {
		c.Claims.Groups.Prefix = strPtr(DefaultPrefix)
	}
	if c.Issuer.ExtraScopes == nil {
		c.Issuer.ExtraScopes = defaultScopes(c.Claims)
	}
	l := &c.Audit.Log
	if l.Path == "" {
		l.Path = DefaultAuditLogPath
	}
	if l.MaxAge == 0 {
		l.MaxAge = 30
	}
	if l.MaxBackup == 0 {
		l.MaxBackup = 10
	}
	if l.MaxSize == 0 {
		l.MaxSize = 100
	}
	w := &c.Audit.Webhook
	if w.URL == "" && c.Issuer.URL != "" {
		if u, err := url.Parse(c.Issuer.URL); err == nil && u.Host != "" {
			w.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: DefaultAuditWebhook}).String()
		}
	}
	if w.CAFile == "" && w.CAData == "" {
		w.CAFile, w.CAData = c.Issuer.CAFile, c.Issuer.CAData
	}
	if w.BatchMaxSize == 0 {
		w.BatchMaxSize = 400
	}
	if w.BatchMaxWait == "" {
		w.BatchMaxWait = "5s"
	}
	k := &c.Kubeconfig
	if k.Context == "" {
		k.Context = c.Name
	}
	if k.User == "" && c.Cluster != "" {
		// Each cluster's user runs the plugin with its own audience:
		// merged kubeconfigs must not share one user entry.
		k.User = DefaultUserName + "-" + c.Cluster
	}
	if k.User == "" {
		k.User = DefaultUserName
	}
	if k.Command == "" {
		k.Command = "kubectl"
	}
	if k.Plugin == "" {
		k.Plugin = "gatehouse"
	}
}

// defaultScopes are the scopes gatehouse (like Dex) needs to put the
// configured claims into the ID token, plus offline_access for refresh.
func defaultScopes(c Claims) []string {
	set := map[string]bool{"offline_access": true}
	for _, claim := range []string{c.Username.Claim, c.Groups.Claim} {
		switch claim {
		case "preferred_username", "name":
			set["profile"] = true
		case "email":
			set["email"] = true
		case "groups":
			set["groups"] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Validate reports every mistake at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Authentication {
	case ModeStructured, ModeFlags:
	default:
		fail("authentication", "%q: must be %q or %q", c.Authentication, ModeStructured, ModeFlags)
	}
	if c.Issuer.URL == "" {
		fail("issuer.url", "required: the issuer URL exactly as in the tokens' iss claim")
	} else if u, err := url.Parse(c.Issuer.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		fail("issuer.url", "%q must be an https URL without query, fragment or user info (kube-apiserver accepts nothing else)", c.Issuer.URL)
	} else if strings.HasSuffix(u.Path, "/") {
		fail("issuer.url", "%q ends in /: the iss claim must match exactly; write %s", c.Issuer.URL, strings.TrimSuffix(c.Issuer.URL, "/"))
	}
	if c.Issuer.CAFile != "" && c.Issuer.CAData != "" {
		fail("issuer.caFile", "set caFile or caData, not both")
	}
	if c.Cluster != "" {
		switch {
		case strings.ContainsAny(c.Cluster, " \t\n,"):
			fail("cluster", "%q must be a client ID without spaces or commas, such as k8s-prod-eu", c.Cluster)
		case c.Cluster == c.Issuer.ClientID:
			fail("cluster", "%q is the plugin's own client (issuer.clientID): its tokens are every cluster's; give this cluster a client ID of its own", c.Cluster)
		}
		for _, a := range c.Issuer.Audiences {
			if a == c.Issuer.ClientID {
				fail("issuer.audiences", "lists the plugin's client %q, whose tokens every cluster gets: with cluster set, accept only %q (leave audiences out)", a, c.Cluster)
			}
		}
	}
	if c.Server != "" {
		if u, err := url.Parse(c.Server); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			fail("server", "%q must be the kube-apiserver URL, e.g. https://api.example.com:6443", c.Server)
		}
	}
	if c.ServerCAFile != "" && c.ServerCAData != "" {
		fail("serverCAFile", "set serverCAFile or serverCAData, not both")
	}
	if p := c.Proxy; p != nil {
		if u, err := url.Parse(p.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			fail("proxy.url", "%q must be the https URL of gatehouse proxy, e.g. https://k8s.example.com (the chart's proxy.host)", p.URL)
		}
		if p.CAFile != "" && p.CAData != "" {
			fail("proxy.caFile", "set caFile or caData, not both")
		}
	}
	if !path.IsAbs(c.NodeDir) {
		fail("nodeDir", "%q must be an absolute path on the control-plane nodes", c.NodeDir)
	}
	for _, m := range []struct {
		key string
		cm  ClaimMapping
	}{{"claims.username", c.Claims.Username}, {"claims.groups", c.Claims.Groups}} {
		if strings.ContainsAny(m.cm.Claim, " \t\n") {
			fail(m.key+".claim", "%q must be a claim name", m.cm.Claim)
		}
		if p := *m.cm.Prefix; p == "-" {
			fail(m.key+".prefix", `"-" is the legacy flags' way to say "no prefix"; write "" (gatehouse renders "-" in the flags for you)`)
		} else if strings.HasPrefix(p, "system:") {
			fail(m.key+".prefix", "%q starts with system:, which is reserved for Kubernetes components", p)
		}
	}
	for _, s := range c.Issuer.ExtraScopes {
		if s == "" || strings.ContainsAny(s, " ,") {
			fail("issuer.extraScopes", "%q: one scope per entry", s)
		}
	}
	check := func(kind string, m map[string]Binding) {
		for _, k := range sortedKeys(m) {
			b := m[k]
			key := kind + "[" + k + "]"
			if strings.TrimSpace(k) == "" {
				fail(key, "empty name")
			}
			if b.Role == "" {
				fail(key+".role", "required: a ClusterRole name such as cluster-admin, admin, edit or view")
			}
			for _, ns := range b.AllNamespaces() {
				if !isDNSLabel(ns) {
					fail(key+".namespace", "%q is not a namespace name", ns)
				}
			}
		}
	}
	check("teams", c.Teams)
	check("users", c.Users)
	if !c.Audit.Webhook.Disabled {
		w := c.Audit.Webhook
		if u, err := url.Parse(w.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			fail("audit.webhook.url", "%q must be an https URL (gatehouse's audit sink)", w.URL)
		}
		hasToken := w.BearerToken != "" || w.BearerTokenFile != ""
		hasCert := w.ClientCertFile != "" || w.ClientKeyFile != ""
		if w.BearerToken != "" && w.BearerTokenFile != "" {
			fail("audit.webhook.bearerToken", "set bearerToken or bearerTokenFile, not both")
		}
		if hasCert && (w.ClientCertFile == "" || w.ClientKeyFile == "") {
			fail("audit.webhook.clientCertFile", "clientCertFile and clientKeyFile go together")
		}
		if !hasToken && !hasCert {
			fail("audit.webhook", "needs a credential for gatehouse's sink: bearerToken, bearerTokenFile, or clientCertFile and clientKeyFile (or set audit.webhook.disabled: true)")
		}
		if d, err := time.ParseDuration(w.BatchMaxWait); err != nil || d <= 0 {
			fail("audit.webhook.batchMaxWait", "%q must be a positive duration such as 5s", w.BatchMaxWait)
		}
		if w.BatchMaxSize < 0 {
			fail("audit.webhook.batchMaxSize", "must not be negative")
		}
	}
	if l := c.Audit.Log; !l.Disabled {
		if !path.IsAbs(l.Path) {
			fail("audit.log.path", "%q must be an absolute path on the control-plane nodes", l.Path)
		}
		if l.MaxAge < 0 || l.MaxBackup < 0 || l.MaxSize < 0 {
			fail("audit.log", "maxAge, maxBackup and maxSize must not be negative")
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]Binding) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// Audience is the client ID the cluster's tokens are for: Cluster when
// the cluster has its own, else the plugin's client.
func (c *Config) Audience() string {
	if c.Cluster != "" {
		return c.Cluster
	}
	return c.Issuer.ClientID
}

// UsernamePrefix and GroupsPrefix return the effective prefixes.
func (c *Config) UsernamePrefix() string { return *c.Claims.Username.Prefix }

// GroupsPrefix returns the effective groups prefix.
func (c *Config) GroupsPrefix() string { return *c.Claims.Groups.Prefix }

// readPEM returns inline data or the file's content (resolved against the
// config's folder), or nil when neither is set.
func (c *Config) readPEM(key, file, data string) ([]byte, error) {
	if data != "" {
		return []byte(data), nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.resolve(file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if !bytes.Contains(b, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%s: %s holds no PEM block", key, file)
	}
	return b, nil
}

func (c *Config) resolve(file string) string {
	if filepath.IsAbs(file) || c.baseDir == "" {
		return file
	}
	return filepath.Join(c.baseDir, file)
}
