package config

import (
	"regexp"
	"testing"
)

// TestIssuerPatternAgrees holds IssuerPattern (the chart's schema) to
// Validate's issuer rule.
func TestIssuerPatternAgrees(t *testing.T) {
	re := regexp.MustCompile(IssuerPattern)
	var issuers []string
	for _, scheme := range []string{"https://", "http://", "HTTPS://", "ftp://", ""} {
		for _, host := range []string{"login.example.com", "localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "[::1]", "10.0.0.1", "u:p@login.example.com", "", "localhost.example.com", "127.0.0.1.nip.io"} {
			for _, port := range []string{"", ":5556", ":"} {
				for _, rest := range []string{"", "/", "/dex", "/dex/", "?x=1", "#f", "/dex?", "/a@b", " /x"} {
					issuers = append(issuers, scheme+host+port+rest)
				}
			}
		}
	}
	agree := 0
	for _, issuer := range issuers {
		v := &validator{}
		(&Config{Issuer: issuer}).validateIssuer(v)
		if issuer == "" {
			continue // required: the chart's templates say so
		}
		if got, want := re.MatchString(issuer), len(v.errs) == 0; got != want {
			t.Errorf("%q: pattern %v, Validate %v (%v)", issuer, got, want, v.errs)
		} else {
			agree++
		}
	}
	t.Logf("%d issuers agree", agree)
}

// TestSchemaStorageTypes: every storage type of the schema decodes, and
// one it does not list is refused by the decoder too.
func TestSchemaStorageTypes(t *testing.T) {
	for typ := range storageConfigs {
		if _, err := Parse([]byte("storage: {type: " + typ + "}")); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	for _, typ := range []string{"kubernetes", "etcd", "mysql", "sqlite"} {
		if _, ok := storageConfigs[typ]; ok {
			continue
		}
		if _, err := Parse([]byte("storage: {type: " + typ + "}")); err == nil {
			t.Errorf("the decoder takes storage type %s, the schema does not list it", typ)
		}
	}
}
