package oidc

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the connector's `config` block: Dex's oidc connector keys,
// with Dex's meaning and defaults. Keys of Dex that gatehouse does not
// implement are still listed, so that decoding accepts them, and New
// refuses them by name when they are set: a key is never ignored
// silently.
type Config struct {
	// Issuer is the upstream provider's issuer URL (https). Discovery
	// reads Issuer + "/.well-known/openid-configuration".
	Issuer string `json:"issuer"`
	// ClientID and ClientSecret are the credentials of gatehouse's client
	// at the upstream provider.
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// RedirectURI is the issuer's callback, https://<issuer>/callback,
	// registered at the upstream provider.
	RedirectURI string `json:"redirectURI"`
	// Scopes are requested besides "openid" (always). Default: profile,
	// email. offline_access is added when the client asked for it and the
	// provider advertises it.
	Scopes []string `json:"scopes"`
	// GetUserInfo reads the userinfo endpoint too, for providers whose ID
	// tokens are thin; its claims override the ID token's.
	GetUserInfo bool `json:"getUserInfo"`
	// InsecureSkipEmailVerified accepts an email the provider does not
	// call verified (email_verified false or missing).
	InsecureSkipEmailVerified bool `json:"insecureSkipEmailVerified"`
	// InsecureEnableGroups reads groups from the groups claim. Off by
	// default: the groups then come from an external source one trusts.
	InsecureEnableGroups bool `json:"insecureEnableGroups"`
	// AllowedGroups, with InsecureEnableGroups, admits only members of one
	// of these groups, and keeps only these groups.
	AllowedGroups []string `json:"allowedGroups"`
	// AcrValues are sent as acr_values (the authentication context the
	// provider should apply, e.g. MFA), in order of preference.
	AcrValues []string `json:"acrValues"`
	// UserIDKey is the claim of the user ID (default "sub").
	UserIDKey string `json:"userIDKey"`
	// UserNameKey is the claim of the display name (default "name").
	UserNameKey string `json:"userNameKey"`
	// ClaimMapping names the claims to use when the standard ones are
	// missing (or always, with OverrideClaimMapping).
	ClaimMapping ClaimMapping `json:"claimMapping"`
	// OverrideClaimMapping makes ClaimMapping win over the standard claims.
	OverrideClaimMapping bool `json:"overrideClaimMapping"`
	// PromptType is the prompt parameter sent when the client asks for
	// offline access (default "consent"; "" sends none).
	PromptType *string `json:"promptType"`
	// BasicAuthUnsupported sends the client secret in the token request's
	// body instead of HTTP Basic authentication.
	BasicAuthUnsupported *bool `json:"basicAuthUnsupported"`
	// RootCAs are CAs to trust besides the system's: each a PEM file, PEM
	// content, or base64 of PEM content (as Dex accepts them).
	RootCAs []string `json:"rootCAs"`
	// PKCEChallenge is "" or "S256": gatehouse always uses S256.
	PKCEChallenge string `json:"pkceChallenge"`

	// ClaimModifications filters, renames and adds groups (Dex's
	// claimModifications).
	ClaimModifications ClaimModifications `json:"claimModifications"`

	// IssuerAlias is the issuer that the provider's tokens name, for
	// providers whose discovery document (read at Issuer) names another
	// one (Entra ID's multi-tenant endpoints). The discovery document's
	// issuer is then not checked; the tokens' is, against IssuerAlias.
	IssuerAlias string `json:"issuerAlias"`

	// TokenExchange (gatehouse extension) restricts which upstream tokens
	// the token exchange grant accepts through this connector.
	TokenExchange TokenExchange `json:"tokenExchange"`

	// Dex keys that gatehouse refuses when set (see unsupportedKeys).
	HostedDomains              []string `json:"hostedDomains"`
	InsecureSkipVerify         bool     `json:"insecureSkipVerify"`
	ProviderDiscoveryOverrides any      `json:"providerDiscoveryOverrides"`
}

// TokenExchange is the gatehouse extension `tokenExchange` of an oidc
// connector: what a subject token of the token exchange grant (RFC 8693)
// must be to be accepted. Dex accepts any audience there; gatehouse does
// not (RFC 9700 2.3: a token minted for another audience must not be
// accepted).
type TokenExchange struct {
	// Audiences are the values the subject token's aud must contain one
	// of. Default: clientID. Required when clientID is not set (a
	// connector used for token exchange only, as for CI workload tokens).
	Audiences []string `json:"audiences"`
	// AllowedSubjects, when set, admit only subject tokens whose sub
	// matches one of these patterns; `*` matches any run of characters
	// other than `/` and `:` (repo:exampleorg/*:environment:production).
	// Empty: every subject of the upstream may exchange.
	AllowedSubjects []string `json:"allowedSubjects"`
	// RequiredClaims, when set, admit only subject tokens where each named
	// claim is a string matching its pattern (same `*` as allowedSubjects),
	// e.g. job_workflow_ref: exampleorg/workflows/.github/workflows/deploy.yml@refs/heads/main.
	RequiredClaims map[string]string `json:"requiredClaims"`
}

// ClaimModifications is Dex's claimModifications, applied in Dex's order:
// filterGroupClaims while reading the groups claim (before allowedGroups),
// then modifyGroupNames on every group, then newGroupFromClaims.
type ClaimModifications struct {
	// NewGroupFromClaims adds a group made of other claims' values, even
	// without insecureEnableGroups.
	NewGroupFromClaims []NewGroupFromClaims `json:"newGroupFromClaims"`
	// FilterGroupClaims keeps only the groups that match a regular expression.
	FilterGroupClaims FilterGroupClaims `json:"filterGroupClaims"`
	// ModifyGroupNames adds a prefix and a suffix to every group.
	ModifyGroupNames ModifyGroupNames `json:"modifyGroupNames"`
}

// NewGroupFromClaims makes the group Prefix + Delimiter + value of
// Claims[0] + Delimiter + ... from the claims that are strings.
type NewGroupFromClaims struct {
	Claims    []string `json:"claims"`
	Delimiter string   `json:"delimiter"`
	// ClearDelimiter removes Delimiter from the claims' values first.
	ClearDelimiter bool   `json:"clearDelimiter"`
	Prefix         string `json:"prefix"`
}

// FilterGroupClaims is a regular expression (Go syntax, unanchored) that
// a group must match to be kept.
type FilterGroupClaims struct {
	GroupsFilter string `json:"groupsFilter"`
}

// ModifyGroupNames is added around every group name.
type ModifyGroupNames struct {
	Prefix string `json:"prefix"`
	Suffix string `json:"suffix"`
}

// ClaimMapping is Dex's claimMapping: the claims to read instead of the
// standard ones.
type ClaimMapping struct {
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	Groups            string `json:"groups"`
}

// Defaults, as Dex has them.
const (
	DefaultUserIDKey   = "sub"
	DefaultUserNameKey = "name"
	DefaultPromptType  = "consent"
)

// DefaultScopes are requested (after openid) when scopes is empty.
var DefaultScopes = []string{"profile", "email"}

// unsupportedKeys says, for each Dex key gatehouse does not implement,
// why and what to do instead.
var unsupportedKeys = []struct {
	key    string
	value  func(c *Config) any
	advice string
}{
	{"hostedDomains", func(c *Config) any { return c.HostedDomains },
		"Dex removed it from the oidc connector too; use the groups or email domain of the upstream provider to restrict logins"},
	{"insecureSkipVerify", func(c *Config) any { return c.InsecureSkipVerify },
		"gatehouse always verifies the provider's TLS certificate; list the provider's CA in rootCAs instead"},
	{"providerDiscoveryOverrides", func(c *Config) any { return c.ProviderDiscoveryOverrides },
		"gatehouse uses the endpoints of the provider's discovery document only"},
}

// settings is a validated Config with defaults applied.
type settings struct {
	issuer, issuerAlias, clientID, clientSecret string
	redirectURI                                 string
	scopes                                      []string // without openid
	getUserInfo                                 bool
	skipEmailVerified, enableGroups             bool
	allowedGroups, acrValues                    []string
	userIDKey, userNameKey                      string
	mapping                                     ClaimMapping
	overrideMapping                             bool
	prompt                                      string
	basicAuthUnsupported                        *bool
	rootCAs                                     *x509.CertPool
	groupsFilter                                *regexp.Regexp
	groupPrefix, groupSuffix                    string
	newGroups                                   []NewGroupFromClaims
	// exchangeOnly: no clientID and no redirectURI, so no browser login;
	// the connector serves the token exchange grant only.
	exchangeOnly      bool
	exchangeAudiences []string
	allowedSubjects   []subjectRule
	requiredClaims    []claimRule // sorted by claim
}

func configError(key, format string, args ...any) error {
	return fmt.Errorf("oidc connector: %s: %s", key, fmt.Sprintf(format, args...))
}

func (c *Config) validate() (*settings, error) {
	var errs []error
	for _, u := range unsupportedKeys {
		if !isZero(u.value(c)) {
			errs = append(errs, configError(u.key, "not supported by gatehouse: %s; remove it", u.advice))
		}
	}
	s := &settings{
		issuer: c.Issuer, issuerAlias: c.IssuerAlias, clientID: c.ClientID, clientSecret: c.ClientSecret, redirectURI: c.RedirectURI,
		getUserInfo: c.GetUserInfo, skipEmailVerified: c.InsecureSkipEmailVerified, enableGroups: c.InsecureEnableGroups,
		allowedGroups: c.AllowedGroups, acrValues: c.AcrValues,
		userIDKey: c.UserIDKey, userNameKey: c.UserNameKey, mapping: c.ClaimMapping, overrideMapping: c.OverrideClaimMapping,
		prompt: DefaultPromptType, basicAuthUnsupported: c.BasicAuthUnsupported,
		groupPrefix: c.ClaimModifications.ModifyGroupNames.Prefix, groupSuffix: c.ClaimModifications.ModifyGroupNames.Suffix,
		newGroups: c.ClaimModifications.NewGroupFromClaims,
	}
	if f := c.ClaimModifications.FilterGroupClaims.GroupsFilter; f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			// Dex logs and ignores an invalid filter, which lets every group through.
			errs = append(errs, configError("claimModifications.filterGroupClaims.groupsFilter", "not a valid regular expression: %v", err))
		}
		s.groupsFilter = re
	}
	for i, ng := range c.ClaimModifications.NewGroupFromClaims {
		if len(ng.Claims) == 0 {
			errs = append(errs, configError(fmt.Sprintf("claimModifications.newGroupFromClaims[%d].claims", i), "required: the claims whose values make the group"))
		}
	}
	if u, err := url.Parse(c.Issuer); c.Issuer == "" {
		errs = append(errs, configError("issuer", "required: the provider's issuer URL, e.g. https://accounts.google.com"))
	} else if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, configError("issuer", "must be an https URL without query or fragment, not %q", c.Issuer))
	}
	if u, err := url.Parse(c.IssuerAlias); c.IssuerAlias != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs = append(errs, configError("issuerAlias", "must be an https URL, not %q", c.IssuerAlias))
	}
	s.exchangeOnly = c.ClientID == "" && c.RedirectURI == ""
	if err := s.validateTokenExchange(c.TokenExchange); err != nil {
		errs = append(errs, err)
	}
	if c.ClientID == "" && !s.exchangeOnly {
		errs = append(errs, configError("clientID", "required: the client ID registered at the provider"))
	}
	if u, err := url.Parse(c.RedirectURI); s.exchangeOnly {
		// No browser login: neither is needed.
	} else if c.RedirectURI == "" {
		errs = append(errs, configError("redirectURI", "required: the issuer's callback, https://<issuer>/callback"))
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, configError("redirectURI", "must be an absolute http(s) URL, not %q", c.RedirectURI))
	}
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	for i, sc := range scopes {
		switch {
		case sc == "" || strings.ContainsAny(sc, " \t\r\n\""):
			errs = append(errs, configError(fmt.Sprintf("scopes[%d]", i), "%q is not a scope", sc))
		case sc == "openid" || slices.Contains(s.scopes, sc):
			// openid is always sent first; drop duplicates.
		default:
			s.scopes = append(s.scopes, sc)
		}
	}
	if s.userIDKey == "" {
		s.userIDKey = DefaultUserIDKey
	}
	if s.userNameKey == "" {
		s.userNameKey = DefaultUserNameKey
	}
	if c.PromptType != nil {
		s.prompt = strings.TrimSpace(*c.PromptType)
		for _, p := range strings.Fields(s.prompt) {
			switch p {
			case "none", "login", "consent", "select_account", "create":
			default:
				errs = append(errs, configError("promptType", "%q is not a prompt value (none, login, consent, select_account, create, or \"\" to send none)", p))
			}
		}
	}
	switch c.PKCEChallenge {
	case "", "S256":
	case "plain":
		errs = append(errs, configError("pkceChallenge", "plain is not supported: gatehouse always uses S256; remove the key"))
	default:
		errs = append(errs, configError("pkceChallenge", "%q is not a PKCE method; gatehouse always uses S256", c.PKCEChallenge))
	}
	if len(c.AllowedGroups) > 0 && !c.InsecureEnableGroups {
		errs = append(errs, configError("allowedGroups", "needs insecureEnableGroups: true (groups are read only then)"))
	}
	pool, err := rootCAPool(c.RootCAs)
	if err != nil {
		errs = append(errs, err)
	}
	s.rootCAs = pool
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// isZero reports whether an unsupported key's value is absent or empty
// (false, "", [], {}), so that a config listing the key with its default
// value is accepted.
func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		return rv.Len() == 0
	}
	return rv.IsZero()
}

// rootCAPool is the system pool plus rootCAs. Like Dex v2.45, an entry is
// read as a file path first, then as base64 of PEM, then as PEM itself.
func rootCAPool(rootCAs []string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for i, entry := range rootCAs {
		key := fmt.Sprintf("rootCAs[%d]", i)
		if strings.TrimSpace(entry) == "" {
			return nil, configError(key, "empty")
		}
		data, ferr := os.ReadFile(entry)
		isBase64 := false
		if ferr != nil {
			if b, err := base64.StdEncoding.DecodeString(entry); err == nil {
				data, isBase64 = b, true
			} else {
				data = []byte(entry)
			}
		}
		if !pool.AppendCertsFromPEM(data) {
			if ferr != nil && !isBase64 && !strings.Contains(entry, "-----BEGIN") {
				return nil, configError(key, "cannot read %q (%v), and it is not PEM or base64 of PEM either", entry, ferr)
			}
			return nil, configError(key, "no PEM certificate in it: give a PEM file, PEM content, or base64 of PEM content")
		}
	}
	return pool, nil
}

// newHTTPClient is the client for every request to the provider:
// discovery, keys, token and userinfo.
func newHTTPClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          20,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
}
