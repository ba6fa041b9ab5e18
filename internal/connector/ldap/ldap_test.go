package ldap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/slapd"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// orgConfig is the OpenLDAP organisation over LDAPS, users by uid,
// groups by member with nested groups followed (recursionGroupAttr).
func orgConfig(s *slapd.Server) Config {
	return Config{
		Host: s.TLSHost, RootCA: s.CAFile, BindDN: slapd.ServiceDN, BindPW: slapd.ServicePassword,
		UserSearch: UserSearch{
			BaseDN: "ou=People,dc=example,dc=org", Filter: "(objectClass=inetOrgPerson)", Username: UsernameAttributes{"uid"},
			IDAttr: "uid", EmailAttr: "mail", NameAttr: "cn", PreferredUsernameAttr: "uid",
		},
		GroupSearch: GroupSearch{
			BaseDN: "ou=Groups,dc=example,dc=org", Filter: "(objectClass=groupOfNames)", NameAttr: "cn",
			UserMatchers: []UserMatcher{{UserAttr: "DN", GroupAttr: "member", RecursionGroupAttr: "member"}},
		},
	}
}

// adConfig is the Active-Directory-shaped directory: sAMAccountName or
// userPrincipalName logins, objectGUID ids, groups by member.
func adConfig(s *slapd.Server) Config {
	return Config{
		Host: s.TLSHost, RootCA: s.CAFile, BindDN: slapd.ADBindDN, BindPW: slapd.ADBindPassword,
		UserSearch: UserSearch{
			BaseDN: "cn=Users,dc=example,dc=com", Filter: "(objectClass=person)", Username: UsernameAttributes{"sAMAccountName", "userPrincipalName"},
			IDAttr: "objectGUID", EmailAttr: "mail", NameAttr: "displayName", PreferredUsernameAttr: "sAMAccountName",
		},
		GroupSearch: GroupSearch{
			BaseDN: "cn=Users,dc=example,dc=com", Filter: "(objectClass=group)", NameAttr: "cn",
			UserMatchers: []UserMatcher{{UserAttr: "DN", GroupAttr: "member"}},
		},
	}
}

func open(t *testing.T, cfg Config) *Connector {
	t.Helper()
	c, err := New(cfg, "connectors[0].config", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var allScopes = connector.Scopes{Groups: true, OfflineAccess: true}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestLoginClaims logs real users in against slapd and checks every
// claim, across the layouts Dex's keys describe.
func TestLoginClaims(t *testing.T) {
	s := slapd.Shared(t)
	withMail := orgConfig(s)
	withMail.UserSearch.Username = UsernameAttributes{"uid", "mail"}
	memberOf := orgConfig(s)
	memberOf.GroupSearch.UserMatchers = []UserMatcher{{UserAttr: "memberOf", GroupAttr: "entryDN"}}
	legacy := orgConfig(s)
	legacy.GroupSearch.UserMatchers = nil
	legacy.GroupSearch.Filter = "(objectClass=posixGroup)"
	legacy.GroupSearch.UserAttr, legacy.GroupSearch.GroupAttr = "uid", "memberUid"
	direct := orgConfig(s)
	direct.GroupSearch.UserMatchers[0].RecursionGroupAttr = ""
	suffix := orgConfig(s)
	suffix.UserSearch.EmailSuffix, suffix.UserSearch.EmailAttr, suffix.UserSearch.NameAttr = "corp.example", "", "uid"
	dnID := orgConfig(s)
	dnID.UserSearch.IDAttr = "DN"
	adMemberOf := adConfig(s)
	adMemberOf.GroupSearch.UserMatchers = []UserMatcher{{UserAttr: "memberOf", GroupAttr: "entryDN"}}

	tests := []struct {
		name             string
		cfg              Config
		login, password  string
		id, name_, email string
		preferred        string
		groups           []string
	}{
		{"nested groups and a cycle", orgConfig(s), "jane", "jane-password", "jane", "Jane Doe", "jane@example.org", "jane",
			[]string{"all-staff", "infra-team", "loop-a", "loop-b", "platform"}},
		{"direct groups only", direct, "jane", "jane-password", "jane", "Jane Doe", "jane@example.org", "jane", []string{"infra-team", "loop-a"}},
		{"non-ASCII login name and password", orgConfig(s), "zoë", "zoë-pässword", "zoë", "Zoë Ölmez", "zoe@example.org", "zoë", []string{"ops"}},
		{"login name with * ( ) \\", orgConfig(s), `s*(p)e\c`, "special-password", `s*(p)e\c`, "Special Chars", "special@example.org", `s*(p)e\c`, []string{"special-team"}},
		{"several username attributes: by mail", withMail, "john@example.org", "john-password", "john", "John Smith", "john@example.org", "john", []string{"all-staff", "developers"}},
		{"several username attributes: by uid", withMail, "john", "john-password", "john", "John Smith", "john@example.org", "john", []string{"all-staff", "developers"}},
		{"groups through memberOf", memberOf, "jane", "jane-password", "jane", "Jane Doe", "jane@example.org", "jane", []string{"infra-team", "loop-a"}},
		{"legacy userAttr/groupAttr", legacy, "jane", "jane-password", "jane", "Jane Doe", "jane@example.org", "jane", []string{"unix-admins"}},
		{"emailSuffix", suffix, "john", "john-password", "john", "john", "john@corp.example", "john", []string{"all-staff", "developers"}},
		{"idAttr DN", dnID, "john", "john-password", "uid=john,ou=People,dc=example,dc=org", "John Smith", "john@example.org", "john", []string{"all-staff", "developers"}},
		{"AD: sAMAccountName, objectGUID id", adConfig(s), "jdoe", "jdoe-password", "4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08", "Jane Doe", "jane.doe@example.com", "jdoe", []string{"Kube Admins", "Staff"}},
		{"AD: userPrincipalName", adConfig(s), "jdoe@example.com", "jdoe-password", "4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08", "Jane Doe", "jane.doe@example.com", "jdoe", []string{"Kube Admins", "Staff"}},
		{"AD: non-ASCII userPrincipalName", adMemberOf, "zoë@example.com", "zoë-pässword", "d4c3b201-f6e5-1807-89aa-bbccddeeff00", "", "zoe@example.com", "zoë", []string{"Staff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name_ == "" {
				tt.cfg.UserSearch.NameAttr = ""
			}
			c := open(t, tt.cfg)
			id, ok, err := c.Login(context.Background(), allScopes, tt.login, tt.password)
			if err != nil || !ok {
				t.Fatalf("Login = %v, %v", ok, err)
			}
			if id.UserID != tt.id || id.Username != tt.name_ || id.Email != tt.email || id.PreferredUsername != tt.preferred || !id.EmailVerified {
				t.Errorf("identity %+v, want id %q name %q email %q preferred %q", id, tt.id, tt.name_, tt.email, tt.preferred)
			}
			if got := sorted(id.Groups); !slices.Equal(got, tt.groups) {
				t.Errorf("groups %q, want %q", got, tt.groups)
			}
			// Without the groups scope, no group search.
			id, ok, err = c.Login(context.Background(), connector.Scopes{}, tt.login, tt.password)
			if err != nil || !ok || id.Groups != nil {
				t.Errorf("without groups scope: %v %v groups %q", ok, err, id.Groups)
			}
			// The refresh reads the same identity again.
			id, _, _ = c.Login(context.Background(), allScopes, tt.login, tt.password)
			r, err := c.Refresh(context.Background(), allScopes, id)
			if err != nil || r.UserID != tt.id || !slices.Equal(sorted(r.Groups), tt.groups) {
				t.Errorf("Refresh = %+v, %v", r, err)
			}
		})
	}
}

// TestLoginRefused attacks the login: LDAP filter injection in the
// login name, wrong passwords, unknown and ambiguous names, a disabled
// account. Every refusal is the same (false, nil): the caller cannot
// tell an unknown name from a wrong password.
func TestLoginRefused(t *testing.T) {
	s := slapd.Shared(t)
	withMail := orgConfig(s)
	withMail.UserSearch.Username = UsernameAttributes{"uid", "mail"}
	tests := []struct {
		name            string
		cfg             Config
		login, password string
	}{
		{"wrong password", orgConfig(s), "jane", "wrong"},
		{"unknown user", orgConfig(s), "nobody", "jane-password"},
		{"empty password (unauthenticated bind)", orgConfig(s), "jane", ""},
		{"empty login", orgConfig(s), "", "jane-password"},
		{"wildcard alone", orgConfig(s), "*", "jane-password"},
		{"wildcard prefix matching jane", orgConfig(s), "j*", "jane-password"},
		{"wildcard inside", orgConfig(s), "ja*e", "jane-password"},
		{"closing the filter", orgConfig(s), "jane)(uid=*", "jane-password"},
		{"OR injection", orgConfig(s), "*)(|(uid=*", "jane-password"},
		{"objectClass injection", orgConfig(s), "jane)(objectClass=*", "jane-password"},
		{"NUL byte", orgConfig(s), "jane\x00", "jane-password"},
		{"NUL then more", orgConfig(s), "jane\x00x", "jane-password"},
		{"pre-escaped star", orgConfig(s), `\2a`, "jane-password"},
		{"pre-escaped jane", orgConfig(s), `\6aane`, "jane-password"},
		{"backslash at end", orgConfig(s), `jane\`, "jane-password"},
		{"special user's name with a wildcard", orgConfig(s), `s*`, "special-password"},
		{"non-ASCII lookalike", orgConfig(s), "zoe", "zoë-pässword"},
		{"ambiguous: two entries share the mail", withMail, "twins@example.org", "twin1-password"},
		{"service account is not a user", orgConfig(s), "gatehouse", slapd.ServicePassword},
		{"too long", orgConfig(s), strings.Repeat("j", maxUsername+1), "jane-password"},
		{"AD: wrong password", adConfig(s), "jdoe", "wrong"},
		{"AD: wildcard", adConfig(s), "jd*", "jdoe-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := open(t, tt.cfg)
			id, ok, err := c.Login(context.Background(), allScopes, tt.login, tt.password)
			if ok || err != nil || id.UserID != "" {
				t.Errorf("Login(%q) = %+v, %v, %v; want a plain refusal", tt.login, id, ok, err)
			}
		})
	}
}

// TestRefreshFollowsDirectory changes the directory between login and
// refresh: a user taken out of a group loses it (and the nested ones),
// a deleted user and a disabled AD account are refused with a UserError
// (the issuer answers invalid_grant), a renamed login name that now
// names another entry is refused.
func TestRefreshFollowsDirectory(t *testing.T) {
	s := slapd.StartT(t)
	org, ad := open(t, orgConfig(s)), open(t, adConfig(s))
	ctx := context.Background()
	login := func(c *Connector, name, pw string) connector.Identity {
		t.Helper()
		id, ok, err := c.Login(ctx, allScopes, name, pw)
		if err != nil || !ok {
			t.Fatalf("login %s: %v %v", name, ok, err)
		}
		return id
	}
	admin := func(suffix string) *goldap.Conn {
		t.Helper()
		a, err := s.Admin(suffix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	modify := func(a *goldap.Conn, dn string, f func(*goldap.ModifyRequest)) {
		t.Helper()
		m := goldap.NewModifyRequest(dn, nil)
		f(m)
		if err := a.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
	orgAdmin, adAdmin := admin(slapd.OrgSuffix), admin(slapd.ADSuffix)

	t.Run("removed from a group", func(t *testing.T) {
		id := login(org, "alice", "alice-password")
		if got := sorted(id.Groups); !slices.Equal(got, []string{"all-staff", "infra-team", "platform"}) {
			t.Fatalf("alice's groups %q", got)
		}
		modify(orgAdmin, "cn=infra-team,ou=Groups,dc=example,dc=org", func(m *goldap.ModifyRequest) {
			m.Delete("member", []string{"uid=alice,ou=People,dc=example,dc=org"})
		})
		r, err := org.Refresh(ctx, allScopes, id)
		if err != nil || len(r.Groups) != 0 || r.UserID != "alice" {
			t.Errorf("refresh after removal: %+v, %v; want alice with no groups", r, err)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		id := login(org, "bob", "bob-password")
		if err := orgAdmin.Del(goldap.NewDelRequest("uid=bob,ou=People,dc=example,dc=org", nil)); err != nil {
			t.Fatal(err)
		}
		_, err := org.Refresh(ctx, allScopes, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "user_removed" {
			t.Errorf("refresh of a deleted user: %v; want a user_removed UserError", err)
		}
		if _, ok, err := org.Login(ctx, allScopes, "bob", "bob-password"); ok || err != nil {
			t.Errorf("login of a deleted user: %v %v", ok, err)
		}
	})
	t.Run("AD account disabled", func(t *testing.T) {
		id := login(ad, "dleaving", "dleaving-password")
		if id.UserID != "00eeffc0-2211-4433-5566-778899aabbcc" {
			t.Errorf("id %q", id.UserID)
		}
		modify(adAdmin, "cn=Dan Leaving,cn=Users,dc=example,dc=com", func(m *goldap.ModifyRequest) {
			m.Replace("userAccountControl", []string{"514"})
		})
		_, err := ad.Refresh(ctx, allScopes, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "user_disabled" {
			t.Errorf("refresh of a disabled account: %v; want a user_disabled UserError", err)
		}
		if _, ok, err := ad.Login(ctx, allScopes, "dleaving", "dleaving-password"); ok || err != nil {
			t.Errorf("login of a disabled account: %v %v; want a plain refusal", ok, err)
		}
		// The AD way to keep disabled accounts out of the search itself.
		cfg := adConfig(s)
		cfg.UserSearch.Filter = "(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
		filtered := open(t, cfg)
		_, err = filtered.Refresh(ctx, allScopes, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "user_removed" {
			t.Errorf("refresh with a filter excluding disabled accounts: %v", err)
		}
	})
	t.Run("login name moved to another entry", func(t *testing.T) {
		cfg := orgConfig(s)
		cfg.UserSearch.Username = UsernameAttributes{"mail"}
		c := open(t, cfg)
		id := login(c, "john@example.org", "john-password")
		modify(orgAdmin, "uid=john,ou=People,dc=example,dc=org", func(m *goldap.ModifyRequest) {
			m.Replace("mail", []string{"john.smith@example.org"})
		})
		modify(orgAdmin, "uid=jane,ou=People,dc=example,dc=org", func(m *goldap.ModifyRequest) {
			m.Add("mail", []string{"john@example.org"})
		})
		_, err := c.Refresh(ctx, allScopes, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "user_changed" {
			t.Errorf("refresh when the name now names jane: %v", err)
		}
	})
	t.Run("unreadable session data", func(t *testing.T) {
		_, err := org.Refresh(ctx, allScopes, connector.Identity{UserID: "jane", ConnectorData: []byte("{")})
		if _, ok := connector.AsUserError(err); !ok {
			t.Errorf("refresh with broken data: %v", err)
		}
	})
}

// TestRefreshDexSession refreshes a session whose connector data Dex
// v2.45.1 wrote (username and the whole entry), as after a switch.
func TestRefreshDexSession(t *testing.T) {
	s := slapd.Shared(t)
	c := open(t, orgConfig(s))
	dexData := `{"username":"jane","entry":{"DN":"uid=jane,ou=People,dc=example,dc=org","Attributes":[{"Name":"uid","Values":["jane"],"ByteValues":["amFuZQ=="]}]}}`
	r, err := c.Refresh(context.Background(), allScopes, connector.Identity{UserID: "jane", ConnectorData: []byte(dexData)})
	if err != nil || r.UserID != "jane" || !slices.Contains(r.Groups, "platform") {
		t.Fatalf("Refresh = %+v, %v", r, err)
	}
	var back refreshData
	if err := json.Unmarshal(r.ConnectorData, &back); err != nil || back.Username != "jane" || back.Entry.DN != "uid=jane,ou=People,dc=example,dc=org" {
		t.Errorf("connector data %s (%v)", r.ConnectorData, err)
	}
}

// TestTransports logs in over each way Dex's keys choose: LDAPS with a
// CA file or inline CA, StartTLS, plain LDAP, a client certificate, and
// refuses a server whose certificate is not trusted.
func TestTransports(t *testing.T) {
	s := slapd.Shared(t)
	base := orgConfig(s)
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"LDAPS with rootCA", func(*Config) {}, ""},
		{"LDAPS with rootCAData (base64, as Dex)", func(c *Config) {
			c.RootCA, c.RootCAData = "", PEMData(s.CAPEM)
		}, ""},
		{"StartTLS", func(c *Config) { c.Host, c.StartTLS = s.Host, true }, ""},
		{"plain LDAP", func(c *Config) { c.Host, c.InsecureNoSSL, c.RootCA = s.Host, true, "" }, ""},
		{"client certificate", func(c *Config) { c.ClientCert, c.ClientKey = s.ClientCertFile, s.ClientKeyFile }, ""},
		{"insecureSkipVerify", func(c *Config) { c.RootCA, c.InsecureSkipVerify = "", true }, ""},
		{"untrusted certificate", func(c *Config) { c.RootCA = "" }, "certificate"},
		{"StartTLS, untrusted certificate", func(c *Config) { c.Host, c.StartTLS, c.RootCA = s.Host, true, "" }, "certificate"},
		{"wrong service password", func(c *Config) { c.BindPW = "wrong" }, "check bindDN and bindPW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			c := open(t, cfg)
			_, ok, err := c.Login(context.Background(), allScopes, "jane", "jane-password")
			if tt.wantErr == "" {
				if err != nil || !ok {
					t.Fatalf("Login = %v, %v", ok, err)
				}
				return
			}
			ue, isUE := connector.AsUserError(err)
			if ok || !isUE || ue.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Login = %v, %v; want a 503 UserError mentioning %q", ok, err, tt.wantErr)
			}
		})
	}
}

// serveTCP listens on a free loopback port and hands each connection to
// handle; every connection is closed when the test ends, or when dropAll
// is called.
func serveTCP(t *testing.T, handle func(net.Conn, func(net.Conn))) (addr string, dropAll func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	dropAll = func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		open = nil
		mu.Unlock()
	}
	t.Cleanup(func() {
		l.Close()
		dropAll()
		wg.Wait()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() { defer wg.Done(); handle(c, track) }()
		}
	}()
	return l.Addr().String(), dropAll
}

// countingProxy forwards TCP connections to target and counts them.
type countingProxy struct {
	addr     string
	accepted atomic.Int64
	// dropAll closes every proxied connection, as a directory restart or
	// an idle timeout would.
	dropAll func()
}

func startProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	p.addr, p.dropAll = serveTCP(t, func(in net.Conn, track func(net.Conn)) {
		p.accepted.Add(1)
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			return
		}
		track(out)
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		_, _ = io.Copy(in, out)
		in.Close()
	})
	return p
}

// TestConnectionReuse counts TCP connections: many logins and refreshes
// one after another use one service connection (bound once) and one
// connection for user binds, where Dex opens one per search and bind.
func TestConnectionReuse(t *testing.T) {
	s := slapd.Shared(t)
	proxy := startProxy(t, s.Host)
	cfg := orgConfig(s)
	cfg.Host, cfg.StartTLS = proxy.addr, true
	cfg.RootCA = s.CAFile
	c := open(t, cfg)
	c.s.tls.ServerName = "127.0.0.1"
	for i := range 20 {
		id, ok, err := c.Login(context.Background(), allScopes, "jane", "jane-password")
		if err != nil || !ok {
			t.Fatalf("login %d: %v %v", i, ok, err)
		}
		if _, err := c.Refresh(context.Background(), allScopes, id); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	if n := proxy.accepted.Load(); n != 2 {
		t.Errorf("20 logins and refreshes opened %d connections, want 2 (one service, one for binds)", n)
	}
	// The directory drops the idle connections (a restart, an idle
	// timeout): the next logins open new ones and succeed.
	for round := range 3 {
		proxy.dropAll()
		if _, ok, err := c.Login(context.Background(), allScopes, "jane", "jane-password"); err != nil || !ok {
			t.Fatalf("login after the directory dropped its connections (round %d): %v %v", round, ok, err)
		}
	}
	if n := proxy.accepted.Load(); n != 2+3*2 {
		t.Errorf("%d connections after three drops, want %d", n, 2+3*2)
	}
}

// hungDirectory accepts connections and never answers.
func hungDirectory(t *testing.T) string {
	t.Helper()
	addr, _ := serveTCP(t, func(c net.Conn, _ func(net.Conn)) { _, _ = io.Copy(io.Discard, c) })
	return addr
}

// TestHungDirectory: a directory that accepts connections and never
// answers ends each login with a 503 UserError once the timeout passes,
// for LDAPS (TLS handshake), StartTLS, and plain LDAP (the bind), and
// for many logins at once (the pool's wait is bounded too). A connector
// on a healthy directory keeps working meanwhile.
func TestHungDirectory(t *testing.T) {
	s := slapd.Shared(t)
	healthy := open(t, orgConfig(s))
	for _, mode := range []string{"ldaps", "starttls", "plain"} {
		t.Run(mode, func(t *testing.T) {
			cfg := orgConfig(s)
			cfg.Host, cfg.Timeout, cfg.PoolSize = hungDirectory(t), "300ms", 2
			cfg.StartTLS, cfg.InsecureNoSSL = mode == "starttls", mode == "plain"
			c := open(t, cfg)
			const logins = 6
			errs := make(chan error, logins)
			for range logins {
				go func() {
					_, ok, err := c.Login(context.Background(), allScopes, "jane", "jane-password")
					if ok {
						err = errors.New("logged in against a directory that never answers")
					}
					errs <- err
				}()
			}
			// The healthy directory answers while the others wait.
			if _, ok, err := healthy.Login(context.Background(), allScopes, "jane", "jane-password"); err != nil || !ok {
				t.Errorf("healthy connector: %v %v", ok, err)
			}
			watchdog := time.After(60 * time.Second) // a hang detector, not a speed check
			for range logins {
				select {
				case err := <-errs:
					if ue, ok := connector.AsUserError(err); !ok || ue.Status != http.StatusServiceUnavailable {
						t.Errorf("login against a hung directory: %v; want a 503 UserError", err)
					}
				case <-watchdog:
					t.Fatal("logins against a hung directory never returned")
				}
			}
		})
	}
	t.Run("refresh and cancelled request", func(t *testing.T) {
		cfg := orgConfig(s)
		cfg.Host, cfg.Timeout = hungDirectory(t), "1h"
		c := open(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Refresh(ctx, allScopes, connector.Identity{UserID: "jane", ConnectorData: []byte(`{"username":"jane","entry":{"DN":"uid=jane,ou=People,dc=example,dc=org"}}`)})
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		cancel() // the HTTP client went away: the directory call ends too
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("refresh after cancel: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a cancelled refresh kept waiting for the directory")
		}
	})
}

// TestConfigErrors: a config mistake fails at start-up, naming the key.
func TestConfigErrors(t *testing.T) {
	good := Config{
		Host: "ldap.example.com", BindDN: "cn=svc,dc=example,dc=org", BindPW: "pw",
		UserSearch:  UserSearch{BaseDN: "ou=People,dc=example,dc=org", Username: UsernameAttributes{"uid"}, IDAttr: "uid", EmailAttr: "mail"},
		GroupSearch: GroupSearch{BaseDN: "ou=Groups,dc=example,dc=org", NameAttr: "cn", UserMatchers: []UserMatcher{{UserAttr: "DN", GroupAttr: "member"}}},
	}
	if _, err := New(good, "connectors[0].config", nil); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no host", func(c *Config) { c.Host = "" }, "connectors[0].config.host: required"},
		{"scheme in host", func(c *Config) { c.Host = "ldaps://ldap.example.com" }, "connectors[0].config.host: \"ldaps://ldap.example.com\" must be host or host:port"},
		{"bad port", func(c *Config) { c.Host = "ldap.example.com:0" }, "connectors[0].config.host"},
		{"missing CA file", func(c *Config) { c.RootCA = "/nonexistent/ca.pem" }, "connectors[0].config.rootCA: cannot read"},
		{"CA data without certificates", func(c *Config) { c.RootCAData = PEMData("not pem") }, "connectors[0].config.rootCAData: holds no PEM certificate"},
		{"client cert without key", func(c *Config) { c.ClientCert = "/x.crt" }, "connectors[0].config.clientKey: required with clientCert"},
		{"bindDN without bindPW", func(c *Config) { c.BindPW = "" }, "connectors[0].config.bindPW: required with bindDN"},
		{"no baseDN", func(c *Config) { c.UserSearch.BaseDN = "" }, "connectors[0].config.userSearch.baseDN: required"},
		{"bad baseDN", func(c *Config) { c.UserSearch.BaseDN = "ou=People,,x" }, "connectors[0].config.userSearch.baseDN"},
		{"no username", func(c *Config) { c.UserSearch.Username = nil }, "connectors[0].config.userSearch.username: required"},
		{"username attribute with a filter in it", func(c *Config) { c.UserSearch.Username = UsernameAttributes{"uid=*)(x"} }, "connectors[0].config.userSearch.username[0]: \"uid=*)(x\" is not an attribute name"},
		{"no idAttr", func(c *Config) { c.UserSearch.IDAttr = "" }, "connectors[0].config.userSearch.idAttr: required"},
		{"no emailAttr", func(c *Config) { c.UserSearch.EmailAttr = "" }, "connectors[0].config.userSearch.emailAttr: required"},
		{"emailSuffix with @", func(c *Config) { c.UserSearch.EmailSuffix = "@example.org" }, "connectors[0].config.userSearch.emailSuffix"},
		{"bad scope", func(c *Config) { c.UserSearch.Scope = "base" }, "connectors[0].config.userSearch.scope: \"base\" is not a scope"},
		{"bad filter", func(c *Config) { c.UserSearch.Filter = "(objectClass=person" }, "connectors[0].config.userSearch.filter"},
		{"bad group filter", func(c *Config) { c.GroupSearch.Filter = "(&(a=b)" }, "connectors[0].config.groupSearch.filter"},
		{"group search without nameAttr", func(c *Config) { c.GroupSearch.NameAttr = "" }, "connectors[0].config.groupSearch.nameAttr: required"},
		{"group search without matchers", func(c *Config) { c.GroupSearch.UserMatchers = nil }, "connectors[0].config.groupSearch.userMatchers: required"},
		{"matcher without groupAttr", func(c *Config) { c.GroupSearch.UserMatchers[0].GroupAttr = "" }, "connectors[0].config.groupSearch.userMatchers[0].groupAttr: required"},
		{"legacy pair half set", func(c *Config) { c.GroupSearch.UserMatchers, c.GroupSearch.UserAttr = nil, "uid" }, "connectors[0].config.groupSearch.groupAttr: required"},
		{"both matcher forms", func(c *Config) { c.GroupSearch.UserAttr = "uid" }, "connectors[0].config.groupSearch.userAttr: set either"},
		{"in-chain with recursion", func(c *Config) {
			c.GroupSearch.MatchingRuleInChain = true
			c.GroupSearch.UserMatchers[0].RecursionGroupAttr = "member"
		}, "connectors[0].config.groupSearch.userMatchers[0].recursionGroupAttr: not needed with matchingRuleInChain"},
		{"bad timeout", func(c *Config) { c.Timeout = "10" }, "connectors[0].config.timeout: \"10\" is not a duration"},
		{"negative pool", func(c *Config) { c.PoolSize = -1 }, "connectors[0].config.poolSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.GroupSearch.UserMatchers = slices.Clone(good.GroupSearch.UserMatchers)
			tt.edit(&cfg)
			_, err := New(cfg, "connectors[0].config", nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDecodeDexForms reads the value forms Dex's config takes.
func TestDecodeDexForms(t *testing.T) {
	var c Config
	ca := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
	raw := `{"rootCAData":"` + base64.StdEncoding.EncodeToString([]byte(ca)) + `","userSearch":{"username":"uid"}}`
	if err := json.Unmarshal([]byte(raw), &c); err != nil || string(c.RootCAData) != ca || !slices.Equal(c.UserSearch.Username, []string{"uid"}) {
		t.Fatalf("%v %q %q", err, c.RootCAData, c.UserSearch.Username)
	}
	raw = `{"rootCAData":` + strings.ReplaceAll(strings.ReplaceAll(`"`+ca+`"`, "\n", `\n`), "\t", "") + `,"userSearch":{"username":["uid","mail"]}}`
	if err := json.Unmarshal([]byte(raw), &c); err != nil || string(c.RootCAData) != ca || !slices.Equal(c.UserSearch.Username, []string{"uid", "mail"}) {
		t.Fatalf("%v %q %q", err, c.RootCAData, c.UserSearch.Username)
	}
	if err := json.Unmarshal([]byte(`{"userSearch":{"username":3}}`), &c); err == nil {
		t.Error("a number as username was accepted")
	}
	if err := json.Unmarshal([]byte(`{"rootCAData":"%%%"}`), &c); err == nil {
		t.Error("rootCAData that is neither base64 nor PEM was accepted")
	}
}

// TestIDValue encodes binary ids stably and safely.
func TestIDValue(t *testing.T) {
	sid := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0x15, 0xcd, 0x5b, 0x07, 0x72, 0x8e, 0x0b, 0x2e, 0x5e, 0x0c, 0x61, 0x5e, 0xe9, 0x03, 0x00, 0x00}
	guid := []byte{0x9e, 0x1a, 0x2c, 0x4b, 0x7d, 0x3e, 0x11, 0x4f, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7, 0xff, 0x08}
	tests := []struct {
		attr string
		v    []byte
		want string
	}{
		{"objectGUID", guid, "4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08"},
		{"objectguid", guid, "4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08"},
		{"objectSid", sid, "S-1-5-21-123456789-772509298-1583418462-1001"},
		{"uid", []byte("zoë"), "zoë"},
		{"entryUUID", []byte("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"), "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
		{"customBinary", []byte{0xff, 0x00, 0x41}, "b64:_wBB"},
		{"withControl", []byte("a\x00b"), "b64:YQBi"},
		{"objectGUID", []byte("short"), "short"},
	}
	for _, tt := range tests {
		e := &goldap.Entry{DN: "cn=x", Attributes: []*goldap.EntryAttribute{{Name: tt.attr, Values: []string{string(tt.v)}, ByteValues: [][]byte{tt.v}}}}
		if got := idValue(e, tt.attr); got != tt.want {
			t.Errorf("idValue(%s, %x) = %q, want %q", tt.attr, tt.v, got, tt.want)
		}
	}
}

// TestDexExampleConfigs loads Dex v2.45.1's own LDAP examples
// (examples/config-ad-kubelogin.yaml, examples/ldap/config-ldap.yaml,
// copied unchanged into testdata) through gatehouse's config loader, with
// only the server address and the web TLS files pointed at this test's,
// and logs in against slapd's fixtures, whose bind accounts are the
// examples' own.
func TestDexExampleConfigs(t *testing.T) {
	s := slapd.Shared(t)
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "web")
	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := bundle.WriteDir(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, host, login, password string
		id, name, email             string
		groups                      []string
	}{
		{"dex-config-ad-kubelogin.yaml", "localhost:636", "jdoe@example.com", "jdoe-password",
			"cn=Jane Doe,cn=Users,dc=example,dc=com", "Jane Doe", "jdoe@example.com", []string{"Kube Admins", "Staff"}},
		{"dex-config-ldap.yaml", "localhost:389", "jane@example.org", "jane-password",
			"uid=jane,ou=People,dc=example,dc=org", "Jane Doe", "jane@example.org", []string{"infra-team", "loop-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			target := s.Host
			if strings.HasSuffix(tt.host, ":636") {
				target = "localhost:" + strings.Split(s.TLSHost, ":")[1] // the certificate names localhost
			}
			yaml := strings.NewReplacer(tt.host, target, "openid-ca.pem", paths.ServerCert, "openid-key.pem", paths.ServerKey,
				"examples/dex.db", filepath.Join(dir, "dex.db")).Replace(string(data))
			file := filepath.Join(dir, tt.file)
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			k := cfg.Connectors[0]
			if k.Type != config.ConnectorLDAP {
				t.Fatalf("type %q", k.Type)
			}
			var lc Config
			if err := k.DecodeConfig(&lc); err != nil {
				t.Fatalf("DecodeConfig: %v", err)
			}
			c, err := New(lc, k.KeyPath(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Prompt() != "Email Address" {
				t.Errorf("prompt %q", c.Prompt())
			}
			id, ok, err := c.Login(context.Background(), allScopes, tt.login, tt.password)
			if err != nil || !ok {
				t.Fatalf("Login = %v, %v", ok, err)
			}
			if id.UserID != tt.id || id.Username != tt.name || id.Email != tt.email || !slices.Equal(sorted(id.Groups), tt.groups) {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

// TestConcurrentLogins runs logins, refused logins and refreshes of
// several users at once through a pool of two connections each: every
// answer is the right one for its user (no identity crosses over on a
// shared connection).
func TestConcurrentLogins(t *testing.T) {
	s := slapd.Shared(t)
	cfg := orgConfig(s)
	cfg.PoolSize = 2
	c := open(t, cfg)
	users := map[string]string{"jane": "jane-password", "john": "john-password", "zoë": "zoë-pässword", `s*(p)e\c`: "special-password"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for round := range 4 {
		for name, pw := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if round%2 == 1 {
					if _, ok, err := c.Login(context.Background(), allScopes, name, pw+"x"); ok || err != nil {
						errs <- fmt.Errorf("%s with a wrong password: %v %v", name, ok, err)
					}
					return
				}
				id, ok, err := c.Login(context.Background(), allScopes, name, pw)
				if err != nil || !ok || id.UserID != name {
					errs <- fmt.Errorf("%s: %+v %v %v", name, id, ok, err)
					return
				}
				r, err := c.Refresh(context.Background(), allScopes, id)
				if err != nil || r.UserID != name || !slices.Equal(sorted(r.Groups), sorted(id.Groups)) {
					errs <- fmt.Errorf("%s refresh: %+v %v", name, r, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
