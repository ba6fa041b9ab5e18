package oidc

import (
	"strings"
	"testing"
)

func TestSubjectRules(t *testing.T) {
	tests := []struct {
		pattern, sub string
		match        bool
	}{
		{"repo:exampleorg/*:environment:production", "repo:exampleorg/deploy:environment:production", true},
		{"repo:exampleorg/*:environment:production", "repo:exampleorg/deploy:environment:staging", false},
		{"repo:exampleorg/*:environment:production", "repo:evilorg/deploy:environment:production", false},
		{"repo:exampleorg/*:environment:production", "repo:exampleorg/a/b:environment:production", false},
		{"repo:exampleorg/*:environment:production", "repo:exampleorg/x:ref:refs/heads/main:environment:production", false},
		{"repo:exampleorg/*:environment:production", "xrepo:exampleorg/deploy:environment:production", false},
		{"repo:exampleorg/deploy:ref:refs/heads/main", "repo:exampleorg/deploy:ref:refs/heads/main", true},
		{"repo:exampleorg/deploy:ref:refs/heads/*", "repo:exampleorg/deploy:ref:refs/heads/feature", true},
		{"repo:example.org/*", "repo:exampleXorg/x", false}, // the dot is literal
		{"repo:exampleorg/*-prod:*", "repo:exampleorg/api-prod:environment", true},
	}
	for _, tc := range tests {
		r, err := compileSubjectRule(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := r.re.MatchString(tc.sub); got != tc.match {
			t.Errorf("%q ~ %q = %v, want %v", tc.pattern, tc.sub, got, tc.match)
		}
	}
}

func TestTokenExchangeConfig(t *testing.T) {
	base := func() Config {
		return Config{Issuer: "https://token.actions.githubusercontent.com"}
	}
	tests := []struct {
		name string
		te   TokenExchange
		edit func(*Config)
		err  string
	}{
		{"exchange only needs audiences", TokenExchange{}, nil, "tokenExchange.audiences: required when clientID is not set"},
		{"exchange only with audiences", TokenExchange{Audiences: []string{"https://gatehouse.example"}}, nil, ""},
		{"empty audience", TokenExchange{Audiences: []string{" "}}, nil, "tokenExchange.audiences[0]: empty"},
		{"empty pattern", TokenExchange{Audiences: []string{"a"}, AllowedSubjects: []string{""}}, nil, "tokenExchange.allowedSubjects[0]"},
		{"double star", TokenExchange{Audiences: []string{"a"}, AllowedSubjects: []string{"repo:**"}}, nil, "`**` is not supported"},
		{"bad required claim pattern", TokenExchange{Audiences: []string{"a"}, RequiredClaims: map[string]string{"ref": "refs/**"}}, nil, "tokenExchange.requiredClaims.ref"},
		{"clientID without redirectURI still refused", TokenExchange{}, func(c *Config) { c.ClientID = "x" }, "redirectURI: required"},
		{"login connector defaults audiences to clientID", TokenExchange{}, func(c *Config) {
			c.ClientID, c.RedirectURI = "x", "https://gatehouse.example/callback"
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			c.TokenExchange = tc.te
			if tc.edit != nil {
				tc.edit(&c)
			}
			s, err := c.validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(s.exchangeAudiences) == 0 {
					t.Fatal("no audiences")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
