package config

import (
	"encoding/base64"
	"slices"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Defaults, as in Dex unless said otherwise.
const (
	DefaultIDTokens       = 24 * time.Hour
	DefaultSigningKeys    = 6 * time.Hour
	DefaultAuthRequests   = 24 * time.Hour
	DefaultDeviceRequests = 5 * time.Minute
	// DefaultReuseInterval is gatehouse's default grace period for a
	// concurrent refresh (Dex's code uses 0 when the key is absent, while
	// its documentation shows 3s; 0s turns it off).
	DefaultReuseInterval = 3 * time.Second
	// DefaultPostgresConns is Dex's pool size (open and idle).
	DefaultPostgresConns = 5
)

// Default login limits (oauth2.loginLimits, an extension): failures per
// window, for one user and for one client address.
var (
	DefaultFailuresPerUser = FailureLimit{Failures: 10, Window: Duration(time.Minute)}
	DefaultFailuresPerIP   = FailureLimit{Failures: 30, Window: Duration(30 * time.Second)}
)

// ApplyDefaults fills every unset value with its default. It is
// idempotent, and Load calls it; call it yourself on a Config built in
// code before Validate.
func (c *Config) ApplyDefaults() {
	if c.Storage.Type == StoragePostgres {
		c.Storage.Postgres.applyDefaults()
	}

	if c.Web.TLSMinVersion == "" {
		c.Web.TLSMinVersion = TLS12
	}
	if len(c.Web.AllowedHeaders) == 0 {
		c.Web.AllowedHeaders = []string{"Authorization"}
	}

	if len(c.OAuth2.ResponseTypes) == 0 {
		c.OAuth2.ResponseTypes = []string{"code"}
	}
	if len(c.OAuth2.GrantTypes) == 0 {
		c.OAuth2.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode, GrantTokenExchange}
		if c.OAuth2.PasswordConnector != "" {
			c.OAuth2.GrantTypes = append(c.OAuth2.GrantTypes, GrantPassword)
		}
	}
	c.OAuth2.LoginLimits.PerUser.applyDefaults(DefaultFailuresPerUser)
	c.OAuth2.LoginLimits.PerIP.applyDefaults(DefaultFailuresPerIP)
	for i := range c.StaticClients {
		cl := &c.StaticClients[i]
		if len(cl.AllowedGrantTypes) == 0 {
			cl.AllowedGrantTypes = slices.Clone(c.OAuth2.GrantTypes)
		}
	}

	if c.Signer.Type == "" {
		c.Signer.Type = "local"
	}
	if c.Signer.Local.Algorithm == "" {
		c.Signer.Local.Algorithm = RS256
	}
	if c.Signer.Local.KeysRotationPeriod != 0 {
		// Dex: signer.config.keysRotationPeriod wins over expiry.signingKeys.
		c.Expiry.SigningKeys = c.Signer.Local.KeysRotationPeriod
	}
	setDuration(&c.Expiry.SigningKeys, DefaultSigningKeys)
	setDuration(&c.Expiry.IDTokens, DefaultIDTokens)
	setDuration(&c.Expiry.AuthRequests, DefaultAuthRequests)
	setDuration(&c.Expiry.DeviceRequests, DefaultDeviceRequests)
	if c.Expiry.RefreshTokens.ReuseInterval == nil {
		c.Expiry.RefreshTokens.ReuseInterval = DurationPtr(DefaultReuseInterval)
	}

	if c.Logger.Format == "" {
		c.Logger.Format = "json"
	}
	if c.Frontend.Issuer == "" {
		c.Frontend.Issuer = "gatehouse"
	}
	if c.Frontend.Theme == "" {
		c.Frontend.Theme = "light"
	}

	for i := range c.StaticPasswords {
		c.StaticPasswords[i].Hash = normalizeHash(c.StaticPasswords[i].Hash)
	}
	for i := range c.Connectors {
		if c.Connectors[i].Name == "" && c.Connectors[i].Type == ConnectorLocal {
			c.Connectors[i].Name = "Email"
		}
	}

	c.applyAuditDefaults()
}

func (f *FailureLimit) applyDefaults(def FailureLimit) {
	if f.Failures == 0 {
		f.Failures = def.Failures
	}
	if f.Window == 0 {
		f.Window = def.Window
	}
}

func (p *Postgres) applyDefaults() {
	if p.MaxOpenConns == 0 {
		p.MaxOpenConns = DefaultPostgresConns
	}
	if p.MaxIdleConns == 0 {
		p.MaxIdleConns = DefaultPostgresConns
	}
	if p.DSN == "" && p.SSL.Mode == "" {
		p.SSL.Mode = "verify-full"
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// normalizeHash returns a bcrypt hash as is, and decodes one that is
// base64-encoded (Dex accepts both). Anything else is returned unchanged
// for Validate to report.
func normalizeHash(h string) string {
	if _, err := bcrypt.Cost([]byte(h)); err == nil {
		return h
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return h
	}
	if _, err := bcrypt.Cost(b); err != nil {
		return h
	}
	return string(b)
}
