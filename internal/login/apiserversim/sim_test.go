package apiserversim

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const iss = "https://gatehouse.example.com"

func claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": iss, "aud": "kubernetes", "sub": "CgVhbGljZRIGZ2l0aHVi", "preferred_username": "alice",
		"email": "alice@example.com", "email_verified": true, "groups": []any{"acme:infra", "acme:dev"}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestFromFlags(t *testing.T) {
	tests := []struct {
		name       string
		flags      Flags
		claims     map[string]any
		wantUser   string
		wantGroups []string
		wantReject string
	}{
		{"defaults: sub with the issuer# prefix", Flags{}, claims(nil), iss + "#CgVhbGljZRIGZ2l0aHVi", nil, ""},
		{"other claim: issuer# prefix", Flags{UsernameClaim: "preferred_username"}, claims(nil), iss + "#alice", nil, ""},
		{"email: no default prefix", Flags{UsernameClaim: "email"}, claims(nil), "alice@example.com", nil, ""},
		{"email not verified", Flags{UsernameClaim: "email"}, claims(map[string]any{"email_verified": false}), "", nil, "email not verified"},
		{"email_verified absent is accepted (as kube-apiserver does)", Flags{UsernameClaim: "email"}, claims(map[string]any{"email_verified": nil}), "alice@example.com", nil, ""},
		{"email_verified as a string is not true", Flags{UsernameClaim: "email"}, claims(map[string]any{"email_verified": "true"}), "", nil, "email not verified"},
		{"explicit prefix", Flags{UsernameClaim: "preferred_username", UsernamePrefix: "oidc:"}, claims(nil), "oidc:alice", nil, ""},
		{"dash: no prefix", Flags{UsernameClaim: "preferred_username", UsernamePrefix: "-"}, claims(nil), "alice", nil, ""},
		{"seed article", Flags{UsernameClaim: "preferred_username", UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:"}, claims(nil),
			"oidc:alice", []string{"oidc:acme:infra", "oidc:acme:dev"}, ""},
		{"groups as a single string", Flags{GroupsClaim: "role", UsernamePrefix: "-"}, claims(map[string]any{"role": "admin"}), "CgVhbGljZRIGZ2l0aHVi", []string{"admin"}, ""},
		{"groups claim absent: no groups", Flags{GroupsClaim: "teams", UsernamePrefix: "-"}, claims(nil), "CgVhbGljZRIGZ2l0aHVi", nil, ""},
		{"username claim absent", Flags{UsernameClaim: "preferred_username"}, claims(map[string]any{"preferred_username": nil}), "", nil, "not present"},
		{"username claim not a string", Flags{UsernameClaim: "groups"}, claims(nil), "", nil, "not a string"},
		{"wrong audience", Flags{ClientID: "other"}, claims(nil), "", nil, "aud"},
		{"wrong issuer", Flags{IssuerURL: "https://elsewhere"}, claims(nil), "", nil, "iss"},
		{"required claim missing", Flags{RequiredClaims: map[string]string{"hd": "example.com"}}, claims(nil), "", nil, "required claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.flags
			if f.IssuerURL == "" {
				f.IssuerURL = iss
			}
			if f.ClientID == "" {
				f.ClientID = "kubernetes"
			}
			r := Evaluate(FromFlags(f), tt.claims)
			if tt.wantReject != "" {
				if !strings.Contains(strings.Join(r.Rejected, "; "), tt.wantReject) {
					t.Fatalf("rejected = %v, want %q", r.Rejected, tt.wantReject)
				}
				return
			}
			if len(r.Rejected) > 0 {
				t.Fatalf("rejected: %v", r.Rejected)
			}
			if r.Username != tt.wantUser || !slices.Equal(r.Groups, tt.wantGroups) {
				t.Fatalf("got %q %v, want %q %v", r.Username, r.Groups, tt.wantUser, tt.wantGroups)
			}
		})
	}
}

// The files that `gatehouse cluster render` writes load and give the
// identities the seed article expects.
func TestAuthenticationConfigFiles(t *testing.T) {
	tests := []struct {
		file, iss, aud string
		wantUser       string
		wantGroups     []string
		wantCEL        int
	}{
		{"seed", "https://gatehouse.example.com", "kubernetes", "oidc:alice", []string{"oidc:acme:infra", "oidc:acme:dev"}, 2},
		{"seed-email", "https://login.example.com/gatehouse", "kubectl", "alice@example.com", []string{"gh:acme:infra", "gh:acme:dev"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := filepath.Join("..", "..", "cluster", "testdata", tt.file, "golden", "authentication-config.yaml")
			if _, err := os.Stat(p); err != nil {
				t.Skipf("no rendered config: %v", err)
			}
			c, err := LoadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			cl := claims(map[string]any{"iss": tt.iss, "aud": []any{tt.aud}})
			j, err := Select(c, cl)
			if err != nil {
				t.Fatal(err)
			}
			r := Evaluate(j, cl)
			if len(r.Rejected) > 0 || r.Username != tt.wantUser || !slices.Equal(r.Groups, tt.wantGroups) || len(r.CEL) != tt.wantCEL {
				t.Fatalf("got %+v", r)
			}
			if _, err := Select(c, claims(map[string]any{"iss": "https://other"})); err == nil {
				t.Fatal("a token from another issuer found an authenticator")
			}
		})
	}
}

func TestCELMappingsAreReported(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "authn.json")
	doc := `{"apiVersion":"apiserver.config.k8s.io/v1","kind":"AuthenticationConfiguration","jwt":[{"issuer":{"url":"` + iss + `","audiences":["kubernetes"]},
	"claimMappings":{"username":{"expression":"'gh:' + claims.preferred_username"},"groups":{"expression":"claims.groups"}}}]}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r := Evaluate(c.JWT[0], claims(nil))
	if r.Username != "" || len(r.CEL) != 2 {
		t.Fatalf("got %+v", r)
	}
	if err := os.WriteFile(p, []byte("kind: Something\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p); err == nil {
		t.Fatal("a file of another kind loaded")
	}
}
