package e2e

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/connector/ldap"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/slapd"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// TestLDAPSeedScenario is the seed scenario with the directory as the
// identity source, on a real kube-apiserver: users of slapd's org log in
// on the issuer's password page; the platform group (which jane and
// alice reach only through nested groups) is cluster-admin, developers
// are admins of namespace web (cluster-admin bound in web: the aggregated
// edit role stays empty without kube-controller-manager); when alice is taken out of her group in the
// directory, her ID token still works until it expires, and the token
// from the next refresh no longer gets her in; once she is deleted, the
// refresh itself is refused with invalid_grant.
func TestLDAPSeedScenario(t *testing.T) {
	const ttl = 20 * time.Second
	dir := slapd.StartT(t)
	conn, err := ldap.New(ldap.Config{
		Host: dir.TLSHost, RootCA: dir.CAFile, BindDN: slapd.ServiceDN, BindPW: slapd.ServicePassword,
		UserSearch: ldap.UserSearch{
			BaseDN: "ou=People,dc=example,dc=org", Filter: "(objectClass=inetOrgPerson)", Username: ldap.UsernameAttributes{"uid"},
			IDAttr: "uid", EmailAttr: "mail", NameAttr: "cn", PreferredUsernameAttr: "uid",
		},
		GroupSearch: ldap.GroupSearch{
			BaseDN: "ou=Groups,dc=example,dc=org", Filter: "(objectClass=groupOfNames)", NameAttr: "cn",
			UserMatchers: []ldap.UserMatcher{{UserAttr: "DN", GroupAttr: "member", RecursionGroupAttr: "member"}},
		},
	}, "connectors[0].config", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	iss := issuertest.Start(t, issuertest.Options{
		IDTokenTTL: ttl,
		Connectors: []issuer.Connector{{ID: "ldap", Type: "ldap", Name: "OpenLDAP", Impl: conn}},
	})
	cfg, err := cluster.Parse([]byte(`
name: e2e-ldap
issuer:
  clientID: kubernetes
claims:
  username: {claim: preferred_username, prefix: "oidc:"}
  groups: {claim: groups, prefix: "oidc:"}
teams:
  platform: cluster-admin
  developers: {role: cluster-admin, namespace: web}
audit:
  webhook: {disabled: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer.URL, cfg.Issuer.CAData = iss.URL, string(iss.CAPEM)
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeStructured})
	c.AdminKubectl(t, "create", "namespace", "web")
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))

	// login goes through the issuer's password page as a browser does.
	login := func(user, password string) kube.Tokens {
		t.Helper()
		iss.Username, iss.Password = user, password
		start := iss.URL + "/auth?" + url.Values{"client_id": {iss.ClientID}, "redirect_uri": {"http://localhost:8000"},
			"response_type": {"code"}, "scope": {loginScope}, "state": {"e2e-state-0123456789"}}.Encode()
		resp, page, err := iss.LoginPage(iss.Browser(), start)
		if err != nil {
			t.Fatalf("%s's login: %v\n%s", user, err, page)
		}
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("%s's login ended at %d without a code", user, resp.StatusCode)
		}
		b := kube.NewBrowser("http://localhost:8000", iss.CAPEM)
		tok, err := b.Exchange(context.Background(), iss.URL, iss.ClientID, iss.ClientSecret,
			url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"http://localhost:8000"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	refresh := func(rt string) (kube.Tokens, error) {
		b := kube.NewBrowser("http://localhost:8000", iss.CAPEM)
		return b.Exchange(context.Background(), iss.URL, iss.ClientID, iss.ClientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	kubeconfig := func(name, idToken string) string {
		t.Helper()
		kc, err := c.TokenKubeconfig(name+".kubeconfig", idToken)
		if err != nil {
			t.Fatal(err)
		}
		return kc
	}
	getNS := func(kc string) error {
		_, _, err := c.Kubectl(context.Background(), kc, nil, "get", "ns", "-o", "name")
		return err
	}

	jane := kubeconfig("jane", login("jane", "jane-password").IDToken)
	var w whoami
	if err := kube.WaitFor(30*time.Second, func() error { w, err = whoamiAs(c, jane); return err }); err != nil {
		t.Fatalf("kubectl auth whoami as jane: %v", err)
	}
	if w.Status.UserInfo.Username != "oidc:jane" || !contains(w.Status.UserInfo.Groups, "oidc:platform") || !contains(w.Status.UserInfo.Groups, "oidc:infra-team") {
		t.Errorf("jane is %+v; want oidc:jane in oidc:platform (nested) and oidc:infra-team", w.Status.UserInfo)
	}
	if err := getNS(jane); err != nil {
		t.Errorf("jane (platform, cluster-admin) get ns: %v", err)
	}

	john := kubeconfig("john", login("john", "john-password").IDToken)
	if err := getNS(john); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("john (developers) get ns: want Forbidden, got %v", err)
	}
	if _, _, err := c.Kubectl(context.Background(), john, nil, "-n", "web", "get", "pods"); err != nil {
		t.Errorf("john (developers, admin of web) get pods in web: %v", err)
	}

	atok := login("alice", "alice-password")
	loggedInAt := time.Now()
	alice := kubeconfig("alice", atok.IDToken)
	if err := getNS(alice); err != nil {
		t.Fatalf("alice (infra-team, so platform) get ns: %v", err)
	}
	admin, err := dir.Admin(slapd.OrgSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	m := goldap.NewModifyRequest("cn=infra-team,ou=Groups,dc=example,dc=org", nil)
	m.Delete("member", []string{"uid=alice,ou=People,dc=example,dc=org"})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	// Her ID token is a bearer credential until it expires; then the
	// refreshed one carries the directory's groups of now.
	time.Sleep(time.Until(loggedInAt.Add(ttl + 2*time.Second)))
	if err := getNS(alice); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("alice's expired token: want Unauthorized, got %v", err)
	}
	rtok, err := refresh(atok.RefreshToken)
	if err != nil {
		t.Fatalf("alice's refresh: %v", err)
	}
	alice2 := kubeconfig("alice-refreshed", rtok.IDToken)
	if aw, err := whoamiAs(c, alice2); err != nil || aw.Status.UserInfo.Username != "oidc:alice" || contains(aw.Status.UserInfo.Groups, "oidc:platform") {
		t.Errorf("alice after refresh: %+v (%v); want oidc:alice without oidc:platform", aw.Status.UserInfo, err)
	}
	if err := getNS(alice2); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("alice out of the group, refreshed token: want Forbidden, got %v", err)
	}

	if err := admin.Del(goldap.NewDelRequest("uid=alice,ou=People,dc=example,dc=org", nil)); err != nil {
		t.Fatal(err)
	}
	_, err = refresh(rtok.RefreshToken)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh of a deleted user: %v; want 400 invalid_grant", err)
	}
}
