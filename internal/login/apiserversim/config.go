// Package apiserversim predicts what kube-apiserver makes of an ID token:
// the username and groups that its OIDC settings derive, given as the
// --oidc-* flags or as an AuthenticationConfiguration file, with
// kube-apiserver's own rules (k8s.io/apiserver's jwt authenticator and the
// flag translation in kube-apiserver's authentication options).
//
// CEL expressions (claimMappings *.expression, claimValidationRules,
// userValidationRules) are shown but not evaluated: the CEL environment
// would add megabytes and start-up time to a plugin that kubectl runs for
// every command. `kubectl gatehouse whoami` asks the cluster itself
// (SelfSubjectReview), which evaluates them.
package apiserversim

import (
	"encoding/json"
	"fmt"
	"os"
)

// AuthenticationConfiguration is the part of
// apiserver.config.k8s.io/v1 (and v1beta1) AuthenticationConfiguration that
// decides the user's identity.
type AuthenticationConfiguration struct {
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	Kind       string `json:"kind" yaml:"kind"`
	JWT        []JWT  `json:"jwt" yaml:"jwt"`
}

// JWT is one jwt authenticator.
type JWT struct {
	Issuer struct {
		URL                 string   `json:"url" yaml:"url"`
		Audiences           []string `json:"audiences" yaml:"audiences"`
		AudienceMatchPolicy string   `json:"audienceMatchPolicy" yaml:"audienceMatchPolicy"`
	} `json:"issuer" yaml:"issuer"`
	ClaimValidationRules []Rule `json:"claimValidationRules" yaml:"claimValidationRules"`
	ClaimMappings        struct {
		Username PrefixedClaimOrExpression `json:"username" yaml:"username"`
		Groups   PrefixedClaimOrExpression `json:"groups" yaml:"groups"`
		UID      ClaimOrExpression         `json:"uid" yaml:"uid"`
		Extra    []ExtraMapping            `json:"extra" yaml:"extra"`
	} `json:"claimMappings" yaml:"claimMappings"`
	UserValidationRules []Rule `json:"userValidationRules" yaml:"userValidationRules"`
}

// PrefixedClaimOrExpression maps a claim (with a prefix) or a CEL expression.
type PrefixedClaimOrExpression struct {
	Claim      string  `json:"claim" yaml:"claim"`
	Prefix     *string `json:"prefix" yaml:"prefix"`
	Expression string  `json:"expression" yaml:"expression"`
}

// ClaimOrExpression maps a claim or a CEL expression.
type ClaimOrExpression struct {
	Claim      string `json:"claim" yaml:"claim"`
	Expression string `json:"expression" yaml:"expression"`
}

// ExtraMapping is an extra attribute from a CEL expression.
type ExtraMapping struct {
	Key             string `json:"key" yaml:"key"`
	ValueExpression string `json:"valueExpression" yaml:"valueExpression"`
}

// Rule is a claim or user validation rule.
type Rule struct {
	Claim         string `json:"claim" yaml:"claim"`
	RequiredValue string `json:"requiredValue" yaml:"requiredValue"`
	Expression    string `json:"expression" yaml:"expression"`
	Message       string `json:"message" yaml:"message"`
}

// LoadFile reads an AuthenticationConfiguration (YAML or JSON).
func LoadFile(path string) (*AuthenticationConfiguration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authentication config: %w", err)
	}
	var c AuthenticationConfiguration
	if !json.Valid(b) {
		v, err := parseYAML(b)
		if err != nil {
			return nil, fmt.Errorf("authentication config %s: %w", path, err)
		}
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("authentication config %s: %w", path, err)
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("authentication config %s: %w", path, err)
	}
	if c.Kind != "AuthenticationConfiguration" {
		return nil, fmt.Errorf("authentication config %s: kind is %q, want AuthenticationConfiguration", path, c.Kind)
	}
	return &c, nil
}

// FromFlags is what kube-apiserver builds from its legacy --oidc-* flags
// (pkg/kubeapiserver/options/authentication.go): without
// --oidc-username-prefix, claims other than email are prefixed with the
// issuer URL and "#"; "-" means no prefix.
func FromFlags(f Flags) JWT {
	var j JWT
	j.Issuer.URL = f.IssuerURL
	j.Issuer.Audiences = []string{f.ClientID}
	claim := f.UsernameClaim
	if claim == "" {
		claim = "sub"
	}
	prefix := f.UsernamePrefix
	if prefix == "" && claim != "email" {
		prefix = f.IssuerURL + "#"
	}
	if prefix == "-" {
		prefix = ""
	}
	j.ClaimMappings.Username = PrefixedClaimOrExpression{Claim: claim, Prefix: &prefix}
	if f.GroupsClaim != "" {
		gp := f.GroupsPrefix
		j.ClaimMappings.Groups = PrefixedClaimOrExpression{Claim: f.GroupsClaim, Prefix: &gp}
	}
	for k, v := range f.RequiredClaims {
		j.ClaimValidationRules = append(j.ClaimValidationRules, Rule{Claim: k, RequiredValue: v})
	}
	return j
}

// Flags are kube-apiserver's --oidc-* flags.
type Flags struct {
	IssuerURL, ClientID           string
	UsernameClaim, UsernamePrefix string
	GroupsClaim, GroupsPrefix     string
	RequiredClaims                map[string]string
}
