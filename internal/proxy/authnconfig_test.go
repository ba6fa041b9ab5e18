package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
)

func TestLoadAuthenticationConfigErrors(t *testing.T) {
	jwt := `jwt:
- issuer: {url: https://issuer.example.com, audiences: [kubernetes]}
  claimMappings:
    username: {claim: sub, prefix: ""}
`
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "the file is empty"},
		{"not yaml of the kind", "apiVersion: v1\nkind: ConfigMap\n", "ConfigMap"},
		{"unknown field (strict)", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwts: []\n", "jwts"},
		{"no authenticator", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n", "no authenticator"},
		{"http issuer (apiserver validation)", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n" + strings.Replace(jwt, "https://", "http://", 1), "jwt[0].issuer.url"},
		{"bad CEL", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n" + jwt + "  claimValidationRules:\n  - expression: 'claims.('\n    message: x\n", "claimValidationRules[0].expression"},
		{"anonymous", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n" + jwt + "anonymous: {enabled: true}\n", "anonymous.enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "authn.yaml")
			if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadAuthenticationConfig(p, authenticationcel.NewDefaultCompiler())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--authentication-config") {
				t.Errorf("error %v, want one naming --authentication-config and %q", err, tc.want)
			}
		})
	}
	if _, err := LoadAuthenticationConfig(filepath.Join(t.TempDir(), "missing.yaml"), authenticationcel.NewDefaultCompiler()); err == nil || !strings.Contains(err.Error(), "--authentication-config") {
		t.Errorf("missing file: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := Options{Listen: ":8443", AuthenticationConfig: "a.yaml"}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"fine", func(*Options) {}, ""},
		{"no authentication config", func(o *Options) { o.AuthenticationConfig = "" }, "--authentication-config is required"},
		{"cert without key", func(o *Options) { o.TLSCertFile = "c.pem" }, "--tls-key-file"},
		{"audit without cluster name", func(o *Options) { o.AuditWebhookConfig = "w.kubeconfig" }, "--cluster-name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			err := o.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
