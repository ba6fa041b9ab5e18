package issuer

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRedirectURIAllowed(t *testing.T) {
	confidential := &Client{ID: "kubernetes", Secret: "s", RedirectURIs: []string{"http://localhost:8000", "https://app.example.com/cb", "http://127.0.0.1:9000/callback?x=1"}}
	public := &Client{ID: "kubectl", Public: true}
	for _, tc := range []struct {
		client *Client
		uri    string
		ok     bool
	}{
		{confidential, "http://localhost:8000", true},
		{confidential, "http://localhost:18000", true},       // RFC 8252 7.3 loopback port rule
		{confidential, "http://localhost:8000/", false},      // different path
		{confidential, "http://LOCALHOST:8000", false},       // no case folding
		{confidential, "https://app.example.com/cb", true},   // exact
		{confidential, "https://app.example.com/cb/", false}, // no prefix match
		{confidential, "https://app.example.com/cbx", false},
		{confidential, "https://app.example.com:8443/cb", false}, // port rule is for loopback only
		{confidential, "https://APP.example.com/cb", false},
		{confidential, "https://app.example.com/cb?next=//evil", false},
		{confidential, "https://app.example.com/cb#x", false},
		{confidential, "http://127.0.0.1:9001/callback?x=1", true},
		{confidential, "http://127.0.0.1:9001/callback?x=2", false},
		{confidential, "http://127.0.0.1:9001/callback", false},
		{confidential, "http://localhost:8000@evil.example", false},
		{confidential, "//evil.example", false},
		{confidential, `/\evil.example`, false},
		{confidential, "urn:ietf:wg:oauth:2.0:oob", false},
		{confidential, "", false},
		{public, "http://127.0.0.1:41234/callback", true}, // Dex default for public clients
		{public, "http://[::1]:41234", true},
		{public, "urn:ietf:wg:oauth:2.0:oob", true},
		{public, "https://evil.example/cb", false},
		{public, "http://evil.example:8000", false},
		{public, "https://127.0.0.1:8000", false}, // loopback redirects are http
	} {
		if got := redirectURIAllowed(tc.client, tc.uri); got != tc.ok {
			t.Errorf("%s %q: allowed=%v, want %v", tc.client.ID, tc.uri, got, tc.ok)
		}
	}
}

func TestSubjectEncodingMatchesDex(t *testing.T) {
	// Values documented by Dex for its example static user.
	got := encodeSubject("08a8684b-db88-4b73-90a9-3cd1661f5466", "local")
	if want := "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs"; got != want {
		t.Fatalf("sub = %s, want %s", got, want)
	}
	long := strings.Repeat("x", 300) // a length that needs a two-byte varint
	u, c, err := decodeSubject(encodeSubject(long, "github"))
	if err != nil || u != long || c != "github" {
		t.Fatalf("round trip: %q %q %v", u, c, err)
	}
}

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		c := newUserCode()
		if len(c) != 8 || strings.Trim(c, userCodeAlphabet) != "" {
			t.Fatalf("bad user code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 990 {
		t.Fatalf("user codes repeat too often: %d distinct of 1000", len(seen))
	}
	for in, want := range map[string]string{"bcdf-ghjk": "BCDFGHJK", "BCDF GHJK": "BCDFGHJK", "bcdfghjk": "BCDFGHJK", "AEIO-UUUU": "", "<script>": ""} {
		if got := normaliseUserCode(in); got != want {
			t.Errorf("normalise(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHashForMatchesOIDCExample(t *testing.T) {
	// at_hash: left half of SHA-256, base64url (OIDC Core 3.1.3.6).
	if got := hashFor("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNXI"); len(got) != 22 {
		t.Fatalf("at_hash length %d", len(got))
	}
}

func TestLoginLimiter(t *testing.T) {
	l := newLoginLimiter(LoginLimits{PerUser: 3, PerIP: 100}, nowFixed)
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("alice", "10.0.0.1"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if ok, wait := l.allow("ALICE", "10.0.0.2"); ok || wait <= 0 {
		t.Fatal("fourth attempt for the same user (other case, other IP) allowed")
	}
	if ok, _ := l.allow("bob", "10.0.0.1"); !ok {
		t.Fatal("another user limited by alice's attempts")
	}
}

var fixedTime = mustTime("2026-11-28T12:00:00Z")

func nowFixed() time.Time { return fixedTime }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestTrustedProxyIP(t *testing.T) {
	f := TrustedProxyIP("X-Forwarded-For", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"192.0.2.7:1234", "198.51.100.1", "192.0.2.7"},                      // untrusted peer: header ignored
		{"10.1.2.3:1234", "198.51.100.1", "198.51.100.1"},                    // trusted proxy
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // spoofed left-most entry ignored
		{"10.1.2.3:1234", "", "10.1.2.3"},
		{"10.1.2.3:1234", "garbage", "10.1.2.3"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := f(r); got != tc.want {
			t.Errorf("peer %s XFF %q: got %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestSuccessfulLoginsDoNotSpendTheUserBudget(t *testing.T) {
	l := newLoginLimiter(LoginLimits{PerUser: 3, PerIP: 1000}, nowFixed)
	for i := 0; i < 20; i++ {
		ok, _, refund := l.attempt("robot", "10.0.0.1")
		if !ok {
			t.Fatalf("successful login %d refused", i)
		}
		refund()
	}
	for i := 0; i < 3; i++ {
		if ok, _, _ := l.attempt("robot", "10.0.0.1"); !ok {
			t.Fatalf("failed attempt %d refused too early", i)
		}
	}
	if ok, _, _ := l.attempt("robot", "10.0.0.1"); ok {
		t.Fatal("fourth failed attempt allowed")
	}
}

func TestOAuthDescription(t *testing.T) {
	long := strings.Repeat("x", 400)
	for _, tc := range []struct{ in, want string }{
		{"membership in exampleorg required; signed in to GitHub as mallory", "membership in exampleorg required; signed in to GitHub as mallory"},
		{`say "no" \ now`, "say 'no' / now"},
		{"zoë\x00\nend", "zo?? end"},
		{long, long[:maxDescription-3] + "..."},
		{"", ""},
	} {
		if got := oauthDescription(tc.in); got != tc.want {
			t.Errorf("oauthDescription(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWithQuery(t *testing.T) {
	v := url.Values{"code": {"c"}, "state": {"s"}, "iss": {"https://issuer"}}
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:8000", "http://localhost:8000?code=c&iss=https%3A%2F%2Fissuer&state=s"},
		{"https://app/cb?b=2&a=1", "https://app/cb?b=2&a=1&code=c&iss=https%3A%2F%2Fissuer&state=s"},                   // kept as written
		{"https://app/cb?x=%41&state=evil&i%73s=evil", "https://app/cb?x=%41&code=c&iss=https%3A%2F%2Fissuer&state=s"}, // ours replace theirs
		{"https://app/cb?", "https://app/cb?code=c&iss=https%3A%2F%2Fissuer&state=s"},
	} {
		if got := withQuery(tc.in, v); got != tc.want {
			t.Errorf("withQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
