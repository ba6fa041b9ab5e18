package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Defaults of the gatehouse extension keys.
const (
	// DefaultTimeout bounds each directory call: dial, TLS handshake,
	// bind, search.
	DefaultTimeout = 10 * time.Second
	// DefaultPoolSize is how many connections of each kind (service
	// searches, user binds) the connector keeps open at most.
	DefaultPoolSize = 4
)

// Config is the connector's `config` block: Dex's ldap connector keys
// with the same meaning, plus three gatehouse extensions (timeout,
// poolSize, groupSearch.matchingRuleInChain).
type Config struct {
	// Host is host or host:port. Without a port: 389 with insecureNoSSL
	// or startTLS, else 636 (LDAPS).
	Host string `json:"host"`
	// InsecureNoSSL speaks plain LDAP: passwords cross the network in
	// clear text.
	InsecureNoSSL bool `json:"insecureNoSSL"`
	// InsecureSkipVerify does not check the server's certificate.
	InsecureSkipVerify bool `json:"insecureSkipVerify"`
	// StartTLS connects in plain LDAP and upgrades with StartTLS.
	StartTLS bool `json:"startTLS"`
	// RootCA is a PEM file of CAs to trust for the server.
	RootCA string `json:"rootCA"`
	// RootCAData is the same as base64 of the PEM (as in Dex), or the PEM
	// text itself.
	RootCAData PEMData `json:"rootCAData"`
	// ClientCert and ClientKey are PEM files of a client certificate
	// presented to the server (both or neither).
	ClientCert string `json:"clientCert"`
	ClientKey  string `json:"clientKey"`
	// BindDN and BindPW are the service account that searches users and
	// groups; both empty: anonymous.
	BindDN string `json:"bindDN"`
	BindPW string `json:"bindPW"`
	// UsernamePrompt labels the username field (default "Username").
	UsernamePrompt string `json:"usernamePrompt"`

	UserSearch  UserSearch  `json:"userSearch"`
	GroupSearch GroupSearch `json:"groupSearch"`

	// Timeout (extension) bounds every directory call, as a Go duration
	// ("10s", the default).
	Timeout string `json:"timeout"`
	// PoolSize (extension) is the number of connections of each kind kept
	// open at most (default 4).
	PoolSize int `json:"poolSize"`
}

// UserSearch finds the entry of the name typed at login.
type UserSearch struct {
	BaseDN string `json:"baseDN"`
	// Filter is ANDed with the username match, e.g. (objectClass=person).
	Filter string `json:"filter"`
	// Username is the attribute (or list of attributes, matched with OR)
	// the typed name must equal.
	Username UsernameAttributes `json:"username"`
	// Scope is sub (default) or one.
	Scope string `json:"scope"`
	// IDAttr is the stable user id; "DN" means the entry's DN. Binary
	// values (objectGUID, objectSid) are encoded, see idValue.
	IDAttr                string `json:"idAttr"`
	EmailAttr             string `json:"emailAttr"`
	NameAttr              string `json:"nameAttr"`
	PreferredUsernameAttr string `json:"preferredUsernameAttr"`
	// EmailSuffix makes the email <nameAttr value>@<emailSuffix>, as Dex
	// does, instead of reading emailAttr.
	EmailSuffix string `json:"emailSuffix"`
}

// GroupSearch finds the groups of a user entry.
type GroupSearch struct {
	BaseDN string `json:"baseDN"`
	Filter string `json:"filter"`
	Scope  string `json:"scope"`
	// UserAttr and GroupAttr are Dex's legacy single matcher.
	UserAttr  string `json:"userAttr"`
	GroupAttr string `json:"groupAttr"`
	// RecursionGroupAttr (legacy form) searches parent groups too.
	RecursionGroupAttr string `json:"recursionGroupAttr"`
	// UserMatchers: a group matches when its GroupAttr equals a value of
	// the user's UserAttr ("DN": the user's DN).
	UserMatchers []UserMatcher `json:"userMatchers"`
	// NameAttr is the group's name in the groups claim.
	NameAttr string `json:"nameAttr"`
	// MatchingRuleInChain (extension, Active Directory): match with
	// LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941), so one search
	// returns the groups the user is in directly or through nested groups.
	MatchingRuleInChain bool `json:"matchingRuleInChain"`
}

// UserMatcher is one way a user belongs to a group.
type UserMatcher struct {
	UserAttr  string `json:"userAttr"`
	GroupAttr string `json:"groupAttr"`
	// RecursionGroupAttr: the attribute of a group that lists the groups
	// it is a member of is searched again for each group found (nested
	// groups on any directory), e.g. member.
	RecursionGroupAttr string `json:"recursionGroupAttr"`
}

// UsernameAttributes is one attribute ("uid") or a list (["uid",
// "mail"]), as newer Dex releases take.
type UsernameAttributes []string

// UnmarshalJSON takes a string or a list of strings.
func (u *UsernameAttributes) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*u = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be an attribute name or a list of them, e.g. uid or [uid, mail]")
	}
	*u = nil
	if s != "" {
		*u = UsernameAttributes{s}
	}
	return nil
}

// ConfigSchema is the key's JSON Schema, for the Helm chart's schema
// (config.SchemaProvider).
func (*UsernameAttributes) ConfigSchema() map[string]any {
	return map[string]any{"type": []any{"string", "array", "null"}, "items": map[string]any{"type": "string"}}
}

// PEMData is PEM given inline: base64 of the PEM, as Dex's []byte field
// takes it, or the PEM text itself.
type PEMData []byte

// ConfigSchema is the key's JSON Schema (config.SchemaProvider).
func (*PEMData) ConfigSchema() map[string]any {
	return map[string]any{"type": []any{"string", "null"}}
}

// UnmarshalJSON takes a string of base64 or PEM.
func (p *PEMData) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a string: base64 of PEM certificates (base64 -w0 ca.crt) or the PEM text")
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		*p = PEMData(s)
		return nil
	}
	data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return errors.New("is neither base64 (base64 -w0 ca.crt) nor PEM text")
	}
	*p = data
	return nil
}

// settings is a validated Config.
type settings struct {
	Config
	url         string // ldap://host:port or ldaps://host:port
	hostport    string
	tls         *tls.Config
	userScope   int
	groupScope  int
	matchers    []UserMatcher
	timeout     time.Duration
	poolSize    int
	prompt      string
	userAttrs   []string // attributes to fetch for a user entry
	userFilter  string   // compiled-checked, without the username part
	groupFilter string
}

// attrName is an attribute description: a name (with options) or an OID.
var attrName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// validate checks c and builds the settings. Each error names its key
// under keyPath (connectors[0].config).
func (c Config) validate(keyPath string) (*settings, error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", keyPath, key, fmt.Sprintf(format, args...)))
	}
	s := &settings{Config: c}

	host := strings.TrimSpace(c.Host)
	switch {
	case host == "":
		fail("host", "required: the directory server, e.g. ldap.example.com:636")
	case strings.Contains(host, "://"):
		fail("host", "%q must be host or host:port without a scheme (use insecureNoSSL or startTLS to choose the protocol)", c.Host)
	default:
		name, port, err := net.SplitHostPort(host)
		if err != nil {
			name, port = strings.Trim(host, "[]"), "636"
			if c.InsecureNoSSL || c.StartTLS {
				port = "389"
			}
		} else if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
			fail("host", "%q has no valid port", c.Host)
		}
		s.hostport = net.JoinHostPort(name, port)
		s.tls = &tls.Config{ServerName: name, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // InsecureSkipVerify is the operator's explicit choice (Dex's key)
	}
	// As in Dex, insecureNoSSL wins over startTLS.
	s.StartTLS = c.StartTLS && !c.InsecureNoSSL
	scheme := "ldaps"
	if c.InsecureNoSSL || c.StartTLS {
		scheme = "ldap"
	}
	s.url = scheme + "://" + s.hostport

	if s.tls != nil {
		var pemData []byte
		switch {
		case len(c.RootCAData) > 0: // wins over rootCA, as in Dex
			pemData = c.RootCAData
		case c.RootCA != "":
			b, err := os.ReadFile(c.RootCA)
			if err != nil {
				fail("rootCA", "cannot read the CA file: %v", err)
			}
			pemData = b
		}
		if len(pemData) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemData) {
				key := "rootCA"
				if len(c.RootCAData) > 0 {
					key = "rootCAData"
				}
				fail(key, "holds no PEM certificate")
			}
			s.tls.RootCAs = pool
		}
		switch {
		case c.ClientCert != "" && c.ClientKey != "":
			cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
			if err != nil {
				fail("clientCert", "cannot load the client certificate and key: %v", err)
			}
			s.tls.Certificates = []tls.Certificate{cert}
		case c.ClientCert != "":
			fail("clientKey", "required with clientCert: the PEM file of the client certificate's key")
		case c.ClientKey != "":
			fail("clientCert", "required with clientKey: the PEM file of the client certificate")
		}
	}
	if (c.BindDN == "") != (c.BindPW == "") {
		if c.BindDN == "" {
			fail("bindDN", "required with bindPW: the DN of the service account")
		} else {
			fail("bindPW", "required with bindDN (both empty means an anonymous search)")
		}
	}

	u := c.UserSearch
	if strings.TrimSpace(u.BaseDN) == "" {
		fail("userSearch.baseDN", "required: where users are searched, e.g. ou=People,dc=example,dc=org")
	} else if _, err := ldap.ParseDN(u.BaseDN); err != nil {
		fail("userSearch.baseDN", "%q is not a DN: %v", u.BaseDN, err)
	}
	if len(u.Username) == 0 {
		fail("userSearch.username", "required: the attribute the login name must equal, e.g. uid, mail, sAMAccountName or userPrincipalName (or a list)")
	}
	for i, a := range u.Username {
		checkAttr(fail, fmt.Sprintf("userSearch.username[%d]", i), a, false)
	}
	if u.IDAttr == "" {
		fail("userSearch.idAttr", "required: the attribute that identifies a user for good, e.g. uid, DN or objectGUID")
	}
	checkAttr(fail, "userSearch.idAttr", u.IDAttr, true)
	if u.EmailAttr == "" && u.EmailSuffix == "" {
		fail("userSearch.emailAttr", "required (e.g. mail), unless emailSuffix builds the email")
	}
	checkAttr(fail, "userSearch.emailAttr", u.EmailAttr, true)
	checkAttr(fail, "userSearch.nameAttr", u.NameAttr, true)
	checkAttr(fail, "userSearch.preferredUsernameAttr", u.PreferredUsernameAttr, true)
	if strings.Contains(u.EmailSuffix, "@") {
		fail("userSearch.emailSuffix", "%q must be the domain without @", u.EmailSuffix)
	}
	var ok bool
	if s.userScope, ok = parseScope(u.Scope); !ok {
		fail("userSearch.scope", "%q is not a scope; use sub (default) or one", u.Scope)
	}
	s.userFilter = checkFilter(fail, "userSearch.filter", u.Filter)

	g := c.GroupSearch
	if s.groupScope, ok = parseScope(g.Scope); !ok {
		fail("groupSearch.scope", "%q is not a scope; use sub (default) or one", g.Scope)
	}
	s.groupFilter = checkFilter(fail, "groupSearch.filter", g.Filter)
	// Dex's rule: userMatchers win when the first has a userAttr; else
	// the legacy userAttr/groupAttr pair is the one matcher.
	if len(g.UserMatchers) > 0 && g.UserMatchers[0].UserAttr != "" {
		s.matchers = g.UserMatchers
		if g.UserAttr != "" || g.GroupAttr != "" {
			fail("groupSearch.userAttr", "set either userMatchers or the legacy userAttr/groupAttr, not both")
		}
	} else if g.UserAttr != "" || g.GroupAttr != "" || g.RecursionGroupAttr != "" {
		s.matchers = []UserMatcher{{UserAttr: g.UserAttr, GroupAttr: g.GroupAttr, RecursionGroupAttr: g.RecursionGroupAttr}}
	}
	if g.BaseDN != "" {
		if _, err := ldap.ParseDN(g.BaseDN); err != nil {
			fail("groupSearch.baseDN", "%q is not a DN: %v", g.BaseDN, err)
		}
		if g.NameAttr == "" {
			fail("groupSearch.nameAttr", "required with groupSearch.baseDN: the group attribute that becomes the group name, e.g. cn")
		}
		if len(s.matchers) == 0 {
			fail("groupSearch.userMatchers", "required with groupSearch.baseDN: how a user belongs to a group, e.g. [{userAttr: DN, groupAttr: member}]")
		}
	}
	checkAttr(fail, "groupSearch.nameAttr", g.NameAttr, true)
	for i, m := range s.matchers {
		p := fmt.Sprintf("groupSearch.userMatchers[%d]", i)
		if len(g.UserMatchers) == 0 {
			p = "groupSearch"
		}
		if m.UserAttr == "" {
			fail(p+".userAttr", "required: the user attribute a group lists, e.g. DN or uid")
		}
		if m.GroupAttr == "" {
			fail(p+".groupAttr", "required: the group attribute that lists members, e.g. member or memberUid")
		}
		checkAttr(fail, p+".userAttr", m.UserAttr, true)
		checkAttr(fail, p+".groupAttr", m.GroupAttr, false)
		checkAttr(fail, p+".recursionGroupAttr", m.RecursionGroupAttr, false)
		if g.MatchingRuleInChain && m.RecursionGroupAttr != "" {
			fail(p+".recursionGroupAttr", "not needed with matchingRuleInChain, which finds nested groups in one search; remove one of them")
		}
	}

	s.timeout = DefaultTimeout
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		switch {
		case err != nil:
			fail("timeout", "%q is not a duration; use Go syntax such as 10s", c.Timeout)
		case d <= 0:
			fail("timeout", "must be positive, e.g. 10s")
		default:
			s.timeout = d
		}
	}
	s.poolSize = DefaultPoolSize
	switch {
	case c.PoolSize < 0:
		fail("poolSize", "must not be negative (0 means the default, %d)", DefaultPoolSize)
	case c.PoolSize > 0:
		s.poolSize = c.PoolSize
	}
	s.prompt = c.UsernamePrompt
	if s.prompt == "" {
		s.prompt = "Username"
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.userAttrs = s.fetchAttrs()
	return s, nil
}

// fetchAttrs lists what a user search asks for: only what becomes a
// claim or feeds a group search, and userAccountControl (Active
// Directory's disabled flag).
func (s *settings) fetchAttrs() []string {
	var out []string
	add := func(a string) {
		if a == "" || strings.EqualFold(a, "DN") {
			return
		}
		for _, x := range out {
			if strings.EqualFold(x, a) {
				return
			}
		}
		out = append(out, a)
	}
	u := s.UserSearch
	add(u.IDAttr)
	if u.EmailSuffix == "" {
		add(u.EmailAttr)
	}
	add(u.NameAttr)
	add(u.PreferredUsernameAttr)
	for _, m := range s.matchers {
		add(m.UserAttr)
	}
	add(attrUserAccountControl)
	return out
}

func checkAttr(fail func(key, format string, args ...any), key, a string, dnAllowed bool) {
	if a == "" || (dnAllowed && strings.EqualFold(a, "DN")) {
		return
	}
	if !attrName.MatchString(a) {
		fail(key, "%q is not an attribute name", a)
	}
}

func checkFilter(fail func(key, format string, args ...any), key, f string) string {
	f = strings.TrimSpace(f)
	if f == "" {
		return ""
	}
	if !strings.HasPrefix(f, "(") {
		f = "(" + f + ")"
	}
	if _, err := ldap.CompileFilter(f); err != nil {
		fail(key, "%q is not an LDAP filter: %v", f, err)
	}
	return f
}

func parseScope(s string) (int, bool) {
	switch s {
	case "", "sub":
		return ldap.ScopeWholeSubtree, true
	case "one":
		return ldap.ScopeSingleLevel, true
	}
	return 0, false
}
