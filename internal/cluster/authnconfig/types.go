// Package authnconfig holds the part of kube-apiserver's structured
// authentication configuration (apiserver.config.k8s.io/v1) that gatehouse
// renders.
package authnconfig

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The structs below are the subset of kube-apiserver's structured
// authentication configuration (apiserver.config.k8s.io/v1, package
// k8s.io/apiserver/pkg/apis/apiserver/v1) that gatehouse renders, with the
// same field names and json tags.
//
// Why not the upstream types (ARCHITECTURE prefers them): importing
// k8s.io/apiserver/pkg/apis/apiserver/v1 links its internal package, which
// imports k8s.io/component-base/tracing/api/v1 and through it component-base's
// feature gates and legacy metrics registry, and OpenTelemetry's trace API:
// 20 packages whose init Go runs at every start of the gatehouse binary,
// `gatehouse serve` included. Measured with GODEBUG=inittrace=1: 0.23 MB
// and 2,200 allocations at start-up, 0.7 to 2.5 ms. With client-go's
// clientset gone as well (internal/cluster/apiclient.go), idle RSS of
// `gatehouse serve --dev` went from 41-43 MB to 25-26 MB.
//
// Drift fails the tests: types_test.go compares every field here with its
// upstream counterpart (name, json tag, shape), and internal/cluster's
// TestAuthenticationConfigValidates decodes every rendered configuration
// strictly into the upstream types, marshals it back byte for byte and
// runs kube-apiserver's own validation on it.

// AuthenticationConfiguration is kube-apiserver's --authentication-config
// file (kind AuthenticationConfiguration).
type AuthenticationConfiguration struct {
	metav1.TypeMeta `json:""`

	// JWT lists the JWT authenticators; gatehouse renders one.
	JWT []JWTAuthenticator `json:"jwt"`
}

// JWTAuthenticator trusts tokens from one issuer.
type JWTAuthenticator struct {
	// Issuer says whose tokens these are and for which audiences.
	Issuer Issuer `json:"issuer"`
	// ClaimValidationRules are CEL rules on the token's claims.
	ClaimValidationRules []ClaimValidationRule `json:"claimValidationRules,omitempty"`
	// ClaimMappings turn claims into the Kubernetes user.
	ClaimMappings ClaimMappings `json:"claimMappings"`
	// UserValidationRules are CEL rules on the resulting user.
	UserValidationRules []UserValidationRule `json:"userValidationRules,omitempty"`
}

// Issuer is the token issuer: its URL (the iss claim), CA and audiences.
type Issuer struct {
	// URL must equal the tokens' iss claim.
	URL string `json:"url"`
	// CertificateAuthority is the PEM bundle kube-apiserver trusts for
	// the issuer's discovery document and keys.
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// Audiences accepted in the aud claim.
	Audiences []string `json:"audiences"`
	// AudienceMatchPolicy is required when there are several audiences.
	AudienceMatchPolicy AudienceMatchPolicyType `json:"audienceMatchPolicy,omitempty"`
}

// AudienceMatchPolicyType says how the aud claim is matched.
type AudienceMatchPolicyType string

// AudienceMatchPolicyMatchAny accepts a token whose aud contains any of
// the audiences.
const AudienceMatchPolicyMatchAny AudienceMatchPolicyType = "MatchAny"

// ClaimValidationRule is a CEL expression on the token's claims.
type ClaimValidationRule struct {
	// Expression must evaluate to true.
	Expression string `json:"expression,omitempty"`
	// Message is logged when it does not.
	Message string `json:"message,omitempty"`
}

// ClaimMappings maps claims to the username, groups and UID.
type ClaimMappings struct {
	// Username is the claim (with prefix) that names the user.
	Username PrefixedClaimOrExpression `json:"username"`
	// Groups is the claim (with prefix) that lists the groups.
	Groups PrefixedClaimOrExpression `json:"groups,omitempty"`
	// UID is left empty; upstream always writes it (no omitempty).
	UID ClaimOrExpression `json:"uid"`
}

// PrefixedClaimOrExpression is a claim with a prefix, or a CEL expression.
type PrefixedClaimOrExpression struct {
	// Claim names the claim.
	Claim string `json:"claim,omitempty"`
	// Prefix is prepended to the claim's value; required with Claim.
	Prefix *string `json:"prefix,omitempty"`
	// Expression is a CEL expression instead of Claim.
	Expression string `json:"expression,omitempty"`
}

// ClaimOrExpression is a claim or a CEL expression.
type ClaimOrExpression struct {
	// Claim names the claim.
	Claim string `json:"claim,omitempty"`
	// Expression is a CEL expression instead of Claim.
	Expression string `json:"expression,omitempty"`
}

// UserValidationRule is a CEL expression on the mapped user.
type UserValidationRule struct {
	// Expression must evaluate to true.
	Expression string `json:"expression"`
	// Message is logged when it does not.
	Message string `json:"message,omitempty"`
}

// APIVersion and Kind of the file.
const (
	APIVersion = "apiserver.config.k8s.io/v1"
	Kind       = "AuthenticationConfiguration"
)
