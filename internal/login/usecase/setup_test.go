package usecase

import "testing"

func TestBindingName(t *testing.T) {
	tests := []struct{ kind, subject, role, want string }{
		{"oidc-user", "oidc:alice", "cluster-admin", "oidc-user-oidc-alice-cluster-admin"},
		{"oidc-user", "https://issuer.example/dex#CgVhbGljZQ", "view", "oidc-user-https-issuer.example-dex-cgvhbgljzq-view"},
		{"oidc-group", "gh:Acme:Infra Team", "edit", "oidc-group-gh-acme-infra-team-edit"},
		{"oidc-user", "alice@example.com", "cluster-admin", "oidc-user-alice-example.com-cluster-admin"},
	}
	for _, tt := range tests {
		if got := bindingName(tt.kind, tt.subject, tt.role); got != tt.want {
			t.Errorf("bindingName(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"oidc:alice": "oidc:alice", "a b": "'a b'", "it's": `'it'\''s'`, "x#y": "'x#y'", "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
