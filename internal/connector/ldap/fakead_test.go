package ldap

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"
)

// fakeAD is a small LDAP server (plain LDAP; simple bind and search)
// that evaluates Active Directory's LDAP_MATCHING_RULE_IN_CHAIN, which
// slapd cannot: (member:1.2.840.113556.1.4.1941:=DN) holds for a group
// that has DN as a member directly or through nested groups. It
// evaluates and/or/not, equality, presence and that extensible match;
// anything else matches nothing. It records every search filter.
type fakeAD struct {
	addr      string
	entries   map[string]map[string][]string // lower DN -> lower attr -> values
	dns       map[string]string              // lower DN -> DN as written
	passwords map[string]string              // lower DN -> password

	mu      sync.Mutex
	filters []string
	binds   []string // DNs bound as
}

func startFakeAD(t *testing.T) *fakeAD {
	t.Helper()
	f := &fakeAD{entries: map[string]map[string][]string{}, dns: map[string]string{}, passwords: map[string]string{}}
	f.addr, _ = serveTCP(t, func(c net.Conn, _ func(net.Conn)) { f.serve(c) })
	return f
}

func (f *fakeAD) add(dn, password string, attrs map[string][]string) {
	m := map[string][]string{}
	for k, v := range attrs {
		m[strings.ToLower(k)] = v
	}
	f.entries[strings.ToLower(dn)] = m
	f.dns[strings.ToLower(dn)] = dn
	if password != "" {
		f.passwords[strings.ToLower(dn)] = password
	}
}

func (f *fakeAD) bindDNs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.binds)
}

func (f *fakeAD) searches() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.filters)
}

func (f *fakeAD) serve(c net.Conn) {
	defer c.Close()
	for {
		p, err := ber.ReadPacket(c)
		if err != nil || len(p.Children) < 2 {
			return
		}
		id := p.Children[0].Value
		op := p.Children[1]
		var out []*ber.Packet
		switch op.Tag {
		case goldap.ApplicationBindRequest:
			dn, pw := op.Children[1].Data.String(), op.Children[2].Data.String()
			f.mu.Lock()
			f.binds = append(f.binds, dn)
			f.mu.Unlock()
			code := goldap.LDAPResultInvalidCredentials
			if want, ok := f.passwords[strings.ToLower(dn)]; ok && pw != "" && pw == want {
				code = goldap.LDAPResultSuccess
			}
			out = append(out, result(goldap.ApplicationBindResponse, code))
		case goldap.ApplicationSearchRequest:
			base := strings.ToLower(op.Children[0].Data.String())
			filter := op.Children[6]
			s, _ := goldap.DecompileFilter(filter)
			f.mu.Lock()
			f.filters = append(f.filters, s)
			f.mu.Unlock()
			var attrs []string
			for _, a := range op.Children[7].Children {
				attrs = append(attrs, strings.ToLower(a.Data.String()))
			}
			for ldn, e := range f.entries {
				if !strings.HasSuffix(ldn, ","+base) || !f.match(filter, ldn, e) {
					continue
				}
				entry := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationSearchResultEntry, nil, "entry")
				entry.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, f.dns[ldn], "dn"))
				list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
				for _, a := range attrs {
					vals, ok := e[a]
					if !ok {
						continue
					}
					pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
					pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "type"))
					set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "values")
					for _, v := range vals {
						set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
					}
					pa.AppendChild(set)
					list.AppendChild(pa)
				}
				entry.AppendChild(list)
				out = append(out, entry)
			}
			out = append(out, result(goldap.ApplicationSearchResultDone, goldap.LDAPResultSuccess))
		default: // unbind or anything else: hang up
			return
		}
		for _, o := range out {
			msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "message")
			msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "id"))
			msg.AppendChild(o)
			if _, err := c.Write(msg.Bytes()); err != nil {
				return
			}
		}
	}
}

func result(tag ber.Tag, code int) *ber.Packet {
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "result")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "code"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matched"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "message"))
	return r
}

func (f *fakeAD) match(p *ber.Packet, dn string, e map[string][]string) bool {
	switch p.Tag {
	case goldap.FilterAnd:
		for _, c := range p.Children {
			if !f.match(c, dn, e) {
				return false
			}
		}
		return true
	case goldap.FilterOr:
		for _, c := range p.Children {
			if f.match(c, dn, e) {
				return true
			}
		}
		return false
	case goldap.FilterNot:
		return !f.match(p.Children[0], dn, e)
	case goldap.FilterPresent:
		_, ok := e[strings.ToLower(p.Data.String())]
		return ok
	case goldap.FilterEqualityMatch:
		attr, v := strings.ToLower(p.Children[0].Data.String()), p.Children[1].Data.String()
		return slices.ContainsFunc(e[attr], func(x string) bool { return strings.EqualFold(x, v) })
	case goldap.FilterExtensibleMatch:
		var rule, attr, v string
		for _, c := range p.Children {
			switch c.Tag {
			case 1:
				rule = c.Data.String()
			case 2:
				attr = strings.ToLower(c.Data.String())
			case 3:
				v = c.Data.String()
			}
		}
		return rule == matchingRuleInChain && f.inChain(dn, attr, strings.ToLower(v), map[string]bool{})
	}
	return false
}

// inChain: does group dn hold target through attr, directly or through
// groups it holds?
func (f *fakeAD) inChain(dn, attr, target string, seen map[string]bool) bool {
	if seen[dn] {
		return false
	}
	seen[dn] = true
	for _, m := range f.entries[dn][attr] {
		m = strings.ToLower(m)
		if m == target || f.inChain(m, attr, target, seen) {
			return true
		}
	}
	return false
}

// TestMatchingRuleInChain: with groupSearch.matchingRuleInChain, one
// group search (AD's in-chain rule) returns direct and nested groups,
// cycles included, and the user's DN is escaped once in that filter.
func TestMatchingRuleInChain(t *testing.T) {
	ad := startFakeAD(t)
	const users = "cn=Users,dc=example,dc=com"
	svc := "cn=svc," + users
	jane := `cn=Doe\, Jane (ops)*,` + users
	ad.add(svc, "svc-password", map[string][]string{"objectClass": {"user"}})
	ad.add(jane, "jane-password", map[string][]string{
		"objectClass": {"top", "person", "user"}, "sAMAccountName": {"jdoe"}, "userPrincipalName": {"jdoe@example.com"},
		"objectGUID": {"\x9e\x1a\x2c\x4b\x7d\x3e\x11\x4f\xa2\xb3\xc4\xd5\xe6\xf7\xff\x08"}, "mail": {"jane@example.com"}, "displayName": {"Jane Doe"},
	})
	group := func(cn string, members ...string) {
		ad.add("cn="+cn+","+users, "", map[string][]string{"objectClass": {"group"}, "cn": {cn}, "member": members})
	}
	group("Kube Admins", jane)
	group("Platform", "cn=Kube Admins,"+users, "cn=All,"+users)
	group("All", "cn=Platform,"+users) // a cycle with Platform
	group("Other", svc)

	cfg := Config{
		Host: ad.addr, InsecureNoSSL: true, BindDN: svc, BindPW: "svc-password",
		UserSearch: UserSearch{BaseDN: users, Filter: "(objectClass=person)", Username: UsernameAttributes{"sAMAccountName", "userPrincipalName"},
			IDAttr: "objectGUID", EmailAttr: "mail", NameAttr: "displayName"},
		GroupSearch: GroupSearch{BaseDN: users, Filter: "(objectClass=group)", NameAttr: "cn",
			UserMatchers: []UserMatcher{{UserAttr: "DN", GroupAttr: "member"}}, MatchingRuleInChain: true},
	}
	for _, tt := range []struct {
		name     string
		inChain  bool
		groups   []string
		searches int
	}{
		{"in chain", true, []string{"All", "Kube Admins", "Platform"}, 2},
		{"direct only", false, []string{"Kube Admins"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg.GroupSearch.MatchingRuleInChain = tt.inChain
			c := open(t, cfg)
			before := len(ad.searches())
			id, ok, err := c.Login(context.Background(), allScopes, "jdoe@example.com", "jane-password")
			if err != nil || !ok {
				t.Fatalf("Login = %v, %v", ok, err)
			}
			if id.UserID != "4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08" || !slices.Equal(sorted(id.Groups), tt.groups) {
				t.Errorf("identity %+v, want groups %q", id, tt.groups)
			}
			got := ad.searches()[before:]
			if len(got) != tt.searches {
				t.Fatalf("searches %q, want %d", got, tt.searches)
			}
			want := "(&(objectClass=group)(member=" + goldap.EscapeFilter(jane) + "))"
			if tt.inChain {
				want = "(&(objectClass=group)(member:" + matchingRuleInChain + ":=" + goldap.EscapeFilter(jane) + "))"
			}
			if got[1] != want {
				t.Errorf("group filter %q, want %q", got[1], want)
			}
		})
	}
}

// TestUnknownNameStillBinds: a login for a name the directory does not
// have binds all the same (to a DN under userSearch.baseDN that names no
// entry, with the typed password), so that it takes the round trips a
// wrong password takes and its timing does not tell that the name is
// unknown. A name that matches two entries is treated the same way.
func TestUnknownNameStillBinds(t *testing.T) {
	ad := startFakeAD(t)
	const users = "cn=Users,dc=example,dc=com"
	svc := "cn=svc," + users
	ad.add(svc, "svc-password", map[string][]string{"objectClass": {"user"}})
	for _, n := range []string{"one", "two"} {
		ad.add("cn="+n+","+users, n+"-password", map[string][]string{"objectClass": {"person"}, "sAMAccountName": {n}, "mail": {"same@example.com"}, "uid": {n}})
	}
	c := open(t, Config{
		Host: ad.addr, InsecureNoSSL: true, BindDN: svc, BindPW: "svc-password",
		UserSearch: UserSearch{BaseDN: users, Username: UsernameAttributes{"sAMAccountName", "mail"}, IDAttr: "uid", EmailAttr: "mail"},
	})
	for _, tt := range []struct{ name, login, password string }{
		{"unknown", "nobody", "some-password"},
		{"ambiguous", "same@example.com", "one-password"},
		{"wrong password", "one", "wrong"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ad.bindDNs())
			if _, ok, err := c.Login(context.Background(), allScopes, tt.login, tt.password); ok || err != nil {
				t.Fatalf("Login = %v, %v", ok, err)
			}
			binds := ad.bindDNs()[before:]
			var userBinds []string
			for _, dn := range binds {
				if dn != svc {
					userBinds = append(userBinds, dn)
				}
			}
			if len(userBinds) != 1 || !strings.HasSuffix(userBinds[0], ","+users) {
				t.Errorf("user binds %q, want exactly one, under %s", userBinds, users)
			}
		})
	}
}
