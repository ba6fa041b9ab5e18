package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

type validator struct {
	errs []*FieldError
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

func (v *validator) failErr(path string, err error) {
	v.errs = append(v.errs, &FieldError{Path: path, Err: err})
}

// checkFile reports a file that cannot be read. Only regular files (or
// links to them, as Kubernetes mounts secrets) are accepted: a device or a
// pipe would block the start-up.
func (v *validator) checkFile(path, file string) bool {
	st, err := os.Stat(file)
	if err != nil {
		// Report what opening it says ("open /x.pem: no such file or
		// directory"); a path that cannot be stat'ed cannot block.
		if f, oerr := os.Open(file); oerr != nil {
			err = oerr
		} else {
			f.Close()
		}
		v.failErr(path, err)
		return false
	}
	if !st.Mode().IsRegular() {
		v.fail(path, "%s is not a regular file", file)
		return false
	}
	f, err := os.Open(file)
	if err != nil {
		v.failErr(path, err)
		return false
	}
	f.Close()
	return true
}

// checkPEMFile reports a file that is missing or holds no PEM certificate.
func (v *validator) checkPEMFile(path, file string) {
	if !v.checkFile(path, file) {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		v.failErr(path, err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		v.fail(path, "%s holds no PEM certificate", file)
	}
}

// Validate checks the whole configuration and returns every problem found
// (errors.Join of *FieldError), each naming its key and what to do. Call
// ApplyDefaults first.
func (c *Config) Validate() error {
	errs := c.validate()
	c.src.addLines(errs)
	sortByLine(errs)
	return joinFieldErrors(errs)
}

func (c *Config) validate() []*FieldError {
	v := &validator{}
	c.validateIssuer(v)
	if c.Storage.Type == "" {
		v.fail("storage.type", "required: sqlite3 (one replica), postgres or kubernetes (several replicas) or memory (tests)")
	} else {
		c.validateStorage(v, "storage", c.Storage)
	}
	c.validateWeb(v)
	c.validateOAuth2(v)
	c.validateExpiry(v)
	c.validateMisc(v)
	c.validateConnectors(v)
	c.validateClients(v)
	c.validatePasswords(v)
	c.validateAudit(v)
	return v.errs
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func splitHostPort(s string) (host, port string, ok bool) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", false
	}
	return h, p, true
}

// issuerPathPrefix is the issuer URL's path without a trailing slash
// ("/dex"), or "".
func (c *Config) issuerPathPrefix() string {
	u, err := url.Parse(c.Issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}

func (c *Config) validateIssuer(v *validator) {
	if c.Issuer == "" {
		v.fail("issuer", "required: the URL clients and kube-apiserver use, e.g. https://login.example.com/dex")
		return
	}
	u, err := url.Parse(c.Issuer)
	if err != nil {
		v.fail("issuer", "%q is not a URL: %v", c.Issuer, unwrapURLError(err))
		return
	}
	switch {
	case u.Scheme == "" || u.Host == "":
		v.fail("issuer", "%q must be an absolute URL such as https://login.example.com/dex", c.Issuer)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.Issuer, "?") || strings.HasSuffix(c.Issuer, "#"):
		v.fail("issuer", "%q must have no user, query or fragment (OpenID Connect Discovery 1.0)", c.Issuer)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		// local testing only
	case u.Scheme == "http":
		v.fail("issuer", "%q must use https: kube-apiserver accepts only https issuers and tokens would cross the network in clear (http is allowed only for a loopback host such as 127.0.0.1, for local testing)", c.Issuer)
	default:
		v.fail("issuer", "%q must be an https URL", c.Issuer)
	}
}

func storageTypeError(typ string) error {
	switch typ {
	case "etcd":
		return errors.New(`"etcd" storage is not supported by gatehouse; use sqlite3 for one replica, or postgres or kubernetes for several`)
	case "mysql":
		return errors.New(`"mysql" storage is not supported by gatehouse; use postgres (or sqlite3 for one replica)`)
	}
	if s := suggest(typ, []string{StorageSQLite3, StoragePostgres, StorageKubernetes, StorageMemory}); s != "" {
		return fmt.Errorf("%q is not a storage type; did you mean %s?", typ, s)
	}
	return fmt.Errorf("%q is not a storage type; use sqlite3, postgres, kubernetes or memory", typ)
}

var pgSSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

func (c *Config) validateStorage(v *validator, path string, s Storage) {
	cfg := path + ".config"
	switch s.Type {
	case StorageSQLite3:
		if s.SQLite3.File == "" {
			v.fail(cfg+".file", "required: the database file, e.g. /var/lib/gatehouse/gatehouse.db")
		}
	case StoragePostgres:
		p := s.Postgres
		if p.DSN != "" {
			var set []string
			for _, kv := range []struct {
				key string
				set bool
			}{{"host", p.Host != ""}, {"port", p.Port != 0}, {"database", p.Database != ""}, {"user", p.User != ""}, {"password", p.Password != ""},
				{"ssl.mode", p.SSL.Mode != ""}, {"ssl.caFile", p.SSL.CAFile != ""}, {"ssl.certFile", p.SSL.CertFile != ""}, {"ssl.keyFile", p.SSL.KeyFile != ""}} {
				if kv.set {
					set = append(set, kv.key)
				}
			}
			if len(set) > 0 {
				v.fail(cfg+".dsn", "excludes %s: put everything in the dsn, or remove dsn", strings.Join(set, ", "))
			}
		} else {
			if p.Host == "" {
				v.fail(cfg+".host", "required (or give a dsn): the PostgreSQL server, e.g. db.example.com or db:5432")
			}
			if p.SSL.Mode != "" && !slices.Contains(pgSSLModes, p.SSL.Mode) {
				v.fail(cfg+".ssl.mode", "%q is not an sslmode; use one of %s", p.SSL.Mode, strings.Join(pgSSLModes, ", "))
			}
			if p.SSL.CAFile != "" {
				v.checkFile(cfg+".ssl.caFile", p.SSL.CAFile)
			}
			if p.SSL.CertFile != "" {
				v.checkFile(cfg+".ssl.certFile", p.SSL.CertFile)
			}
			if p.SSL.KeyFile != "" {
				v.checkFile(cfg+".ssl.keyFile", p.SSL.KeyFile)
			}
			if (p.SSL.CertFile == "") != (p.SSL.KeyFile == "") {
				v.fail(cfg+".ssl", "certFile and keyFile go together: set both or neither")
			}
		}
		for _, kv := range []struct {
			key string
			n   int
		}{{"connectionTimeout", p.ConnectionTimeout}, {"maxOpenConns", p.MaxOpenConns}, {"maxIdleConns", p.MaxIdleConns}, {"connMaxLifetime", p.ConnMaxLifetime}} {
			if kv.n < 0 {
				v.fail(cfg+"."+kv.key, "must not be negative")
			}
		}
		if p.MaxOpenConns > 0 && p.MaxIdleConns > p.MaxOpenConns {
			v.fail(cfg+".maxIdleConns", "%d is more than maxOpenConns (%d)", p.MaxIdleConns, p.MaxOpenConns)
		}
	case StorageKubernetes:
		k := s.Kubernetes
		switch {
		case path != "storage":
			v.fail(path+".type", "kubernetes storage holds the issuer's state, not audit events: use sqlite3 or postgres")
		case k.InCluster && k.KubeConfigFile != "":
			v.fail(cfg+".kubeConfigFile", "excludes inCluster: set one of them")
		case !k.InCluster && k.KubeConfigFile == "":
			v.fail(cfg, "set inCluster: true (in a pod, with the chart's RBAC) or kubeConfigFile")
		case k.KubeConfigFile != "":
			v.checkFile(cfg+".kubeConfigFile", k.KubeConfigFile)
		}
		if k.CRDHandling != "" && k.CRDHandling != "ensure" && k.CRDHandling != "check" {
			v.fail(cfg+".crdHandling", "%q: use ensure (create missing custom resource definitions) or check (fail when one is missing)", k.CRDHandling)
		}
	case StorageMemory:
	default:
		v.failErr(path+".type", storageTypeError(s.Type))
	}
}

func checkAddr(v *validator, path, addr string) {
	if addr == "" {
		return
	}
	if _, port, ok := splitHostPort(addr); !ok || port == "" {
		v.fail(path, "%q is not a listen address; write host:port such as 0.0.0.0:5556 or :5556", addr)
	}
}

func (c *Config) validateWeb(v *validator) {
	w := c.Web
	if w.HTTP == "" && w.HTTPS == "" {
		v.fail("web", "needs an address to listen on: set web.https (with tlsCert and tlsKey) or web.http (behind a TLS-terminating proxy), or give them on the command line as Dex's chart does (--web-https-addr, --web-http-addr)")
	}
	checkAddr(v, "web.http", w.HTTP)
	checkAddr(v, "web.https", w.HTTPS)
	if w.HTTP != "" && w.HTTP == w.HTTPS {
		v.fail("web.https", "%q is also web.http; use two addresses", w.HTTPS)
	}
	if w.HTTPS != "" {
		certOK, keyOK := false, false
		if w.TLSCert == "" {
			v.fail("web.tlsCert", "required with web.https: the PEM certificate (chain) file")
		} else {
			certOK = v.checkFile("web.tlsCert", w.TLSCert)
		}
		if w.TLSKey == "" {
			v.fail("web.tlsKey", "required with web.https: the PEM private key file")
		} else {
			keyOK = v.checkFile("web.tlsKey", w.TLSKey)
		}
		if certOK && keyOK {
			if _, err := tls.LoadX509KeyPair(w.TLSCert, w.TLSKey); err != nil {
				v.fail("web.tlsCert", "cannot be used with web.tlsKey: %v", err)
			}
		}
	} else if w.TLSCert != "" || w.TLSKey != "" {
		v.fail("web.https", "is not set, so web.tlsCert and web.tlsKey would be ignored; set web.https or remove them")
	}
	for _, kv := range []struct {
		key string
		val TLSVersion
	}{{"web.tlsMinVersion", w.TLSMinVersion}, {"web.tlsMaxVersion", w.TLSMaxVersion}} {
		if kv.val != "" && kv.val.Uint16() == 0 {
			v.fail(kv.key, "%q is not a supported TLS version; use \"1.2\" or \"1.3\"", kv.val)
		}
	}
	if w.TLSMinVersion.Uint16() != 0 && w.TLSMaxVersion.Uint16() != 0 && w.TLSMinVersion.Uint16() > w.TLSMaxVersion.Uint16() {
		v.fail("web.tlsMinVersion", "%s is above web.tlsMaxVersion %s", w.TLSMinVersion, w.TLSMaxVersion)
	}
	for i, o := range w.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v.fail(fmt.Sprintf("web.allowedOrigins[%d]", i), "%q is not an origin; write scheme://host[:port], or * for any", o)
		}
	}
	for i, p := range w.ClientRemoteIP.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			v.fail(fmt.Sprintf("web.clientRemoteIP.trustedProxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", p)
		}
	}
	if len(w.ClientRemoteIP.TrustedProxies) > 0 && w.ClientRemoteIP.Header == "" {
		v.fail("web.clientRemoteIP.header", "required with trustedProxies: the header the proxies set, e.g. X-Forwarded-For")
	}
	checkAddr(v, "telemetry.http", c.Telemetry.HTTP)
	if c.Telemetry.HTTP != "" && (c.Telemetry.HTTP == w.HTTP || c.Telemetry.HTTP == w.HTTPS) {
		v.fail("telemetry.http", "%q is also a web address; the telemetry server needs its own", c.Telemetry.HTTP)
	}
}

// grantAdvice explains Dex grant types that gatehouse refuses.
var grantAdvice = map[string]string{
	"implicit":           "the implicit flow is not supported (OAuth 2.0 Security BCP, RFC 9700, forbids it); use authorization_code with PKCE",
	"client_credentials": "client_credentials is not supported by gatehouse; remove it",
}

func checkGrant(v *validator, path, g string) bool {
	if slices.Contains(SupportedGrantTypes, g) {
		return true
	}
	if advice, ok := grantAdvice[g]; ok {
		v.fail(path, "%q: %s", g, advice)
	} else {
		v.fail(path, "%q is not a grant type gatehouse supports; use %s", g, strings.Join(SupportedGrantTypes, ", "))
	}
	return false
}

func (c *Config) validateOAuth2(v *validator) {
	o := c.OAuth2
	for _, lim := range []struct {
		path string
		l    FailureLimit
	}{{"oauth2.loginLimits.perUser", o.LoginLimits.PerUser}, {"oauth2.loginLimits.perIP", o.LoginLimits.PerIP}} {
		path, l := lim.path, lim.l
		if l.Failures < 0 {
			v.fail(path+".failures", "%d: must be a positive number of failed logins (or absent for the default)", l.Failures)
		}
		if l.Window < 0 {
			v.fail(path+".window", "%s: must be a positive duration such as 1m (or absent for the default)", l.Window.D())
		}
	}
	for i, rt := range o.ResponseTypes {
		if rt != "code" {
			v.fail(fmt.Sprintf("oauth2.responseTypes[%d]", i), "%q is not supported: gatehouse implements only the authorization code flow (response type code, with PKCE); remove it", rt)
		}
	}
	for i, g := range o.GrantTypes {
		p := fmt.Sprintf("oauth2.grantTypes[%d]", i)
		if checkGrant(v, p, g) && g == GrantPassword && o.PasswordConnector == "" {
			v.fail(p, "the password grant needs oauth2.passwordConnector (the connector that checks passwords, e.g. local or an ldap connector's id)")
		}
	}
	if o.PasswordConnector != "" {
		k, ok := c.Connector(o.PasswordConnector)
		switch {
		case !ok:
			v.fail("oauth2.passwordConnector", "%q names no connector; use the id of a connector (%s)", o.PasswordConnector, strings.Join(c.connectorIDs(), ", "))
		case k.Type != ConnectorLocal && k.Type != ConnectorLDAP:
			v.fail("oauth2.passwordConnector", "%q is a %s connector, which cannot check passwords; use an ldap or local connector (enablePasswordDB: true gives one with id local)", o.PasswordConnector, k.Type)
		}
	}
}

func (c *Config) connectorIDs() []string {
	var ids []string
	for _, k := range c.AllConnectors() {
		ids = append(ids, k.ID)
	}
	if len(ids) == 0 {
		return []string{"none configured"}
	}
	return ids
}

func (c *Config) validateExpiry(v *validator) {
	e := c.Expiry
	for _, kv := range []struct {
		key string
		d   Duration
	}{{"expiry.signingKeys", e.SigningKeys}, {"expiry.idTokens", e.IDTokens}, {"expiry.authRequests", e.AuthRequests}, {"expiry.deviceRequests", e.DeviceRequests}} {
		if kv.d <= 0 {
			v.fail(kv.key, "must be a positive duration such as 1h")
		}
	}
	if c.Signer.Local.KeysRotationPeriod < 0 {
		v.fail("signer.config.keysRotationPeriod", "must be a positive duration such as 6h")
	}
	r := e.RefreshTokens
	if r.ReuseInterval != nil && *r.ReuseInterval < 0 {
		v.fail("expiry.refreshTokens.reuseInterval", "must not be negative (0s turns the grace period off)")
	}
	if r.ValidIfNotUsedFor < 0 {
		v.fail("expiry.refreshTokens.validIfNotUsedFor", "must not be negative (leave it out for no idle expiry)")
	}
	if r.AbsoluteLifetime < 0 {
		v.fail("expiry.refreshTokens.absoluteLifetime", "must not be negative (leave it out for no absolute expiry)")
	}
}

func (c *Config) validateMisc(v *validator) {
	switch strings.ToLower(c.Logger.Format) {
	case "", "json", "text":
	default:
		v.fail("logger.format", "%q is not a log format; use json or text", c.Logger.Format)
	}
	f := c.Frontend
	switch f.Theme {
	case "", "light", "dark", "auto":
	default:
		v.fail("frontend.theme", "%q is not a theme; use light, dark or auto", f.Theme)
	}
	if f.Dir != "" {
		if st, err := os.Stat(f.Dir); err != nil {
			v.failErr("frontend.dir", err)
		} else if !st.IsDir() {
			v.fail("frontend.dir", "%s is not a directory", f.Dir)
		}
	}
	switch c.Signer.Type {
	case "", "local":
	case "vault":
		v.fail("signer.type", "the vault signer is not supported by gatehouse; use type local, or remove the signer section")
	default:
		v.fail("signer.type", "%q is not a signer type; use local", c.Signer.Type)
	}
	switch c.Signer.Local.Algorithm {
	case "", RS256, ES256:
	default:
		v.fail("signer.config.algorithm", "%q is not supported; use RS256 (kube-apiserver's default) or ES256", c.Signer.Local.Algorithm)
	}
}

// connectorAdvice says what to use instead of a Dex connector type that
// gatehouse does not have.
var connectorAdvice = map[string]string{
	"mockCallback":     "it is Dex's test connector; for a test user use enablePasswordDB: true with staticPasswords",
	"mockPassword":     "it is Dex's test connector; for a test user use enablePasswordDB: true with staticPasswords",
	"google":           "use type oidc with issuer https://accounts.google.com",
	"microsoft":        "use type oidc with issuer https://login.microsoftonline.com/<tenant>/v2.0",
	"gitlab":           "use type oidc with issuer https://gitlab.com (or your GitLab's URL)",
	"saml":             "use the provider's OpenID Connect endpoint with type oidc",
	"samlExperimental": "use the provider's OpenID Connect endpoint with type oidc",
}

func (c *Config) validateConnectors(v *validator) {
	ids := map[string]int{}
	hasLocal := false
	for i, k := range c.Connectors {
		p := fmt.Sprintf("connectors[%d]", i)
		switch k.Type {
		case ConnectorGitHub, ConnectorOIDC:
			if isEmptyJSON(k.Config) {
				v.fail(p+".config", "required for a %s connector (clientID, clientSecret, redirectURI, ...)", k.Type)
			}
		case ConnectorLDAP:
			if isEmptyJSON(k.Config) {
				v.fail(p+".config", "required for an ldap connector (host, bindDN, bindPW, userSearch, groupSearch; see docs/ldap.md)")
			}
		case ConnectorLocal:
			hasLocal = true
		case "":
			v.fail(p+".type", "required: github, oidc, ldap or local")
		default:
			msg := fmt.Sprintf("%q is not supported by gatehouse (it supports github, oidc, ldap and local)", k.Type)
			if advice, ok := connectorAdvice[k.Type]; ok {
				msg += "; " + advice
			} else if s := suggest(k.Type, []string{ConnectorGitHub, ConnectorOIDC, ConnectorLDAP, ConnectorLocal}); s != "" {
				msg += "; did you mean " + s + "?"
			}
			v.fail(p+".type", "%s", msg)
		}
		if len(k.Config) > 0 && !isEmptyJSON(k.Config) && !isJSONObject(k.Config) {
			v.fail(p+".config", "must be a mapping of the connector's keys")
		}
		switch {
		case k.ID == "":
			v.fail(p+".id", "required: a short stable id such as github (it becomes part of every user's sub claim)")
		case strings.ContainsAny(k.ID, "/?#% \t"):
			v.fail(p+".id", "%q may not contain '/', '?', '#', '%%' or spaces: it appears in callback URLs", k.ID)
		default:
			if j, dup := ids[k.ID]; dup {
				v.fail(p+".id", "%q is already the id of connectors[%d]; connector ids must be unique", k.ID, j)
			}
			ids[k.ID] = i
		}
		if k.Name == "" && k.Type != ConnectorLocal {
			v.fail(p+".name", "required: the name shown on the login page, e.g. GitHub")
		}
	}
	if c.EnablePasswordDB && !hasLocal {
		if j, dup := ids[LocalConnectorID]; dup {
			v.fail(fmt.Sprintf("connectors[%d].id", j), "%q is the id of the connector enablePasswordDB adds; choose another id", LocalConnectorID)
		}
	}
}

func isEmptyJSON(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == "{}"
}

func isJSONObject(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return strings.HasPrefix(s, "{")
}

// deviceCallbackPath is Dex's device flow redirect (relative to the
// issuer); a client lists it to use the device flow.
const deviceCallbackPath = "/device/callback"

func (c *Config) validateRedirectURI(v *validator, path, uri string) {
	if uri == deviceCallbackPath || uri == c.issuerPathPrefix()+deviceCallbackPath {
		return // Dex's device-flow redirect, relative to the issuer
	}
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		v.fail(path, "%q is not a URI: %v", uri, unwrapURLError(err))
	case u.Scheme == "":
		v.fail(path, "%q is not absolute; write the full URI, e.g. http://localhost:8000 or https://app.example.com/callback", uri)
	case u.Fragment != "" || strings.Contains(uri, "#"):
		v.fail(path, "%q has a fragment (#...), which a redirect URI must not have (RFC 6749 3.1.2); remove it", uri)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		v.fail(path, "%q has no host", uri)
	}
}

func (c *Config) validateClients(v *validator) {
	ids := map[string]int{}
	for i, cl := range c.StaticClients {
		p := fmt.Sprintf("staticClients[%d]", i)
		switch {
		case cl.ID == "" && cl.IDEnv == "":
			v.fail(p+".id", "required: the client id (or idEnv naming a variable that holds it), e.g. kubernetes")
		case cl.ID == "":
			// idEnv failed to resolve: already reported
		default:
			if j, dup := ids[cl.ID]; dup {
				v.fail(p+".id", "%q is already the id of staticClients[%d]; client ids must be unique", cl.ID, j)
			}
			ids[cl.ID] = i
		}
		if cl.Name == "" {
			v.fail(p+".name", "required: the name shown on the approval page, e.g. Kubernetes")
		}
		if cl.Public {
			if cl.Secret != "" || cl.SecretEnv != "" {
				key := ".secret"
				if cl.Secret == "" || cl.SecretEnv != "" {
					key = ".secretEnv"
				}
				v.fail(p+key, "a public client has no secret (anyone can read it from the app); remove the secret, or set public: false")
			}
		} else if cl.Secret == "" && cl.SecretEnv == "" {
			v.fail(p+".secret", "required for a confidential client (or secretEnv); a client that cannot keep a secret, such as kubectl on a laptop, sets public: true instead")
		}
		for j, uri := range cl.RedirectURIs {
			c.validateRedirectURI(v, fmt.Sprintf("%s.redirectURIs[%d]", p, j), uri)
		}
		if cl.LogoURL != "" {
			if _, err := url.Parse(cl.LogoURL); err != nil {
				v.fail(p+".logoURL", "%q is not a URL: %v", cl.LogoURL, unwrapURLError(err))
			}
		}
		for j, id := range cl.AllowedConnectors {
			if _, ok := c.Connector(id); !ok {
				v.fail(fmt.Sprintf("%s.allowedConnectors[%d]", p, j), "%q names no connector; use one of %s", id, strings.Join(c.connectorIDs(), ", "))
			}
		}
		for j, g := range cl.AllowedGrantTypes {
			gp := fmt.Sprintf("%s.allowedGrantTypes[%d]", p, j)
			if checkGrant(v, gp, g) && !slices.Contains(c.OAuth2.GrantTypes, g) {
				v.fail(gp, "%q is not in oauth2.grantTypes (%s); add it there first", g, strings.Join(c.OAuth2.GrantTypes, ", "))
			}
		}
	}
	for i, cl := range c.StaticClients {
		for j, peer := range cl.TrustedPeers {
			if _, ok := ids[peer]; !ok {
				v.fail(fmt.Sprintf("staticClients[%d].trustedPeers[%d]", i, j), "%q is not the id of a static client", peer)
			}
		}
	}
}

func (c *Config) validatePasswords(v *validator) {
	if len(c.StaticPasswords) == 0 {
		return
	}
	if !c.EnablePasswordDB && !slices.ContainsFunc(c.Connectors, func(k Connector) bool { return k.Type == ConnectorLocal }) {
		v.fail("enablePasswordDB", "must be true to use staticPasswords (as in Dex); set enablePasswordDB: true or remove staticPasswords")
	}
	emails := map[string]int{}
	userIDs := map[string]int{}
	for i, pw := range c.StaticPasswords {
		p := fmt.Sprintf("staticPasswords[%d]", i)
		if pw.Email == "" {
			v.fail(p+".email", "required: the login name, e.g. admin@example.com")
		} else {
			key := strings.ToLower(pw.Email)
			if j, dup := emails[key]; dup {
				v.fail(p+".email", "%q is already the email of staticPasswords[%d]", pw.Email, j)
			}
			emails[key] = i
		}
		switch {
		case pw.Hash == "" && pw.HashFromEnv == "":
			v.fail(p+".hash", "required: a bcrypt hash of the password, e.g. from `htpasswd -BnC 10 user | cut -d: -f2` (or hashFromEnv)")
		case pw.Hash == "":
			// hashFromEnv failed to resolve: already reported
		default:
			if _, err := bcrypt.Cost([]byte(normalizeHash(pw.Hash))); err != nil {
				v.fail(p+".hash", "is not a bcrypt hash ($2a$, $2b$ or $2y$, or that base64-encoded): %v", err)
			}
		}
		if pw.UserID == "" {
			v.fail(p+".userID", "required: a stable unique id (e.g. a UUID); the sub claim is derived from it")
		} else {
			if j, dup := userIDs[pw.UserID]; dup {
				v.fail(p+".userID", "%q is already the userID of staticPasswords[%d]; two users would share one identity", pw.UserID, j)
			}
			userIDs[pw.UserID] = i
		}
	}
}
