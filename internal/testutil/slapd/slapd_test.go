package slapd

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestFixtures checks that both fixtures load and that the memberof
// overlay and the AD-shaped schema work as the connector tests expect.
func TestFixtures(t *testing.T) {
	s := Shared(t)
	c, err := s.Admin(OrgSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name, base, filter, attr string
		want                     []string
	}{
		{"memberOf of a user", OrgSuffix, "(uid=jane)", "memberOf", []string{"cn=infra-team,ou=Groups,dc=example,dc=org", "cn=loop-a,ou=Groups,dc=example,dc=org"}},
		{"non-ASCII uid", OrgSuffix, "(uid=zo\\c3\\ab)", "cn", []string{"Zoë Ölmez"}},
		{"special uid", OrgSuffix, "(uid=" + ldap.EscapeFilter(`s*(p)e\c`) + ")", "mail", []string{"special@example.org"}},
		{"AD memberOf", ADSuffix, "(sAMAccountName=jdoe)", "memberOf", []string{"cn=Kube Admins,cn=Users,dc=example,dc=com", "cn=Staff,cn=Users,dc=example,dc=com"}},
		{"AD bitwise rule", ADSuffix, "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(sAMAccountName=dleaving))", "mail", []string{"dan@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac := c
			if tt.base == ADSuffix {
				a, err := s.Admin(ADSuffix)
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				ac = a
			}
			res, err := ac.Search(ldap.NewSearchRequest(tt.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, tt.filter, []string{tt.attr}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != 1 {
				t.Fatalf("%d entries", len(res.Entries))
			}
			got := res.Entries[0].GetEqualFoldAttributeValues(tt.attr)
			if len(got) != len(tt.want) {
				t.Fatalf("%s = %q, want %q", tt.attr, got, tt.want)
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("%s = %q lacks %q", tt.attr, got, w)
				}
			}
		})
	}
}
