// Command ldapdir runs the test directory (internal/testutil/slapd: a real
// slapd with the example org) for bench/ldap-login.sh, with N extra users
// bench0..bench<N-1> (password: -password) in group bench-team. It prints
// one JSON line (host, tls_host, ca_file, service_dn, service_pw) when
// ready and runs until it is interrupted.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testutil/slapd"
)

func main() {
	dir := flag.String("dir", "", "work directory for slapd (required)")
	users := flag.Int("users", 16, "bench users to add")
	password := flag.String("password", "bench-password", "their password")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ldapdir: -dir is required")
		os.Exit(2)
	}
	s, err := slapd.Start(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ldapdir:", err)
		os.Exit(1)
	}
	defer s.Close()
	if err := addUsers(s, *users, *password); err != nil {
		fmt.Fprintln(os.Stderr, "ldapdir:", err)
		s.Close()
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
		"host": s.Host, "tls_host": s.TLSHost, "ca_file": s.CAFile,
		"service_dn": slapd.ServiceDN, "service_pw": slapd.ServicePassword,
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}

func addUsers(s *slapd.Server, n int, password string) error {
	c, err := s.Admin(slapd.OrgSuffix)
	if err != nil {
		return err
	}
	defer c.Close()
	group := ldap.NewAddRequest("cn=bench-team,ou=Groups,dc=example,dc=org", nil)
	group.Attribute("objectClass", []string{"groupOfNames"})
	group.Attribute("cn", []string{"bench-team"})
	var members []string
	for i := range n {
		name := "bench" + strconv.Itoa(i)
		dn := "uid=" + name + ",ou=People,dc=example,dc=org"
		a := ldap.NewAddRequest(dn, nil)
		a.Attribute("objectClass", []string{"inetOrgPerson"})
		a.Attribute("uid", []string{name})
		a.Attribute("cn", []string{"Bench " + strconv.Itoa(i)})
		a.Attribute("sn", []string{"Bench"})
		a.Attribute("mail", []string{name + "@example.org"})
		a.Attribute("userPassword", []string{password})
		if err := c.Add(a); err != nil {
			return fmt.Errorf("add %s: %w", dn, err)
		}
		members = append(members, dn)
	}
	group.Attribute("member", members)
	return c.Add(group)
}
