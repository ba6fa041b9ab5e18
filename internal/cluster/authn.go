package cluster

import (
	"path"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/cluster/authnconfig"
)

// File names inside the rendered folder (and NodeDir on the nodes).
const (
	FileAuthenticationConfig = "authentication-config.yaml"
	FileAPIServerFlags       = "apiserver-flags.txt"
	FileAuditPolicy          = "audit-policy.yaml"
	FileAuditWebhook         = "audit-webhook.kubeconfig"
	FileAuditFlags           = "audit-flags.txt"
	FileKubeOneFeatures      = "kubeone-features.yaml"
	FileKubeadmPatch         = "kubeadm-patch.yaml"
	FileRBAC                 = "rbac.yaml"
	FileKubeconfig           = "kubeconfig"
	FileIssuerCA             = "issuer-ca.pem"
	FileGatehouseClient      = "gatehouse-client.yaml"
)

// Flag is one kube-apiserver command-line flag.
type Flag struct {
	Name  string
	Value string
}

// String renders the flag as --name=value.
func (f Flag) String() string { return "--" + f.Name + "=" + f.Value }

// NodePath is where a rendered file lives on the control-plane nodes.
func (c *Config) NodePath(file string) string { return path.Join(c.NodeDir, file) }

// emailVerifiedRule is the claim validation rule added when the username is
// the email claim: only a verified address may name a Kubernetes user.
const emailVerifiedRule = "claims.?email_verified.orValue(false) == true"

// AuthenticationConfiguration builds kube-apiserver's structured
// authentication configuration (apiserver.config.k8s.io/v1) for the issuer.
// issuerCA is the PEM bundle for the issuer's certificate, or nil.
func (c *Config) AuthenticationConfiguration(issuerCA []byte) *authnconfig.AuthenticationConfiguration {
	jwt := authnconfig.JWTAuthenticator{
		Issuer: authnconfig.Issuer{
			URL:                  c.Issuer.URL,
			Audiences:            append([]string(nil), c.Issuer.Audiences...),
			CertificateAuthority: string(issuerCA),
		},
		ClaimMappings: authnconfig.ClaimMappings{
			Username: authnconfig.PrefixedClaimOrExpression{
				Claim:  c.Claims.Username.Claim,
				Prefix: strPtr(c.UsernamePrefix()),
			},
			Groups: authnconfig.PrefixedClaimOrExpression{
				Claim:  c.Claims.Groups.Claim,
				Prefix: strPtr(c.GroupsPrefix()),
			},
		},
		UserValidationRules: []authnconfig.UserValidationRule{
			{
				Expression: "!user.username.startsWith('system:')",
				Message:    "username must not start with system: (reserved for Kubernetes components)",
			},
			{
				Expression: "user.groups.all(group, !group.startsWith('system:'))",
				Message:    "groups must not start with system: (reserved for Kubernetes components)",
			},
		},
	}
	if len(jwt.Issuer.Audiences) > 1 {
		jwt.Issuer.AudienceMatchPolicy = authnconfig.AudienceMatchPolicyMatchAny
	}
	if c.Claims.Username.Claim == "email" {
		jwt.ClaimValidationRules = append(jwt.ClaimValidationRules, authnconfig.ClaimValidationRule{
			Expression: emailVerifiedRule,
			Message:    "the email address is not verified (email_verified must be true)",
		})
	}
	cfg := &authnconfig.AuthenticationConfiguration{JWT: []authnconfig.JWTAuthenticator{jwt}}
	cfg.APIVersion = authnconfig.APIVersion
	cfg.Kind = authnconfig.Kind
	return cfg
}

// StructuredAuthFlags are the kube-apiserver flags for the structured
// configuration: one flag naming the file on the node.
func (c *Config) StructuredAuthFlags() []Flag {
	return []Flag{{"authentication-config", c.NodePath(FileAuthenticationConfig)}}
}

// LegacyOIDCFlags are the --oidc-* flags with the same meaning as the
// structured configuration, for clusters before 1.30 (and KubeOne).
// hasCA says whether issuer-ca.pem is rendered (--oidc-ca-file then
// points at it on the node).
func (c *Config) LegacyOIDCFlags(hasCA bool) []Flag {
	flags := []Flag{
		{"oidc-issuer-url", c.Issuer.URL},
		{"oidc-client-id", c.Audience()},
		{"oidc-username-claim", c.Claims.Username.Claim},
		{"oidc-username-prefix", legacyPrefix(c.UsernamePrefix())},
		{"oidc-groups-claim", c.Claims.Groups.Claim},
	}
	if p := c.GroupsPrefix(); p != "" {
		flags = append(flags, Flag{"oidc-groups-prefix", p})
	}
	flags = append(flags, Flag{"oidc-signing-algs", strings.Join(c.Issuer.SigningAlgs, ",")})
	if hasCA {
		flags = append(flags, Flag{"oidc-ca-file", c.NodePath(FileIssuerCA)})
	}
	return flags
}

// legacyPrefix translates "no prefix" to the flags' "-": an empty
// --oidc-username-prefix means "<issuer>#" for claims other than email.
func legacyPrefix(p string) string {
	if p == "" {
		return "-"
	}
	return p
}

func flagLines(flags []Flag) []byte {
	var b strings.Builder
	for _, f := range flags {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
