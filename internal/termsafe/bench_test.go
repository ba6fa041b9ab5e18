package termsafe_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// The common case is a printable name, returned as it is.
func BenchmarkStringPrintable(b *testing.B) {
	s := "oidc:exampleorg:infra-team/café-settings-7f3a"
	b.ReportAllocs()
	for b.Loop() {
		_ = termsafe.String(s)
	}
}

func BenchmarkStringEscaped(b *testing.B) {
	s := "café-\x1b]0;pwned\x07-settings\u202e"
	b.ReportAllocs()
	for b.Loop() {
		_ = termsafe.String(s)
	}
}
