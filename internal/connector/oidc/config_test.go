package oidc

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// dexConfig is a Dex config with every oidc key gatehouse implements.
const dexConfig = `
issuer: https://gatehouse.example.com/dex
storage: {type: memory}
connectors:
- type: oidc
  id: keycloak
  name: Keycloak
  config:
    issuer: https://keycloak.example.com/realms/staff
    clientID: gatehouse
    clientSecret: s3cret
    redirectURI: https://gatehouse.example.com/dex/callback
    scopes: [profile, email, groups]
    getUserInfo: true
    insecureSkipEmailVerified: true
    insecureEnableGroups: true
    allowedGroups: [admins]
    acrValues: [mfa]
    userIDKey: email
    userNameKey: preferred_username
    overrideClaimMapping: true
    claimMapping:
      preferred_username: login
      email: mail
      groups: roles
    promptType: login
    basicAuthUnsupported: true
    rootCAs: [/etc/ssl/keycloak-ca.pem]
    pkceChallenge: S256
    claimModifications:
      filterGroupClaims: {groupsFilter: "^k8s-"}
      modifyGroupNames: {prefix: "kc:", suffix: ""}
      newGroupFromClaims:
      - {claims: [tenant, department], delimiter: ":", clearDelimiter: true, prefix: dept}
`

func TestDecodeDexConfig(t *testing.T) {
	c, err := config.Parse([]byte(dexConfig))
	if err != nil {
		t.Fatal(err)
	}
	var got Config
	if err := c.Connectors[0].DecodeConfig(&got); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Issuer: "https://keycloak.example.com/realms/staff", ClientID: "gatehouse", ClientSecret: "s3cret",
		RedirectURI: "https://gatehouse.example.com/dex/callback", Scopes: []string{"profile", "email", "groups"},
		GetUserInfo: true, InsecureSkipEmailVerified: true, InsecureEnableGroups: true,
		AllowedGroups: []string{"admins"}, AcrValues: []string{"mfa"},
		UserIDKey: "email", UserNameKey: "preferred_username", OverrideClaimMapping: true,
		ClaimMapping: ClaimMapping{PreferredUsername: "login", Email: "mail", Groups: "roles"},
		PromptType:   ptr("login"), BasicAuthUnsupported: ptr(true),
		RootCAs: []string{"/etc/ssl/keycloak-ca.pem"}, PKCEChallenge: "S256",
		ClaimModifications: ClaimModifications{
			FilterGroupClaims:  FilterGroupClaims{GroupsFilter: "^k8s-"},
			ModifyGroupNames:   ModifyGroupNames{Prefix: "kc:"},
			NewGroupFromClaims: []NewGroupFromClaims{{Claims: []string{"tenant", "department"}, Delimiter: ":", ClearDelimiter: true, Prefix: "dept"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
	}

	// A key Dex does not have either is an error naming it.
	bad := strings.Replace(dexConfig, "getUserInfo: true", "getUserinfoo: true", 1)
	c, err = config.Parse([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connectors[0].DecodeConfig(&got); err == nil || !strings.Contains(err.Error(), "connectors[0].config.getUserinfoo") {
		t.Errorf("err = %v, want the unknown key named", err)
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		return Config{Issuer: "https://idp.example.com", ClientID: "id", ClientSecret: "secret", RedirectURI: "https://gatehouse.example.com/dex/callback"}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // each must appear; none means valid
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "no issuer", edit: func(c *Config) { c.Issuer = "" }, wantErr: []string{"issuer: required"}},
		{name: "http issuer", edit: func(c *Config) { c.Issuer = "http://idp.example.com" }, wantErr: []string{"issuer: must be an https URL"}},
		{name: "issuer with a query", edit: func(c *Config) { c.Issuer = "https://idp.example.com/?a=b" }, wantErr: []string{"issuer: must be an https URL"}},
		{name: "no clientID", edit: func(c *Config) { c.ClientID = "" }, wantErr: []string{"clientID: required"}},
		{name: "no redirectURI", edit: func(c *Config) { c.RedirectURI = "" }, wantErr: []string{"redirectURI: required"}},
		{name: "relative redirectURI", edit: func(c *Config) { c.RedirectURI = "/callback" }, wantErr: []string{"redirectURI: must be an absolute"}},
		{name: "bad scope", edit: func(c *Config) { c.Scopes = []string{"email", "a b"} }, wantErr: []string{"scopes[1]"}},
		{name: "bad promptType", edit: func(c *Config) { c.PromptType = ptr("always") }, wantErr: []string{"promptType: \"always\""}},
		{name: "promptType list", edit: func(c *Config) { c.PromptType = ptr("login consent") }},
		{name: "pkceChallenge plain", edit: func(c *Config) { c.PKCEChallenge = "plain" }, wantErr: []string{"pkceChallenge: plain is not supported"}},
		{name: "allowedGroups without groups", edit: func(c *Config) { c.AllowedGroups = []string{"a"} }, wantErr: []string{"allowedGroups: needs insecureEnableGroups"}},
		{name: "hostedDomains", edit: func(c *Config) { c.HostedDomains = []string{"example.com"} }, wantErr: []string{"hostedDomains: not supported"}},
		{name: "insecureSkipVerify", edit: func(c *Config) { c.InsecureSkipVerify = true }, wantErr: []string{"insecureSkipVerify: not supported"}},
		{name: "issuerAlias", edit: func(c *Config) { c.IssuerAlias = "https://login.example.com/tenant/v2.0" }},
		{name: "issuerAlias not https", edit: func(c *Config) { c.IssuerAlias = "http://login.example.com" }, wantErr: []string{"issuerAlias: must be an https URL"}},
		{name: "providerDiscoveryOverrides", edit: func(c *Config) { c.ProviderDiscoveryOverrides = map[string]any{"tokenURL": "https://x"} }, wantErr: []string{"providerDiscoveryOverrides: not supported"}},
		{name: "invalid groupsFilter", edit: func(c *Config) { c.ClaimModifications.FilterGroupClaims.GroupsFilter = "a(" }, wantErr: []string{"claimModifications.filterGroupClaims.groupsFilter: not a valid regular expression"}},
		{name: "newGroupFromClaims without claims", edit: func(c *Config) { c.ClaimModifications.NewGroupFromClaims = []NewGroupFromClaims{{Prefix: "x"}} }, wantErr: []string{"claimModifications.newGroupFromClaims[0].claims: required"}},
		{name: "unsupported keys at their zero values are accepted", edit: func(c *Config) {
			c.InsecureSkipVerify = false
			c.HostedDomains = []string{}
			c.ProviderDiscoveryOverrides = map[string]any{}
		}},
		{name: "every problem at once", edit: func(c *Config) { c.Issuer, c.ClientID, c.InsecureSkipVerify = "", "", true }, wantErr: []string{"issuer:", "clientID:", "insecureSkipVerify:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			_, err := c.validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("New refuses before any network call", func(t *testing.T) {
		c := valid()
		c.InsecureSkipVerify = true
		if _, err := New(context.Background(), c, nil); err == nil || !strings.Contains(err.Error(), "insecureSkipVerify") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDefaults(t *testing.T) {
	c := Config{Issuer: "https://idp.example.com", ClientID: "id", RedirectURI: "https://gh.example.com/callback"}
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.scopes, []string{"profile", "email"}) || s.userIDKey != "sub" || s.userNameKey != "name" || s.prompt != "consent" {
		t.Errorf("defaults: scopes %v userIDKey %q userNameKey %q prompt %q", s.scopes, s.userIDKey, s.userNameKey, s.prompt)
	}
	if !knownNoBasicAuth("https://dev-1.okta.com") || knownNoBasicAuth("https://notokta.com") {
		t.Error("okta detection")
	}
}

// TestMapClaims covers claim shapes the upstream gatehouse never sends,
// each as Dex maps it.
func TestMapClaims(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"sub": "s1", "name": "N", "email": "e@x", "email_verified": true}
	}
	tests := []struct {
		name       string
		cfg        func(*Config)
		claims     func(map[string]any)
		want       connector.Identity
		wantErr    string
		wantReason string
	}{
		{
			name:   "groups as a single string",
			cfg:    func(c *Config) { c.InsecureEnableGroups = true },
			claims: func(m map[string]any) { m["groups"] = "solo" },
			want:   connector.Identity{UserID: "s1", Username: "N", Email: "e@x", EmailVerified: true, Groups: []string{"solo"}},
		},
		{
			name:   "groups as objects with a name",
			cfg:    func(c *Config) { c.InsecureEnableGroups = true },
			claims: func(m map[string]any) { m["groups"] = []any{map[string]any{"name": "a", "id": 1}, "b"} },
			want:   connector.Identity{UserID: "s1", Username: "N", Email: "e@x", EmailVerified: true, Groups: []string{"a", "b"}},
		},
		{
			name:    "malformed groups",
			cfg:     func(c *Config) { c.InsecureEnableGroups = true },
			claims:  func(m map[string]any) { m["groups"] = []any{"a", 42.0} },
			wantErr: `malformed "groups"`,
		},
		{
			name:   "email_verified missing with insecureSkipEmailVerified: true",
			cfg:    func(c *Config) { c.InsecureSkipEmailVerified = true },
			claims: func(m map[string]any) { delete(m, "email_verified") },
			want:   connector.Identity{UserID: "s1", Username: "N", Email: "e@x", EmailVerified: true},
		},
		{
			name:    "email_verified missing",
			claims:  func(m map[string]any) { delete(m, "email_verified") },
			wantErr: "insecureSkipEmailVerified",
		},
		{
			name:    "email missing with the email scope",
			claims:  func(m map[string]any) { delete(m, "email") },
			wantErr: `no string "email"`,
		},
		{
			name:    "claimMapping.email names the missing claim",
			cfg:     func(c *Config) { c.ClaimMapping.Email = "mail" },
			claims:  func(m map[string]any) { delete(m, "email") },
			wantErr: `no string "mail"`,
		},
		{
			name:    "no sub",
			claims:  func(m map[string]any) { delete(m, "sub") },
			wantErr: `no "sub"`,
		},
		{
			name:       "email_verified false",
			claims:     func(m map[string]any) { m["email_verified"] = false },
			wantReason: "email_not_verified",
		},
		{
			name: "claimModifications in Dex's order: filter, allowedGroups, prefix/suffix, new groups",
			cfg: func(c *Config) {
				c.InsecureEnableGroups = true
				c.AllowedGroups = []string{"k8s-admins", "k8s-dev"}
				c.ClaimModifications = ClaimModifications{
					FilterGroupClaims: FilterGroupClaims{GroupsFilter: "^k8s-"},
					ModifyGroupNames:  ModifyGroupNames{Prefix: "kc:", Suffix: "!"},
					NewGroupFromClaims: []NewGroupFromClaims{
						{Claims: []string{"tenant", "nope", "department"}, Delimiter: ":", ClearDelimiter: true, Prefix: "dept"},
						{Claims: []string{"nope"}, Delimiter: ":", Prefix: "none"},
					},
				}
			},
			claims: func(m map[string]any) {
				m["groups"] = []any{"k8s-admins", "mail-users", map[string]any{"name": "k8s-dev"}, "k8s-other"}
				m["tenant"], m["department"] = "acme", "ops:eu"
			},
			want: connector.Identity{UserID: "s1", Username: "N", Email: "e@x", EmailVerified: true,
				Groups: []string{"kc:k8s-admins!", "kc:k8s-dev!", "dept:acme:opseu"}},
		},
		{
			name: "groupsFilter leaving none of allowedGroups",
			cfg: func(c *Config) {
				c.InsecureEnableGroups = true
				c.AllowedGroups = []string{"mail-users"}
				c.ClaimModifications.FilterGroupClaims.GroupsFilter = "^k8s-"
			},
			claims:     func(m map[string]any) { m["groups"] = []any{"k8s-admins", "mail-users"} },
			wantReason: "not_in_allowed_groups",
		},
		{
			name: "newGroupFromClaims without insecureEnableGroups, as Dex",
			cfg: func(c *Config) {
				c.ClaimModifications.NewGroupFromClaims = []NewGroupFromClaims{{Claims: []string{"tenant"}, Delimiter: "/", Prefix: "t"}}
			},
			claims: func(m map[string]any) { m["groups"] = []any{"ignored"}; m["tenant"] = "acme" },
			want:   connector.Identity{UserID: "s1", Username: "N", Email: "e@x", EmailVerified: true, Groups: []string{"t/acme"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Issuer: "https://idp.example.com", ClientID: "id", RedirectURI: "https://g.example.com/callback"}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			s, err := cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			claims := base()
			tt.claims(claims)
			got, err := s.mapClaims(claims)
			switch {
			case tt.wantReason != "":
				if ue, ok := connector.AsUserError(err); !ok || ue.Reason != tt.wantReason {
					t.Errorf("err = %v, want reason %q", err, tt.wantReason)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !reflect.DeepEqual(got, tt.want):
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
