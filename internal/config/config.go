// Package config reads gatehouse's configuration: Dex's config.yaml format,
// unchanged, plus a few extension keys. Load parses a file, applies the
// defaults and validates it; every error names the key it is about (and its
// line when it comes from a file) and says what to do.
//
// A Config may also be built in code (gatehouse serve --dev does): fill the
// fields, call ApplyDefaults, then Validate.
package config

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Config is the whole configuration file.
type Config struct {
	// Issuer is the issuer URL, possibly with a path (https://host/dex).
	Issuer    string    `json:"issuer"`
	Storage   Storage   `json:"storage"`
	Web       Web       `json:"web"`
	Telemetry Telemetry `json:"telemetry"`
	OAuth2    OAuth2    `json:"oauth2"`
	Expiry    Expiry    `json:"expiry"`
	Logger    Logger    `json:"logger"`
	Frontend  Frontend  `json:"frontend"`
	Signer    Signer    `json:"signer"`
	// Connectors are the upstream identity providers (Dex: connectors).
	Connectors    []Connector `json:"connectors"`
	StaticClients []Client    `json:"staticClients"`
	// EnablePasswordDB adds the built-in "local" connector (id local, name
	// Email) that checks StaticPasswords.
	EnablePasswordDB bool       `json:"enablePasswordDB"`
	StaticPasswords  []Password `json:"staticPasswords"`
	// Audit is gatehouse's audit trail (extension).
	Audit Audit `json:"audit"`

	// src is the YAML the config came from, to give errors a line.
	src *source
	// warn collects what start-up should log (see Warnings).
	warn *warnings
}

// Storage types gatehouse supports.
const (
	StorageSQLite3  = "sqlite3"
	StoragePostgres = "postgres"
	StorageMemory   = "memory"
	// StorageKubernetes keeps everything in custom resources of the API
	// server (Dex's kubernetes storage, with its objects read in place).
	StorageKubernetes = "kubernetes"
)

// Storage is Dex's storage section: {type, config}. Only the field for
// Type is meaningful.
type Storage struct {
	// Type is sqlite3, postgres, kubernetes or memory.
	Type       string
	SQLite3    SQLite3
	Postgres   Postgres
	Kubernetes Kubernetes
}

// Kubernetes is the config of storage type kubernetes: Dex's keys.
type Kubernetes struct {
	// InCluster uses the pod's ServiceAccount; it excludes KubeConfigFile.
	InCluster      bool   `json:"inCluster"`
	KubeConfigFile string `json:"kubeConfigFile"`
	// CRDHandling is ensure (default: create missing definitions) or
	// check (fail start-up when one is missing).
	CRDHandling string `json:"crdHandling"`
}

// SQLite3 is the config of storage type sqlite3.
type SQLite3 struct {
	// File is the database file, created if missing.
	File string `json:"file"`
}

// Postgres is the config of storage type postgres: Dex's keys plus DSN.
type Postgres struct {
	// DSN is a gatehouse extension: a libpq connection string or URL
	// (postgres://user@host/db?sslmode=...). It excludes the other
	// connection keys.
	DSN      string `json:"dsn"`
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	Password string `json:"password"`
	SSL      SSL    `json:"ssl"`
	// ConnectionTimeout in seconds (0: wait indefinitely), as in Dex.
	ConnectionTimeout int `json:"connectionTimeout"`
	// MaxOpenConns and MaxIdleConns default to 5, as in Dex.
	MaxOpenConns int `json:"maxOpenConns"`
	MaxIdleConns int `json:"maxIdleConns"`
	// ConnMaxLifetime in seconds (0: unlimited), as in Dex.
	ConnMaxLifetime int `json:"connMaxLifetime"`
}

// SSL is the TLS setting of a postgres connection.
type SSL struct {
	// Mode is a libpq sslmode; Dex's default is verify-full.
	Mode     string `json:"mode"`
	CAFile   string `json:"caFile"`
	KeyFile  string `json:"keyFile"`
	CertFile string `json:"certFile"`
}

// Web is the issuer's HTTP(S) server.
type Web struct {
	HTTP    string `json:"http"`
	HTTPS   string `json:"https"`
	TLSCert string `json:"tlsCert"`
	TLSKey  string `json:"tlsKey"`
	// TLSMinVersion defaults to 1.2; TLSMaxVersion to Go's maximum.
	TLSMinVersion TLSVersion `json:"tlsMinVersion"`
	TLSMaxVersion TLSVersion `json:"tlsMaxVersion"`
	// AllowedOrigins for CORS ("*" allows any).
	AllowedOrigins []string `json:"allowedOrigins"`
	// AllowedHeaders for CORS; defaults to ["Authorization"].
	AllowedHeaders []string       `json:"allowedHeaders"`
	Headers        Headers        `json:"headers"`
	ClientRemoteIP ClientRemoteIP `json:"clientRemoteIP"`
}

// Headers are extra response headers (Dex's web.headers); a value set here
// replaces gatehouse's own for that header.
type Headers struct {
	ContentSecurityPolicy   string `json:"Content-Security-Policy"`
	XFrameOptions           string `json:"X-Frame-Options"`
	XContentTypeOptions     string `json:"X-Content-Type-Options"`
	XXSSProtection          string `json:"X-XSS-Protection"`
	StrictTransportSecurity string `json:"Strict-Transport-Security"`
}

// HTTPHeader returns the headers that are set.
func (h Headers) HTTPHeader() http.Header {
	out := http.Header{}
	for k, v := range map[string]string{
		"Content-Security-Policy":   h.ContentSecurityPolicy,
		"X-Frame-Options":           h.XFrameOptions,
		"X-Content-Type-Options":    h.XContentTypeOptions,
		"X-XSS-Protection":          h.XXSSProtection,
		"Strict-Transport-Security": h.StrictTransportSecurity,
	} {
		if v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// ClientRemoteIP says where the client's address comes from behind proxies.
type ClientRemoteIP struct {
	// Header such as X-Forwarded-For, trusted only from TrustedProxies.
	Header         string   `json:"header"`
	TrustedProxies []string `json:"trustedProxies"`
}

// TrustedPrefixes parses TrustedProxies (CIDRs; a bare address counts as
// a single-address prefix).
func (c ClientRemoteIP) TrustedPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Telemetry is the metrics and health server.
type Telemetry struct {
	// HTTP is the address of /metrics and /healthz (empty: not served).
	HTTP string `json:"http"`
	// EnableProfiling adds /debug/pprof/ to the telemetry server.
	EnableProfiling bool `json:"enableProfiling"`
}

// Grant types (Dex's names). gatehouse supports these five.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantPassword          = "password"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// SupportedGrantTypes lists the grant types gatehouse implements.
var SupportedGrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode, GrantPassword, GrantTokenExchange}

// OAuth2 holds the protocol options.
type OAuth2 struct {
	// GrantTypes the server allows. Default, as Dex: authorization_code,
	// refresh_token, device_code, token-exchange, and password when
	// PasswordConnector is set.
	GrantTypes []string `json:"grantTypes"`
	// ResponseTypes the authorization endpoint accepts; only "code".
	ResponseTypes []string `json:"responseTypes"`
	// SkipApprovalScreen: logging in implies consent.
	SkipApprovalScreen bool `json:"skipApprovalScreen"`
	// AlwaysShowLoginScreen shows the connector choice even with one connector.
	AlwaysShowLoginScreen bool `json:"alwaysShowLoginScreen"`
	// PasswordConnector is the connector id the password grant checks.
	PasswordConnector string `json:"passwordConnector"`
	// PKCE is a gatehouse extension.
	PKCE PKCE `json:"pkce"`
	// LoginLimits (extension) bound failed password logins and device
	// code guesses; successful ones are never limited.
	LoginLimits LoginLimits `json:"loginLimits"`
}

// LoginLimits bound failed logins (wrong passwords on the login page and
// in the password grant, wrong device user codes), each as a bucket of
// Failures that refills completely in Window. Successful logins take
// nothing from any bucket.
type LoginLimits struct {
	// PerUser counts wrong passwords for one username of one connector
	// (default 10 per 1m).
	PerUser FailureLimit `json:"perUser"`
	// PerIP counts wrong passwords and wrong device codes from one client
	// address, as web.clientRemoteIP determines it (default 30 per 30s).
	PerIP FailureLimit `json:"perIP"`
}

// FailureLimit is one bucket: up to Failures at once, then one more every
// Window/Failures; after Window without failures it is full again.
type FailureLimit struct {
	Failures int      `json:"failures"`
	Window   Duration `json:"window"`
}

// PKCE options (extension). S256 is always accepted, and PKCE is always
// required of public clients.
type PKCE struct {
	// AllowPlain accepts code_challenge_method=plain (RFC 7636 discourages it).
	AllowPlain bool `json:"allowPlain"`
}

// Expiry holds lifetimes.
type Expiry struct {
	// SigningKeys: rotation period of signing keys (default 6h).
	SigningKeys Duration `json:"signingKeys"`
	// IDTokens: lifetime of ID tokens (default 24h).
	IDTokens Duration `json:"idTokens"`
	// AuthRequests: how long a started login may take (default 24h).
	AuthRequests Duration `json:"authRequests"`
	// DeviceRequests: lifetime of a device code (default 5m).
	DeviceRequests Duration      `json:"deviceRequests"`
	RefreshTokens  RefreshTokens `json:"refreshTokens"`
}

// RefreshTokens is the refresh token policy.
type RefreshTokens struct {
	// DisableRotation keeps the same refresh token on every use.
	DisableRotation bool `json:"disableRotation"`
	// ReuseInterval: a rotated-out token used again within this interval
	// gets the same new token instead of revoking the family. nil means the
	// default (3s); 0 disables the grace period.
	ReuseInterval *Duration `json:"reuseInterval"`
	// ValidIfNotUsedFor: idle expiry (0: never).
	ValidIfNotUsedFor Duration `json:"validIfNotUsedFor"`
	// AbsoluteLifetime: expiry counted from the login (0: never).
	AbsoluteLifetime Duration `json:"absoluteLifetime"`
}

// Logger configures log/slog.
type Logger struct {
	// Level: debug, info (default), warn or error.
	Level slog.Level `json:"level"`
	// Format: json (gatehouse's default) or text.
	Format string `json:"format"`
}

// Frontend is the branding of the login pages.
type Frontend struct {
	// Dir holds templates/*.html and static/* that replace the embedded ones.
	Dir string `json:"dir"`
	// LogoURL replaces the embedded logo.
	LogoURL string `json:"logoURL"`
	// Issuer is the name shown in page titles (default "gatehouse").
	Issuer string `json:"issuer"`
	// Theme: light (default), dark or auto.
	Theme string `json:"theme"`
	// Extra values passed to the templates.
	Extra map[string]string `json:"extra"`
}

// Signing algorithms.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Signer is Dex's signer section; only type local is supported.
type Signer struct {
	// Type is local (default).
	Type  string
	Local LocalSigner
}

// LocalSigner is the config of signer type local.
type LocalSigner struct {
	// KeysRotationPeriod overrides expiry.signingKeys, as in Dex.
	KeysRotationPeriod Duration `json:"keysRotationPeriod"`
	// Algorithm of new keys: RS256 (default) or ES256.
	Algorithm string `json:"algorithm"`
}

// Connector types gatehouse supports.
const (
	ConnectorGitHub = "github"
	ConnectorOIDC   = "oidc"
	ConnectorLDAP   = "ldap"
	ConnectorLocal  = "local"
)

// LocalConnectorID is the id of the connector enablePasswordDB adds.
const LocalConnectorID = "local"

// Connector is one upstream identity provider. Config is kept as JSON
// (environment already expanded) for the connector package to decode
// with DecodeConfig or DecodeStrict.
type Connector struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`

	keyPath string
	src     *source
	warn    *warnings
}

// KeyPath is where the connector's config sits in the file
// ("connectors[0].config"), for error messages.
func (c Connector) KeyPath() string {
	if c.keyPath != "" {
		return c.keyPath
	}
	return "connectors[id=" + c.ID + "].config"
}

// DecodeConfig decodes c.Config strictly into v (a pointer to the
// connector's own config struct): unknown keys and wrong types are errors
// naming the full key path and, when known, the line.
func (c Connector) DecodeConfig(v any) error {
	return decodeStrict(c.Config, v, c.KeyPath(), c.src, c.warn)
}

// Client is a static OAuth2 client.
type Client struct {
	ID string `json:"id"`
	// IDEnv names an environment variable holding the id (excludes ID).
	IDEnv  string `json:"idEnv"`
	Secret string `json:"secret"`
	// SecretEnv names an environment variable holding the secret.
	SecretEnv    string   `json:"secretEnv"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectURIs"`
	// Public clients have no secret and must use PKCE.
	Public bool `json:"public"`
	// TrustedPeers may request tokens with this client as audience.
	TrustedPeers []string `json:"trustedPeers"`
	LogoURL      string   `json:"logoURL"`
	// AllowedConnectors (extension): connector ids this client may log in
	// through; empty means all.
	AllowedConnectors []string `json:"allowedConnectors"`
	// AllowedGrantTypes (extension): grants this client may use; empty
	// means all of oauth2.grantTypes (ApplyDefaults fills it in).
	AllowedGrantTypes []string `json:"allowedGrantTypes"`
}

// AllowsConnector reports whether the client may log in through the
// connector with this id.
func (c Client) AllowsConnector(id string) bool {
	return len(c.AllowedConnectors) == 0 || slices.Contains(c.AllowedConnectors, id)
}

// AllowsGrant reports whether the client may use grant type g. Call it on
// a Config that went through ApplyDefaults: an empty list allows nothing.
func (c Client) AllowsGrant(g string) bool {
	return slices.Contains(c.AllowedGrantTypes, g)
}

// Password is a static local user.
type Password struct {
	// Email is the login name.
	Email string `json:"email"`
	// Hash is a bcrypt hash ($2a$/$2b$/$2y$...). Dex also accepts the hash
	// base64-encoded; ApplyDefaults decodes it.
	Hash string `json:"hash"`
	// HashFromEnv names an environment variable holding the hash, used
	// when Hash is empty.
	HashFromEnv string `json:"hashFromEnv"`
	// Username is for display; it is the name claim when Name is empty,
	// as in Dex.
	Username          string `json:"username"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferredUsername"`
	// EmailVerified defaults to true when nil, as in Dex.
	EmailVerified *bool `json:"emailVerified"`
	// UserID is the stable user id; sub is derived from it.
	UserID string   `json:"userID"`
	Groups []string `json:"groups"`
}

// AllConnectors returns the configured connectors plus the built-in local
// connector when EnablePasswordDB is set and no local connector is listed.
func (c *Config) AllConnectors() []Connector {
	out := slices.Clone(c.Connectors)
	if c.EnablePasswordDB && !slices.ContainsFunc(out, func(k Connector) bool { return k.Type == ConnectorLocal }) {
		out = append(out, Connector{Type: ConnectorLocal, ID: LocalConnectorID, Name: "Email"})
	}
	return out
}

// Connector returns the connector with this id (from AllConnectors).
func (c *Config) Connector(id string) (Connector, bool) {
	for _, k := range c.AllConnectors() {
		if k.ID == id {
			return k, true
		}
	}
	return Connector{}, false
}

// Client returns the static client with this id.
func (c *Config) Client(id string) (Client, bool) {
	for _, k := range c.StaticClients {
		if k.ID == id {
			return k, true
		}
	}
	return Client{}, false
}
