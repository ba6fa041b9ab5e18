package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

var _ connector.TokenIdentityConnector = (*Connector)(nil)

// exchangeSkew is the clock skew allowed on a subject token's nbf and iat.
// go-oidc allows five minutes on nbf; a workload token lives minutes, so
// gatehouse allows one.
const exchangeSkew = time.Minute

// exchangeAlgs are the signature algorithms a subject token may use:
// asymmetric only. "none" and HMAC (HS256 signed with the public key, the
// classic confusion attack) are never accepted, whatever the provider's
// discovery document says.
var exchangeAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// subjectRule is one tokenExchange.allowedSubjects pattern.
type subjectRule struct {
	pattern string
	re      *regexp.Regexp
}

// compileSubjectRule turns a pattern into an anchored expression where
// `*` matches any run of characters other than `/` and `:`, so that
// repo:exampleorg/*:environment:production cannot match another
// organisation or a branch instead of an environment.
func compileSubjectRule(pattern string) (subjectRule, error) {
	if strings.TrimSpace(pattern) == "" {
		return subjectRule{}, errors.New("empty pattern")
	}
	if strings.Contains(pattern, "**") {
		return subjectRule{}, errors.New("`**` is not supported: `*` matches within one `/`- or `:`-separated part")
	}
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile("^" + strings.Join(parts, "[^/:]*") + "$")
	if err != nil {
		return subjectRule{}, err
	}
	return subjectRule{pattern: pattern, re: re}, nil
}

// claimRule is one tokenExchange.requiredClaims entry.
type claimRule struct {
	claim string
	rule  subjectRule
}

func (s *settings) validateTokenExchange(te TokenExchange) error {
	var errs []error
	s.exchangeAudiences = te.Audiences
	for i, a := range te.Audiences {
		if strings.TrimSpace(a) == "" {
			errs = append(errs, configError(fmt.Sprintf("tokenExchange.audiences[%d]", i), "empty: give the aud value the subject tokens carry"))
		}
	}
	if len(te.Audiences) == 0 {
		if s.clientID == "" {
			errs = append(errs, configError("tokenExchange.audiences", "required when clientID is not set: the aud value the subject tokens carry (for GitHub Actions, the audience the workflow requests its token for)"))
		} else {
			s.exchangeAudiences = []string{s.clientID}
		}
	}
	for i, p := range te.AllowedSubjects {
		r, err := compileSubjectRule(p)
		if err != nil {
			errs = append(errs, configError(fmt.Sprintf("tokenExchange.allowedSubjects[%d]", i), "%q: %v", p, err))
			continue
		}
		s.allowedSubjects = append(s.allowedSubjects, r)
	}
	claims := make([]string, 0, len(te.RequiredClaims))
	for c := range te.RequiredClaims {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		r, err := compileSubjectRule(te.RequiredClaims[c])
		if err == nil && strings.TrimSpace(c) == "" {
			err = errors.New("empty claim name")
		}
		if err != nil {
			errs = append(errs, configError("tokenExchange.requiredClaims."+c, "%q: %v", te.RequiredClaims[c], err))
			continue
		}
		s.requiredClaims = append(s.requiredClaims, claimRule{claim: c, rule: r})
	}
	return errors.Join(errs...)
}

// subjectAllowed reports whether sub may exchange and the rule that
// admitted it ("" when no rule is configured).
func (s *settings) subjectAllowed(sub string) (rule string, ok bool) {
	if len(s.allowedSubjects) == 0 {
		return "", true
	}
	for _, r := range s.allowedSubjects {
		if r.re.MatchString(sub) {
			return r.pattern, true
		}
	}
	return "", false
}

// exchangeRefused is a subject token that failed a check: the issuer
// answers invalid_grant with Description and logs the error.
func exchangeRefused(reason, description string, err error) error {
	return &connector.UserError{
		Status: http.StatusBadRequest, Reason: reason,
		Title: "Subject token refused", Message: description, Description: description, Err: err,
	}
}

// TokenIdentity verifies a subject token of the token exchange grant: a
// JWT signed by the provider's keys (an allowed asymmetric algorithm),
// naming the provider as iss and one of tokenExchange.audiences in aud,
// unexpired, with nbf and iat not in the future (one minute of skew), and
// a sub that tokenExchange.allowedSubjects admits. Its claims are mapped
// as a login's (claimMapping, claimModifications). subjectTokenType may be
// the id_token or the access_token type; either way the token must be
// such a JWT (Dex sends GitHub Actions' JWT as an access token in its own
// example); an opaque access token is refused.
func (c *Connector) TokenIdentity(ctx context.Context, subjectTokenType, subjectToken string) (connector.Identity, error) {
	switch subjectTokenType {
	case connector.TokenTypeIDToken, connector.TokenTypeAccessToken:
	default:
		return connector.Identity{}, exchangeRefused("unsupported_token_type",
			"subject_token_type must be "+connector.TokenTypeIDToken+" or "+connector.TokenTypeAccessToken, nil)
	}
	if strings.Count(subjectToken, ".") != 2 {
		return connector.Identity{}, exchangeRefused("not_a_jwt",
			"the subject token is not a JWT: gatehouse exchanges only tokens it can verify with the provider's keys", nil)
	}
	// Keys never fetched (or unreachable): a server-side failure, not the
	// token's; the error keeps its cause so the connector is marked down.
	if err := c.keys.ensure(ctx); err != nil {
		return connector.Identity{}, err
	}
	idt, err := c.exchangeVerifier.Verify(ctx, subjectToken)
	if err != nil {
		return connector.Identity{}, exchangeRefused("subject_token_invalid", "the subject token failed verification: "+trimOIDC(err), err)
	}
	aud := ""
	for _, a := range idt.Audience {
		for _, want := range c.s.exchangeAudiences {
			if a == want {
				aud = a
			}
		}
	}
	if aud == "" {
		return connector.Identity{}, exchangeRefused("subject_token_audience",
			fmt.Sprintf("the subject token's aud %q is not one this connector accepts (tokenExchange.audiences)", idt.Audience), nil)
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return connector.Identity{}, fmt.Errorf("oidc: decode subject token claims: %w", err)
	}
	now := c.now()
	for _, k := range []string{"nbf", "iat"} {
		if t, ok := numericDate(claims[k]); ok && t.After(now.Add(exchangeSkew)) {
			return connector.Identity{}, exchangeRefused("subject_token_not_yet_valid",
				fmt.Sprintf("the subject token's %s (%s) is in the future", k, t.UTC().Format(time.RFC3339)), nil)
		}
	}
	if _, ok := claims["exp"]; !ok {
		return connector.Identity{}, exchangeRefused("subject_token_invalid", "the subject token has no exp", nil)
	}
	rule, ok := c.s.subjectAllowed(idt.Subject)
	if !ok {
		return connector.Identity{}, exchangeRefused("subject_not_allowed",
			fmt.Sprintf("subject %q is not allowed to exchange tokens through this connector", idt.Subject),
			fmt.Errorf("oidc: subject %q matches none of tokenExchange.allowedSubjects %q", idt.Subject, c.s.allowedSubjectPatterns()))
	}
	for _, cr := range c.s.requiredClaims {
		v, _ := claims[cr.claim].(string)
		if !cr.rule.re.MatchString(v) {
			return connector.Identity{}, exchangeRefused("subject_not_allowed",
				fmt.Sprintf("claim %s %q of subject %q is not allowed to exchange tokens through this connector", cr.claim, v, idt.Subject),
				fmt.Errorf("oidc: claim %s %q of subject %q does not match tokenExchange.requiredClaims.%s %q", cr.claim, v, idt.Subject, cr.claim, cr.rule.pattern))
		}
	}
	id, err := c.s.mapClaims(claims)
	if err != nil {
		if _, ok := connector.AsUserError(err); ok {
			return connector.Identity{}, err
		}
		return connector.Identity{}, exchangeRefused("subject_token_claims", strings.TrimPrefix(err.Error(), "oidc: "), err)
	}
	id.Expiry = idt.Expiry
	if rule != "" {
		c.logger.Debug("subject admitted by tokenExchange.allowedSubjects", "sub", idt.Subject, "rule", rule)
	}
	return id, nil
}

func (s *settings) allowedSubjectPatterns() []string {
	out := make([]string, len(s.allowedSubjects))
	for i, r := range s.allowedSubjects {
		out[i] = r.pattern
	}
	return out
}

// numericDate reads a JWT NumericDate claim.
func numericDate(v any) (time.Time, bool) {
	switch n := v.(type) {
	case float64:
		return time.Unix(int64(n), 0), true
	case json.Number:
		f, err := n.Float64()
		return time.Unix(int64(f), 0), err == nil
	}
	return time.Time{}, false
}

func trimOIDC(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "oidc: "), "failed to verify signature: ")
}
