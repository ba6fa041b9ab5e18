package webauth

import "testing"

func TestSafeReturn(t *testing.T) {
	a := &Auth{o: Options{Prefix: "/audit"}}
	for in, want := range map[string]string{
		"/audit?user=x":         "/audit?user=x",
		"/audit/event/1":        "/audit/event/1",
		"https://evil.example/": "/audit",
		"//evil.example":        "/audit",
		`/audit\..\x`:           "/audit",
		"/dex/keys":             "/audit",
		"":                      "/audit",
	} {
		if got := a.safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}
