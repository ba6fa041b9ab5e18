package apiserversim

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// Result is what the API server would see.
type Result struct {
	// Username and Groups as the API server derives them; Username is
	// empty when the token would be rejected or the mapping is CEL.
	Username string
	Groups   []string
	// Rejected lists why the API server would refuse the token.
	Rejected []string
	// CEL lists expressions the plugin cannot evaluate (whoami can).
	CEL []string
}

// Evaluate applies one jwt authenticator's rules to the token's claims.
func Evaluate(j JWT, claims map[string]any) Result {
	var r Result
	iss, _ := claims["iss"].(string)
	if j.Issuer.URL != "" && iss != j.Issuer.URL {
		r.Rejected = append(r.Rejected, fmt.Sprintf("the token's iss %q is not the configured issuer URL %q", iss, j.Issuer.URL))
	}
	if len(j.Issuer.Audiences) > 0 && !audienceMatches(claims["aud"], j.Issuer.Audiences) {
		r.Rejected = append(r.Rejected, fmt.Sprintf("the token's aud %v contains none of the audiences %v", claims["aud"], j.Issuer.Audiences))
	}
	for _, rule := range j.ClaimValidationRules {
		if rule.Expression != "" {
			r.CEL = append(r.CEL, "claimValidationRules: "+rule.Expression)
			continue
		}
		if v, ok := claims[rule.Claim].(string); !ok || v != rule.RequiredValue {
			r.Rejected = append(r.Rejected, fmt.Sprintf("required claim %s=%q is %v", rule.Claim, rule.RequiredValue, claims[rule.Claim]))
		}
	}

	um := j.ClaimMappings.Username
	switch {
	case um.Expression != "":
		r.CEL = append(r.CEL, "claimMappings.username.expression: "+um.Expression)
	default:
		name, err := stringClaim(claims, um.Claim)
		if err != nil {
			r.Rejected = append(r.Rejected, fmt.Sprintf("username: %v", err))
			break
		}
		if um.Claim == "email" {
			// k8s.io/apiserver: when email_verified is present it must be true.
			if v, has := claims["email_verified"]; has {
				if b, ok := v.(bool); !ok || !b {
					r.Rejected = append(r.Rejected, "the username claim is email and email_verified is not true (oidc: email not verified)")
					break
				}
			}
		}
		if um.Prefix != nil {
			name = *um.Prefix + name
		}
		r.Username = name
	}

	gm := j.ClaimMappings.Groups
	if gm.Claim != "" {
		if v, has := claims[gm.Claim]; has {
			groups, err := stringOrArray(v)
			if err != nil {
				r.Rejected = append(r.Rejected, fmt.Sprintf("groups claim %q: %v", gm.Claim, err))
			}
			for _, g := range groups {
				if gm.Prefix != nil {
					g = *gm.Prefix + g
				}
				r.Groups = append(r.Groups, g)
			}
		}
	} else if gm.Expression != "" {
		r.CEL = append(r.CEL, "claimMappings.groups.expression: "+gm.Expression)
	}
	if j.ClaimMappings.UID.Expression != "" {
		r.CEL = append(r.CEL, "claimMappings.uid.expression: "+j.ClaimMappings.UID.Expression)
	}
	for _, e := range j.ClaimMappings.Extra {
		r.CEL = append(r.CEL, "claimMappings.extra["+e.Key+"]: "+e.ValueExpression)
	}
	for _, rule := range j.UserValidationRules {
		r.CEL = append(r.CEL, "userValidationRules: "+rule.Expression)
	}
	return r
}

// Select picks the authenticator for the token's issuer.
func Select(c *AuthenticationConfiguration, claims map[string]any) (JWT, error) {
	iss, _ := claims["iss"].(string)
	var urls []string
	for _, j := range c.JWT {
		if j.Issuer.URL == iss {
			return j, nil
		}
		urls = append(urls, j.Issuer.URL)
	}
	return JWT{}, fmt.Errorf("no jwt authenticator for issuer %q (the configuration has %v): the API server would not accept this token", iss, urls)
}

func stringClaim(claims map[string]any, name string) (string, error) {
	v, has := claims[name]
	if !has {
		return "", fmt.Errorf("claim %q not present in the token", name)
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		return "", fmt.Errorf("claim %q is %s, not a string", name, b)
	}
	return s, nil
}

// stringOrArray is kube-apiserver's groups claim: a string or an array of
// strings.
func stringOrArray(v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %v is not a string", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%v is neither a string nor an array of strings", v)
}

func audienceMatches(aud any, want []string) bool {
	got, err := stringOrArray(aud)
	if err != nil {
		return false
	}
	for _, a := range got {
		if slices.Contains(want, a) {
			return true
		}
	}
	return false
}

// SortedKeys returns a map's keys in order (for stable output).
func SortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
