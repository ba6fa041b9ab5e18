package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

func ptr[T any](v T) *T { return &v }

// TestLogin runs the whole flow, LoginURL → the upstream's pages →
// HandleCallback, and checks the identity field by field against what
// Dex's oidc connector makes of the same claims.
func TestLogin(t *testing.T) {
	u := startUpstream(t)
	sub := subjectOf("u-1001")
	tests := []struct {
		name string
		cfg  func(*Config)
		user func(*connector.Identity)
		// userinfo rewrites the upstream's userinfo answer.
		userinfo func(map[string]any)
		want     connector.Identity
		// wantErr is a substring of the error; wantReason the UserError's.
		wantErr, wantReason string
	}{
		{
			name: "defaults: sub, name, preferred_username, email; no groups",
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true},
		},
		{
			name: "groups requested but insecureEnableGroups off: none",
			cfg:  func(c *Config) { c.Scopes = []string{"profile", "email", "groups"} },
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true},
		},
		{
			name: "insecureEnableGroups",
			cfg:  func(c *Config) { c.Scopes = []string{"profile", "email", "groups"}; c.InsecureEnableGroups = true },
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true, Groups: []string{"infra", "dev"}},
		},
		{
			name: "allowedGroups keeps only the allowed groups",
			cfg: func(c *Config) {
				c.Scopes = []string{"profile", "email", "groups"}
				c.InsecureEnableGroups = true
				c.AllowedGroups = []string{"dev", "ops"}
			},
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true, Groups: []string{"dev"}},
		},
		{
			name: "allowedGroups refuses a user in none of them",
			cfg: func(c *Config) {
				c.Scopes = []string{"profile", "email", "groups"}
				c.InsecureEnableGroups = true
				c.AllowedGroups = []string{"ops"}
			},
			wantReason: "not_in_allowed_groups",
		},
		{
			name: "userIDKey and userNameKey",
			cfg:  func(c *Config) { c.UserIDKey = "email"; c.UserNameKey = "preferred_username" },
			want: connector.Identity{UserID: testLogin, Username: "jane", PreferredUsername: "jane", Email: testLogin, EmailVerified: true},
		},
		{
			name:    "userNameKey naming a claim the provider does not send",
			cfg:     func(c *Config) { c.UserNameKey = "nickname" },
			wantErr: `"nickname" (userNameKey)`,
		},
		{
			name:    "userIDKey naming a claim the provider does not send",
			cfg:     func(c *Config) { c.UserIDKey = "employee_id" },
			wantErr: `"employee_id" (userIDKey)`,
		},
		{
			name: "claimMapping.preferred_username when preferred_username is missing",
			cfg:  func(c *Config) { c.ClaimMapping.PreferredUsername = "email" },
			user: func(id *connector.Identity) { id.PreferredUsername = "" },
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: testLogin, Email: testLogin, EmailVerified: true},
		},
		{
			name: "claimMapping does not replace a claim that is present",
			cfg: func(c *Config) {
				c.ClaimMapping.PreferredUsername = "name"
				c.ClaimMapping.Email = "preferred_username"
			},
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true},
		},
		{
			name: "overrideClaimMapping makes claimMapping win",
			cfg: func(c *Config) {
				c.OverrideClaimMapping = true
				c.ClaimMapping.PreferredUsername = "name"
				c.ClaimMapping.Email = "preferred_username"
			},
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "Jane Doe", Email: "jane", EmailVerified: true},
		},
		{
			name: "claimMapping.groups reads another claim",
			cfg: func(c *Config) {
				c.GetUserInfo, c.InsecureEnableGroups = true, true
				c.ClaimMapping.Groups = "roles"
			},
			userinfo: func(m map[string]any) { m["roles"] = []any{"admin", map[string]any{"name": "auditor"}} },
			want:     connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: true, Groups: []string{"admin", "auditor"}},
		},
		{
			name:     "getUserInfo merges userinfo claims over the ID token's",
			cfg:      func(c *Config) { c.GetUserInfo = true; c.UserNameKey = "nickname" },
			userinfo: func(m map[string]any) { m["nickname"] = "JD"; m["preferred_username"] = "jane.doe" },
			want:     connector.Identity{UserID: sub, Username: "JD", PreferredUsername: "jane.doe", Email: testLogin, EmailVerified: true},
		},
		{
			name:       "getUserInfo refuses userinfo for another subject",
			cfg:        func(c *Config) { c.GetUserInfo = true },
			userinfo:   func(m map[string]any) { m["sub"] = subjectOf("u-666") },
			wantReason: "id_token_invalid",
		},
		{
			name:       "email_verified false is refused",
			user:       func(id *connector.Identity) { id.EmailVerified = false },
			wantReason: "email_not_verified",
		},
		{
			name: "email_verified false is accepted with insecureSkipEmailVerified, and stays false",
			cfg:  func(c *Config) { c.InsecureSkipEmailVerified = true },
			user: func(id *connector.Identity) { id.EmailVerified = false },
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane", Email: testLogin, EmailVerified: false},
		},
		{
			name: "without the email scope no email is required",
			cfg:  func(c *Config) { c.Scopes = []string{"profile"} },
			want: connector.Identity{UserID: sub, Username: "Jane Doe", PreferredUsername: "jane"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := u.dir.users[testLogin]
			t.Cleanup(func() {
				u.dir.set(testLogin, func(id *connector.Identity) { *id = orig })
				u.tamper.set("/userinfo", nil)
			})
			if tt.user != nil {
				u.dir.set(testLogin, tt.user)
			}
			if tt.userinfo != nil {
				u.tamper.set("/userinfo", tt.userinfo)
			}
			cfg := u.config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c := newConnector(t, cfg)
			got, err := u.fullLogin(t, c, connector.Scopes{Groups: true})
			switch {
			case tt.wantReason != "":
				ue, ok := connector.AsUserError(err)
				if !ok || ue.Reason != tt.wantReason {
					t.Fatalf("err = %v, want a UserError with reason %q", err, tt.wantReason)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("HandleCallback: %v", err)
			}
			var sd sessionData
			if err := json.Unmarshal(got.ConnectorData, &sd); err != nil || sd.Subject != sub {
				t.Errorf("ConnectorData = %s (%v), want the upstream subject %q", got.ConnectorData, err, sub)
			}
			got.ConnectorData = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("identity:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestLoginURL checks the authorization request: openid first, the
// configured scopes, offline access when asked, Dex's prompt semantics,
// acr_values, the issuer's state unchanged, a nonce and PKCE S256.
func TestLoginURL(t *testing.T) {
	u := startUpstream(t)
	tests := []struct {
		name       string
		cfg        func(*Config)
		scopes     connector.Scopes
		wantScope  string
		wantParams map[string]string // "" means absent
	}{
		{
			name: "defaults", wantScope: "openid profile email",
			wantParams: map[string]string{"prompt": "", "access_type": "", "acr_values": ""},
		},
		{
			name: "offline access: offline_access, access_type and prompt=consent", scopes: connector.Scopes{OfflineAccess: true},
			wantScope:  "openid profile email offline_access",
			wantParams: map[string]string{"prompt": "consent", "access_type": "offline"},
		},
		{
			name: "promptType login", cfg: func(c *Config) { c.PromptType = ptr("login") }, scopes: connector.Scopes{OfflineAccess: true},
			wantScope: "openid profile email offline_access", wantParams: map[string]string{"prompt": "login"},
		},
		{
			name: "promptType empty sends no prompt", cfg: func(c *Config) { c.PromptType = ptr("") }, scopes: connector.Scopes{OfflineAccess: true},
			wantScope: "openid profile email offline_access", wantParams: map[string]string{"prompt": ""},
		},
		{
			name: "prompt only with offline access, as Dex", cfg: func(c *Config) { c.PromptType = ptr("login") },
			wantScope: "openid profile email", wantParams: map[string]string{"prompt": ""},
		},
		{
			name: "configured scopes, openid and duplicates once", cfg: func(c *Config) { c.Scopes = []string{"openid", "email", "groups", "email", "offline_access"} },
			scopes: connector.Scopes{OfflineAccess: true}, wantScope: "openid email groups offline_access",
		},
		{
			name: "acrValues", cfg: func(c *Config) { c.AcrValues = []string{"mfa", "pwd"} },
			wantScope: "openid profile email", wantParams: map[string]string{"acr_values": "mfa pwd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := u.config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c := newConnector(t, cfg)
			raw, connData, err := c.LoginURL(context.Background(), tt.scopes, testRedirectURI, testState)
			if err != nil {
				t.Fatal(err)
			}
			lu := mustURL(t, raw)
			q := lu.Query()
			if !strings.HasPrefix(raw, u.URL+"/auth?") {
				t.Errorf("login URL %q is not the upstream's authorization endpoint", raw)
			}
			if q.Get("scope") != tt.wantScope {
				t.Errorf("scope = %q, want %q", q.Get("scope"), tt.wantScope)
			}
			for k, v := range tt.wantParams {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			var ld loginData
			if err := json.Unmarshal(connData, &ld); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(ld.Verifier))
			for k, want := range map[string]string{
				"state": testState, "client_id": testClientID, "redirect_uri": testRedirectURI, "response_type": "code",
				"nonce": ld.Nonce, "code_challenge_method": "S256", "code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]),
			} {
				if q.Get(k) != want {
					t.Errorf("%s = %q, want %q", k, q.Get(k), want)
				}
			}
			if len(ld.Nonce) < 40 || len(ld.Verifier) < 43 {
				t.Errorf("nonce %q or verifier %q too short", ld.Nonce, ld.Verifier)
			}
		})
	}

	t.Run("fresh nonce and verifier per login", func(t *testing.T) {
		c := newConnector(t, u.config())
		_, a, _ := c.LoginURL(context.Background(), connector.Scopes{}, testRedirectURI, testState)
		_, b, _ := c.LoginURL(context.Background(), connector.Scopes{}, testRedirectURI, testState)
		var la, lb loginData
		_ = json.Unmarshal(a, &la)
		_ = json.Unmarshal(b, &lb)
		if la.Nonce == lb.Nonce || la.Verifier == lb.Verifier {
			t.Errorf("two logins share a nonce or verifier: %+v %+v", la, lb)
		}
	})
	t.Run("callback URL other than redirectURI", func(t *testing.T) {
		c := newConnector(t, u.config())
		if _, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "https://evil.example/callback", testState); err == nil || !strings.Contains(err.Error(), "redirectURI") {
			t.Errorf("err = %v, want a redirectURI mismatch", err)
		}
	})
	t.Run("no offline_access scope when the provider does not advertise it", func(t *testing.T) {
		c := newConnector(t, u.config())
		c.offlineScope = false // as with Google, whose discovery lacks it
		raw, _, _ := c.LoginURL(context.Background(), connector.Scopes{OfflineAccess: true}, testRedirectURI, testState)
		q := mustURL(t, raw).Query()
		if q.Get("scope") != "openid profile email" || q.Get("access_type") != "offline" {
			t.Errorf("scope %q access_type %q, want no offline_access scope but access_type=offline", q.Get("scope"), q.Get("access_type"))
		}
	})
}

// TestCallbackAttacks: every check on the upstream's reply, attacked.
func TestCallbackAttacks(t *testing.T) {
	u := startUpstream(t)
	other := issuertest.Start(t, issuertest.Options{}) // another issuer, its own keys
	tests := []struct {
		name string
		// token rewrites the upstream's token response.
		token func(t *testing.T) func(map[string]any)
		// connData rewrites the login data handed to HandleCallback.
		connData func(ld *loginData, fresh loginData)
		// wantReason: the UserError reason; "" means a plain error.
		wantReason string
		wantErr    string
	}{
		{
			name:       "nonce of another login",
			connData:   func(ld *loginData, fresh loginData) { ld.Nonce = fresh.Nonce },
			wantReason: "id_token_invalid", wantErr: "nonce",
		},
		{
			name: "ID token without nonce",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, u.Keys, func(c map[string]any) { delete(c, "nonce") })
			},
			wantReason: "id_token_invalid", wantErr: "nonce",
		},
		{
			name:       "PKCE verifier of another login",
			connData:   func(ld *loginData, fresh loginData) { ld.Verifier = fresh.Verifier },
			wantReason: "invalid_grant",
		},
		{
			name: "ID token for another client (audience)",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, u.Keys, func(c map[string]any) { c["aud"] = "kubernetes"; c["azp"] = "kubernetes" })
			},
			wantReason: "id_token_invalid", wantErr: "audience",
		},
		{
			name: "ID token from another issuer, signed by it",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, other.Keys, func(c map[string]any) { c["iss"] = other.URL })
			},
			wantReason: "id_token_invalid",
		},
		{
			name: "ID token naming another issuer, signed by the upstream",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, u.Keys, func(c map[string]any) { c["iss"] = other.URL })
			},
			wantReason: "id_token_invalid", wantErr: "different provider",
		},
		{
			name:       "ID token signed by a key the upstream does not publish",
			token:      func(t *testing.T) func(map[string]any) { return reissue(t, other.Keys, func(map[string]any) {}) },
			wantReason: "id_token_invalid", wantErr: "signature",
		},
		{
			name: "expired ID token",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, u.Keys, func(c map[string]any) {
					c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
					c["exp"] = time.Now().Add(-time.Hour).Unix()
				})
			},
			wantReason: "id_token_invalid", wantErr: "expired",
		},
		{
			name: "at_hash of another access token",
			token: func(t *testing.T) func(map[string]any) {
				return reissue(t, u.Keys, func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" })
			},
			wantReason: "id_token_invalid", wantErr: "at_hash",
		},
		{
			name: "unsigned ID token (alg none)",
			token: func(t *testing.T) func(map[string]any) {
				return func(body map[string]any) {
					claims := claimsOf(t, body["id_token"].(string))
					payload, _ := json.Marshal(claims)
					body["id_token"] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
				}
			},
			wantReason: "id_token_invalid",
		},
		{
			name: "ID token signed with HS256 (algorithm confusion)",
			token: func(t *testing.T) func(map[string]any) {
				return func(body map[string]any) {
					claims := claimsOf(t, body["id_token"].(string))
					payload, _ := json.Marshal(claims)
					signingInput := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
					mac := hmac.New(sha256.New, []byte(testClientSecret))
					mac.Write([]byte(signingInput))
					body["id_token"] = signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
				}
			},
			wantReason: "id_token_invalid",
		},
		{
			name:    "token response without an ID token",
			token:   func(t *testing.T) func(map[string]any) { return func(body map[string]any) { delete(body, "id_token") } },
			wantErr: "no id_token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { u.tamper.set("/token", nil) })
			c := newConnector(t, u.config())
			r, connData := u.login(t, c, connector.Scopes{})
			if tt.connData != nil {
				var ld, fresh loginData
				_, freshData, _ := c.LoginURL(context.Background(), connector.Scopes{}, testRedirectURI, testState)
				_ = json.Unmarshal(connData, &ld)
				_ = json.Unmarshal(freshData, &fresh)
				tt.connData(&ld, fresh)
				connData, _ = json.Marshal(ld)
			}
			if tt.token != nil {
				u.tamper.set("/token", tt.token(t))
			}
			id, err := c.HandleCallback(context.Background(), connector.Scopes{}, connData, r)
			if err == nil {
				t.Fatalf("accepted: %+v", id)
			}
			ue, isUser := connector.AsUserError(err)
			switch {
			case tt.wantReason != "" && (!isUser || ue.Reason != tt.wantReason):
				t.Errorf("err = %v, want a UserError with reason %q", err, tt.wantReason)
			case tt.wantReason == "" && isUser:
				t.Errorf("err = %v, want a plain error", err)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}

	t.Run("the control: the same login untampered succeeds", func(t *testing.T) {
		c := newConnector(t, u.config())
		if _, err := u.fullLogin(t, c, connector.Scopes{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a code is redeemed once", func(t *testing.T) {
		c := newConnector(t, u.config())
		r, connData := u.login(t, c, connector.Scopes{})
		if _, err := c.HandleCallback(context.Background(), connector.Scopes{}, connData, r); err != nil {
			t.Fatal(err)
		}
		_, err := c.HandleCallback(context.Background(), connector.Scopes{}, connData, r)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "invalid_grant" {
			t.Errorf("replayed code: err = %v, want invalid_grant", err)
		}
	})
	t.Run("missing login data", func(t *testing.T) {
		c := newConnector(t, u.config())
		r, _ := u.login(t, c, connector.Scopes{})
		if _, err := c.HandleCallback(context.Background(), connector.Scopes{}, nil, r); err == nil {
			t.Error("accepted a callback without login data")
		}
	})
}

// TestCallbackErrors: the provider's error= replies end the login with a
// UserError whose Description tells the client application why.
func TestCallbackErrors(t *testing.T) {
	u := startUpstream(t)
	c := newConnector(t, u.config())
	tests := []struct {
		query      string
		wantReason string
		wantStatus int
		wantDesc   string
	}{
		{"error=access_denied&error_description=user+cancelled", "access_denied", http.StatusForbidden, "access denied at the identity provider: user cancelled"},
		{"error=access_denied", "access_denied", http.StatusForbidden, "access denied at the identity provider"},
		{"error=login_required", "login_required", http.StatusForbidden, "(login_required)"},
		{"error=temporarily_unavailable", "temporarily_unavailable", http.StatusServiceUnavailable, "temporarily unavailable"},
		{"error=invalid_scope&error_description=bad+scope", "upstream_error", http.StatusBadGateway, "returned error invalid_scope"},
		{"state=x", "no_code", http.StatusBadRequest, "no authorization code"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, testRedirectURI+"?state="+testState+"&"+tt.query, nil)
			_, err := c.HandleCallback(context.Background(), connector.Scopes{}, []byte(`{"nonce":"n","pkce":"v"}`), r)
			if err == nil {
				t.Fatal("accepted")
			}
			ue, ok := connector.AsUserError(err)
			if !ok || ue.Reason != tt.wantReason || ue.Status != tt.wantStatus || ue.Message == "" {
				t.Fatalf("err = %#v, want a UserError %q with status %d", err, tt.wantReason, tt.wantStatus)
			}
			if !strings.Contains(ue.Description, tt.wantDesc) {
				t.Errorf("Description = %q, want it to contain %q", ue.Description, tt.wantDesc)
			}
		})
	}
}

// TestRefresh: the upstream refresh token in ConnectorData is redeemed and
// the claims read again.
func TestRefresh(t *testing.T) {
	cfg := func(u *upstream) Config {
		c := u.config()
		c.Scopes = []string{"profile", "email", "groups"}
		c.InsecureEnableGroups = true
		return c
	}
	offline := connector.Scopes{OfflineAccess: true, Groups: true}

	t.Run("changed groups and name take effect", func(t *testing.T) {
		u := startUpstream(t)
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		u.dir.set(testLogin, func(id *connector.Identity) { id.Groups = []string{"dev"}; id.Username = "Jane Q. Doe" })
		got, err := c.Refresh(context.Background(), offline, id)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if !slices.Equal(got.Groups, []string{"dev"}) || got.Username != "Jane Q. Doe" || got.UserID != id.UserID {
			t.Errorf("refreshed identity %+v, want groups [dev] and the new name", got)
		}
		// The upstream rotates its refresh token: the new one is kept and works.
		if string(got.ConnectorData) == string(id.ConnectorData) {
			t.Error("ConnectorData unchanged: the rotated upstream refresh token was not kept")
		}
		if _, err := c.Refresh(context.Background(), offline, got); err != nil {
			t.Errorf("second refresh: %v", err)
		}
		// The old, rotated-out token is refused by the upstream.
		if _, err := c.Refresh(context.Background(), offline, id); err == nil {
			t.Error("refresh with a rotated-out upstream token succeeded")
		}
	})
	t.Run("user removed upstream", func(t *testing.T) {
		u := startUpstream(t)
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		u.dir.remove(testLogin)
		if got, err := c.Refresh(context.Background(), offline, id); err == nil {
			t.Fatalf("refresh of a removed user succeeded: %+v", got)
		}
	})
	t.Run("user dropped from every allowed group", func(t *testing.T) {
		u := startUpstream(t)
		conf := cfg(u)
		conf.AllowedGroups = []string{"infra"}
		c := newConnector(t, conf)
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		u.dir.set(testLogin, func(id *connector.Identity) { id.Groups = []string{"dev"} })
		_, err = c.Refresh(context.Background(), offline, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "not_in_allowed_groups" {
			t.Errorf("err = %v, want not_in_allowed_groups", err)
		}
	})
	t.Run("refreshed ID token for another subject", func(t *testing.T) {
		u := startUpstream(t)
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		u.tamper.set("/token", reissue(t, u.Keys, func(c map[string]any) { c["sub"] = subjectOf("u-666") }))
		_, err = c.Refresh(context.Background(), offline, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "id_token_invalid" {
			t.Errorf("err = %v, want id_token_invalid", err)
		}
	})
	t.Run("refreshed ID token from another issuer", func(t *testing.T) {
		u := startUpstream(t)
		other := issuertest.Start(t, issuertest.Options{})
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		u.tamper.set("/token", reissue(t, other.Keys, func(c map[string]any) { c["iss"] = other.URL }))
		_, err = c.Refresh(context.Background(), offline, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "id_token_invalid" {
			t.Errorf("err = %v, want id_token_invalid", err)
		}
	})
	t.Run("no ID token on refresh: userinfo with getUserInfo, else an error", func(t *testing.T) {
		u := startUpstream(t)
		for _, getUserInfo := range []bool{false, true} {
			conf := cfg(u)
			conf.GetUserInfo = getUserInfo
			c := newConnector(t, conf)
			id, err := u.fullLogin(t, c, offline)
			if err != nil {
				t.Fatal(err)
			}
			u.dir.set(testLogin, func(id *connector.Identity) { id.Groups = []string{"ops"} })
			u.tamper.set("/token", func(body map[string]any) { delete(body, "id_token") })
			got, err := c.Refresh(context.Background(), offline, id)
			u.tamper.set("/token", nil)
			u.dir.set(testLogin, func(id *connector.Identity) { id.Groups = []string{"infra", "dev"} })
			if !getUserInfo {
				if err == nil || !strings.Contains(err.Error(), "getUserInfo") {
					t.Errorf("without getUserInfo: err = %v, want one naming getUserInfo", err)
				}
				continue
			}
			if err != nil || !slices.Equal(got.Groups, []string{"ops"}) {
				t.Errorf("with getUserInfo: %+v, %v; want groups [ops]", got, err)
			}
		}
	})
	t.Run("no upstream refresh token", func(t *testing.T) {
		u := startUpstream(t)
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, connector.Scopes{Groups: true}) // no offline access
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Refresh(context.Background(), offline, id)
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "no_upstream_refresh_token" {
			t.Errorf("err = %v, want no_upstream_refresh_token", err)
		}
	})
	t.Run("Dex's stored connector data", func(t *testing.T) {
		u := startUpstream(t)
		c := newConnector(t, cfg(u))
		id, err := u.fullLogin(t, c, offline)
		if err != nil {
			t.Fatal(err)
		}
		var sd sessionData
		_ = json.Unmarshal(id.ConnectorData, &sd)
		// Dex stores {"RefreshToken": base64}; no subject.
		dexData, _ := json.Marshal(map[string][]byte{"RefreshToken": sd.RefreshToken})
		id.ConnectorData = dexData
		if _, err := c.Refresh(context.Background(), offline, id); err != nil {
			t.Errorf("refresh from Dex's connector data: %v", err)
		}
	})
}

func TestNewRootCAs(t *testing.T) {
	u := startUpstream(t)
	tests := []struct {
		name    string
		rootCAs []string
		wantErr string
		// unknownCA: the error must be x509's unknown authority.
		unknownCA bool
	}{
		{name: "PEM file", rootCAs: []string{u.CAFile}},
		{name: "PEM content", rootCAs: []string{string(u.CAPEM)}},
		{name: "base64 of PEM", rootCAs: []string{base64.StdEncoding.EncodeToString(u.CAPEM)}},
		{name: "missing", wantErr: "list its PEM file in rootCAs", unknownCA: true},
		{name: "a file that does not exist", rootCAs: []string{"/nonexistent/ca.pem"}, wantErr: "rootCAs[0]: cannot read"},
		{name: "not PEM", rootCAs: []string{u.CAFile, base64.StdEncoding.EncodeToString([]byte("hello"))}, wantErr: "rootCAs[1]: no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := u.config()
			cfg.RootCAs = tt.rootCAs
			c, err := New(context.Background(), cfg, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, err := u.fullLogin(t, c, connector.Scopes{}); err != nil {
					t.Errorf("login: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.unknownCA && !strings.Contains(err.Error(), "unknown authority") {
				t.Errorf("err = %v, want the TLS cause kept", err)
			}
		})
	}
}

func TestNewDiscovery(t *testing.T) {
	u := startUpstream(t)
	tests := []struct {
		name    string
		cfg     func(*Config)
		wantErr string
	}{
		{name: "issuer that is not the provider's", cfg: func(c *Config) { c.Issuer = strings.TrimSuffix(u.URL, "/dex") + "/other" }, wantErr: "discovery at"},
		{name: "discovery naming another issuer", cfg: func(c *Config) { c.Issuer = u.URL + "/" }, wantErr: "did not match the issuer URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := u.config()
			tt.cfg(&cfg)
			_, err := New(context.Background(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("issuerAlias: discovery names another issuer, tokens name the alias", func(t *testing.T) {
		cfg := u.config()
		cfg.Issuer = u.URL + "/" // discovery at the same document, whose issuer differs
		cfg.IssuerAlias = u.URL
		c := newConnector(t, cfg)
		if _, err := u.fullLogin(t, c, connector.Scopes{}); err != nil {
			t.Errorf("login: %v", err)
		}
	})
	t.Run("issuerAlias other than the tokens' issuer", func(t *testing.T) {
		cfg := u.config()
		cfg.IssuerAlias = "https://login.example.com/other"
		c := newConnector(t, cfg)
		_, err := u.fullLogin(t, c, connector.Scopes{})
		if ue, ok := connector.AsUserError(err); !ok || ue.Reason != "id_token_invalid" {
			t.Errorf("err = %v, want id_token_invalid", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := New(ctx, u.config(), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// TestClientAuthentication: basicAuthUnsupported moves the client secret
// from HTTP Basic to the token request's body; the code exchange always
// carries the PKCE verifier.
func TestClientAuthentication(t *testing.T) {
	u := startUpstream(t)
	tests := []struct {
		name      string
		setting   *bool
		wantBasic bool
	}{
		{"unset: Basic", nil, true},
		{"false: Basic", ptr(false), true},
		{"true: in the body", ptr(true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := u.config()
			cfg.BasicAuthUnsupported = tt.setting
			c := newConnector(t, cfg)
			before := len(u.tamper.tokenRequests())
			r, connData := u.login(t, c, connector.Scopes{})
			if _, err := c.HandleCallback(context.Background(), connector.Scopes{}, connData, r); err != nil {
				t.Fatal(err)
			}
			reqs := u.tamper.tokenRequests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d token requests, want 1", len(reqs))
			}
			req := reqs[0]
			user, pass, basic := (&http.Request{Header: req.header}).BasicAuth()
			if basic != tt.wantBasic {
				t.Errorf("Basic authentication: %v, want %v", basic, tt.wantBasic)
			}
			if basic && (user != testClientID || pass != testClientSecret || req.form.Has("client_secret")) {
				t.Errorf("Basic %q:%q, body secret %v", user, pass, req.form.Has("client_secret"))
			}
			if !basic && (req.form.Get("client_id") != testClientID || req.form.Get("client_secret") != testClientSecret) {
				t.Errorf("body: %v, want client_id and client_secret", req.form)
			}
			var ld loginData
			_ = json.Unmarshal(connData, &ld)
			if req.form.Get("code_verifier") != ld.Verifier || req.form.Get("redirect_uri") != testRedirectURI {
				t.Errorf("code_verifier %q redirect_uri %q, want the login's verifier and redirectURI", req.form.Get("code_verifier"), req.form.Get("redirect_uri"))
			}
		})
	}
}
