// Package ldap is the LDAP and Active Directory password connector, with
// Dex's ldap connector keys and meaning: the login name is looked up with
// a service account (userSearch), the password is checked by binding as
// the entry found, groups come from a second search (groupSearch), and a
// refresh reads the user and groups again, so a deleted or disabled
// account, or one taken out of a group, loses access at the next refresh.
//
// Where Dex v2.45.1 falls short, this connector differs: the login name
// is escaped exactly once (Dex escapes twice, so names with *, (, ), \ or
// a non-ASCII letter never log in); binary ids such as objectGUID are
// encoded (Dex answers 500); every directory call is bounded by a
// timeout; connections are pooled and the service account bind reused
// (Dex opens a connection and binds for every operation).
package ldap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// attrUserAccountControl is Active Directory's account flags attribute;
// flag 0x2 (ACCOUNTDISABLE) marks a disabled account.
const (
	attrUserAccountControl = "userAccountControl"
	uacAccountDisable      = 0x2
)

// maxUsername bounds the login name (Active Directory's
// userPrincipalName, the longest usual one, is at most 1024 characters).
const maxUsername = 1024

// matchingRuleInChain is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN.
const matchingRuleInChain = "1.2.840.113556.1.4.1941"

// Connector logs users in against an LDAP directory.
type Connector struct {
	s       *settings
	log     *slog.Logger
	service *pool // searches, bound as bindDN
	auth    *pool // user binds
	// absent is a DN under userSearch.baseDN that names no entry: a login
	// for an unknown name binds there with the typed password, so that it
	// costs the same round trip as a wrong password for a known name.
	absent string
}

var (
	_ connector.PasswordConnector = (*Connector)(nil)
	_ connector.RefreshConnector  = (*Connector)(nil)
)

// New validates cfg and returns the connector. keyPath is where the
// config sits in the file (connectors[0].config), for error messages. It
// does not connect: a directory that is down at start-up does not stop
// the issuer, and its logins fail until it is back.
func New(cfg Config, keyPath string, log *slog.Logger) (*Connector, error) {
	if keyPath == "" {
		keyPath = "config"
	}
	s, err := cfg.validate(keyPath)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.InsecureNoSSL {
		log.Warn("ldap: insecureNoSSL is set: passwords are sent to the directory in clear text; use LDAPS (port 636) or startTLS", "host", s.hostport)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	return &Connector{
		s: s, log: log,
		service: newPool(s, true), auth: newPool(s, false),
		absent: "cn=gatehouse-absent-" + hex.EncodeToString(nonce[:]) + "," + cfg.UserSearch.BaseDN,
	}, nil
}

// Close closes the connections the connector keeps open.
func (c *Connector) Close() error {
	c.service.close()
	c.auth.close()
	return nil
}

// Prompt labels the username field (usernamePrompt, default "Username").
func (c *Connector) Prompt() string { return c.s.prompt }

// refreshData is kept with the session for Refresh. Its shape is Dex's
// (username, entry.DN), so sessions move between Dex and gatehouse.
type refreshData struct {
	Username string `json:"username"`
	Entry    struct {
		DN string `json:"DN"`
	} `json:"entry"`
}

// Login checks username and password. Wrong password, unknown name, an
// ambiguous name and a disabled account all answer valid=false alike.
func (c *Connector) Login(ctx context.Context, s connector.Scopes, username, password string) (connector.Identity, bool, error) {
	// An empty password would be an unauthenticated bind, which
	// directories accept as a success (RFC 4513 5.1.2).
	if password == "" || username == "" || len(username) > maxUsername {
		return connector.Identity{}, false, nil
	}
	entry, found, err := c.findUser(ctx, username)
	if err != nil {
		return connector.Identity{}, false, c.unavailable(err)
	}
	dn := c.absent
	if found {
		dn = entry.DN
	}
	ok, err := c.bind(ctx, dn, password)
	if err != nil {
		return connector.Identity{}, false, c.unavailable(err)
	}
	if !found || !ok {
		return connector.Identity{}, false, nil
	}
	if disabled(entry) {
		c.log.Info("ldap: login refused: account disabled (userAccountControl)", "dn", entry.DN)
		return connector.Identity{}, false, nil
	}
	ident, err := c.identity(entry)
	if err != nil {
		return connector.Identity{}, false, err
	}
	if s.Groups {
		if ident.Groups, err = c.groups(ctx, entry); err != nil {
			return connector.Identity{}, false, c.unavailable(err)
		}
	}
	var data refreshData
	data.Username, data.Entry.DN = username, entry.DN
	if ident.ConnectorData, err = json.Marshal(data); err != nil {
		return connector.Identity{}, false, err
	}
	return ident, true, nil
}

// Refresh reads the user and groups again. A user who is gone, disabled,
// or whose login name now names another entry is refused: the issuer
// answers invalid_grant and the user must log in again.
func (c *Connector) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	var data refreshData
	if err := json.Unmarshal(id.ConnectorData, &data); err != nil || data.Username == "" {
		return connector.Identity{}, refused("session_unreadable", "This session has no directory data to refresh from; log in again.", err)
	}
	entry, found, err := c.findUser(ctx, data.Username)
	if err != nil {
		return connector.Identity{}, err
	}
	switch {
	case !found:
		return connector.Identity{}, refused("user_removed", "Your account is no longer in the directory (or no longer matches userSearch); log in again.", nil)
	case !strings.EqualFold(entry.DN, data.Entry.DN):
		return connector.Identity{}, refused("user_changed", "Your login name now belongs to another directory entry; log in again.", fmt.Errorf("was %q, now %q", data.Entry.DN, entry.DN))
	case disabled(entry):
		return connector.Identity{}, refused("user_disabled", "Your directory account is disabled.", nil)
	}
	ident, err := c.identity(entry)
	if err != nil {
		return connector.Identity{}, err
	}
	ident.ConnectorData = id.ConnectorData
	if s.Groups {
		if ident.Groups, err = c.groups(ctx, entry); err != nil {
			return connector.Identity{}, err
		}
	}
	return ident, nil
}

func refused(reason, msg string, err error) error {
	return &connector.UserError{
		Status: http.StatusForbidden, Title: "Session ended by the directory", Message: msg,
		Description: "the directory no longer allows this session (" + strings.ReplaceAll(reason, "_", " ") + "); log in again",
		Reason:      reason, Err: err,
	}
}

// unavailable turns a directory failure into a page the user can act on;
// the details go to the log only.
func (c *Connector) unavailable(err error) error {
	c.log.Error("ldap: directory call failed", "host", c.s.hostport, "err", err)
	return &connector.UserError{
		Status: http.StatusServiceUnavailable, Title: "Directory not available",
		Message:     "The login server could not reach the directory. Try again in a minute.",
		Description: "the LDAP directory is not reachable; try again in a minute",
		Reason:      "upstream_unavailable", Err: err,
	}
}

// usernameFilter matches the typed name against every username
// attribute. The name is escaped here, once (RFC 4515): go-ldap turns
// the \XX escapes back into the exact bytes when it encodes the filter.
func (c *Connector) usernameFilter(username string) string {
	v := ldap.EscapeFilter(username)
	var b strings.Builder
	attrs := c.s.UserSearch.Username
	if len(attrs) > 1 {
		b.WriteString("(|")
	}
	for _, a := range attrs {
		b.WriteString("(" + a + "=" + v + ")")
	}
	if len(attrs) > 1 {
		b.WriteString(")")
	}
	if c.s.userFilter == "" {
		return b.String()
	}
	return "(&" + c.s.userFilter + b.String() + ")"
}

// findUser searches the entry of username. More than one entry is not a
// match: which account the password belongs to would be a guess.
func (c *Connector) findUser(ctx context.Context, username string) (*ldap.Entry, bool, error) {
	req := ldap.NewSearchRequest(c.s.UserSearch.BaseDN, c.s.userScope, ldap.NeverDerefAliases,
		2, 0, false, c.usernameFilter(username), c.s.userAttrs, nil)
	var res *ldap.SearchResult
	err := c.service.do(ctx, func(conn *ldap.Conn) error {
		var err error
		res, err = conn.Search(req)
		return err
	})
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		c.log.Warn("ldap: login name matches several entries; refusing it", "filter", req.Filter)
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("ldap: user search in %q: %w", req.BaseDN, err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, false, nil
	case 1:
		return res.Entries[0], true, nil
	default:
		c.log.Warn("ldap: login name matches several entries; refusing it", "filter", req.Filter, "entries", len(res.Entries))
		return nil, false, nil
	}
}

// bind checks a password by binding as dn on an auth connection.
// Refusals that mean "wrong password, locked or disabled account" are
// (false, nil); they are told apart only in the log.
func (c *Connector) bind(ctx context.Context, dn, password string) (bool, error) {
	ok := false
	err := c.auth.do(ctx, func(conn *ldap.Conn) error {
		err := conn.Bind(dn, password)
		if err == nil {
			ok = true
			return nil
		}
		var le *ldap.Error
		if errors.As(err, &le) {
			switch le.ResultCode {
			case ldap.LDAPResultInvalidCredentials, ldap.LDAPResultConstraintViolation,
				ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultInsufficientAccessRights,
				ldap.LDAPResultInvalidDNSyntax, ldap.LDAPResultNoSuchObject:
				if dn != c.absent {
					c.log.Info("ldap: bind refused", "dn", dn, "code", le.ResultCode, "diagnostic", le.Err)
				}
				return nil
			}
		}
		return err
	})
	return ok, err
}

// disabled reports Active Directory's ACCOUNTDISABLE flag.
func disabled(e *ldap.Entry) bool {
	v := e.GetEqualFoldAttributeValue(attrUserAccountControl)
	if v == "" {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n&uacAccountDisable != 0
}

// identity maps the entry to claims as Dex does: idAttr, nameAttr (the
// "name" claim), preferredUsernameAttr, emailAttr or nameAttr@emailSuffix,
// email always verified. A missing attribute is an error that names it.
func (c *Connector) identity(e *ldap.Entry) (connector.Identity, error) {
	u := c.s.UserSearch
	var missing []string
	var id connector.Identity
	if id.UserID = idValue(e, u.IDAttr); id.UserID == "" {
		missing = append(missing, u.IDAttr)
	}
	text := func(attr string) string {
		if attr == "" {
			return ""
		}
		v := textValue(e, attr)
		if v == "" {
			missing = append(missing, attr)
		}
		return v
	}
	id.Username = text(u.NameAttr)
	id.PreferredUsername = text(u.PreferredUsernameAttr)
	if u.EmailSuffix != "" {
		id.Email = id.Username + "@" + u.EmailSuffix
	} else {
		id.Email = text(u.EmailAttr)
	}
	id.EmailVerified = true
	if len(missing) > 0 {
		return connector.Identity{}, &connector.UserError{
			Status: http.StatusForbidden, Title: "Directory entry incomplete",
			Message:     fmt.Sprintf("Your directory entry has no usable %s, which this login needs. Ask your directory administrator.", strings.Join(missing, ", ")),
			Description: "the directory entry has no usable " + strings.Join(missing, ", ") + "; ask the directory administrator",
			Reason:      "entry_incomplete", Err: fmt.Errorf("ldap: entry %q lacks %q", e.DN, missing),
		}
	}
	return id, nil
}

// values returns an attribute's raw values; "DN" (any case) is the
// entry's DN unless the entry has an attribute of that name, as in Dex.
func values(e *ldap.Entry, attr string) [][]byte {
	if v := e.GetEqualFoldRawAttributeValues(attr); len(v) > 0 {
		return v
	}
	if strings.EqualFold(attr, "DN") {
		return [][]byte{[]byte(e.DN)}
	}
	return nil
}

// textValue is the first value as text; a value that is not UTF-8 text
// counts as missing rather than becoming a garbled claim.
func textValue(e *ldap.Entry, attr string) string {
	for _, v := range values(e, attr) {
		if utf8.Valid(v) {
			return string(v)
		}
	}
	return ""
}

// groups runs the group searches for the user entry, following nested
// groups with recursionGroupAttr, and returns the group names in the
// order found, each once.
func (c *Connector) groups(ctx context.Context, user *ldap.Entry) ([]string, error) {
	g := c.s.GroupSearch
	if g.BaseDN == "" {
		return nil, nil
	}
	var names []string
	seenName := map[string]bool{}
	addName := func(e *ldap.Entry) {
		n := textValue(e, g.NameAttr)
		if n == "" {
			c.log.Warn("ldap: group entry has no usable name attribute; skipped", "dn", e.DN, "nameAttr", g.NameAttr)
			return
		}
		if !seenName[n] {
			seenName[n] = true
			names = append(names, n)
		}
	}
	for _, m := range c.s.matchers {
		var level []*ldap.Entry
		for _, v := range values(user, m.UserAttr) {
			found, err := c.searchGroups(ctx, m.GroupAttr, string(v))
			if err != nil {
				return nil, err
			}
			level = append(level, found...)
		}
		if m.RecursionGroupAttr == "" {
			for _, e := range level {
				addName(e)
			}
			continue
		}
		// Breadth-first up the nesting; a group seen before (a cycle, or
		// reached twice) is not searched again.
		seenDN := map[string]bool{}
		for len(level) > 0 {
			var next []*ldap.Entry
			for _, e := range level {
				key := strings.ToLower(e.DN)
				if seenDN[key] {
					continue
				}
				seenDN[key] = true
				addName(e)
				parents, err := c.searchGroups(ctx, m.RecursionGroupAttr, e.DN)
				if err != nil {
					return nil, err
				}
				next = append(next, parents...)
			}
			level = next
		}
	}
	return names, nil
}

// searchGroups finds the groups whose attr equals value (escaped once),
// or, with matchingRuleInChain, that hold value through any nesting.
func (c *Connector) searchGroups(ctx context.Context, attr, value string) ([]*ldap.Entry, error) {
	g := c.s.GroupSearch
	match := "(" + attr + "=" + ldap.EscapeFilter(value) + ")"
	if g.MatchingRuleInChain {
		match = "(" + attr + ":" + matchingRuleInChain + ":=" + ldap.EscapeFilter(value) + ")"
	}
	filter := match
	if c.s.groupFilter != "" {
		filter = "(&" + c.s.groupFilter + match + ")"
	}
	req := ldap.NewSearchRequest(g.BaseDN, c.s.groupScope, ldap.NeverDerefAliases, 0, 0, false, filter, []string{g.NameAttr}, nil)
	var res *ldap.SearchResult
	err := c.service.do(ctx, func(conn *ldap.Conn) error {
		var err error
		res, err = conn.Search(req)
		return err
	})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		c.log.Warn("ldap: groupSearch.baseDN does not exist", "baseDN", g.BaseDN)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldap: group search %s in %q: %w", filter, g.BaseDN, err)
	}
	return res.Entries, nil
}
