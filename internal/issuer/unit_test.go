package issuer

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRedirectURIAllowed attacks the redirect URI comparison (RFC 9700
// 4.1.3: exact string matching; RFC 8252 7.3: any port for a registered
// loopback redirect, nothing else varies).
func TestRedirectURIAllowed(t *testing.T) {
	confidential := &Client{ID: "kubernetes", Secret: "s", RedirectURIs: []string{
		"http://localhost:8000", "https://app.example.com/cb", "http://127.0.0.1:9000/callback?x=1", "http://[::1]:7000/cb",
		"https://app.example.com:8443/a%2Fb", "com.example.app:/oauth2redirect",
	}}
	public := &Client{ID: "kubectl", Public: true}
	publicRegistered := &Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example.com/"}}
	for _, tc := range []struct {
		name   string
		client *Client
		uri    string
		ok     bool
	}{
		{"exact", confidential, "http://localhost:8000", true},
		{"exact https", confidential, "https://app.example.com/cb", true},
		{"exact custom scheme", confidential, "com.example.app:/oauth2redirect", true},
		{"exact with escape", confidential, "https://app.example.com:8443/a%2Fb", true},
		{"loopback: other port", confidential, "http://localhost:18000", true},
		{"loopback: no port", confidential, "http://localhost", true},
		{"loopback IPv4: other port, same path and query", confidential, "http://127.0.0.1:9001/callback?x=1", true},
		{"loopback IPv6: other port", confidential, "http://[::1]:39123/cb", true},

		{"scheme case", confidential, "HTTP://localhost:8000", false},
		{"scheme case, non-loopback", confidential, "HTTPS://app.example.com/cb", false},
		{"scheme case, other port", confidential, "Http://localhost:18000", false},
		{"host case", confidential, "http://LOCALHOST:8000", false},
		{"host case, non-loopback", confidential, "https://APP.example.com/cb", false},
		{"trailing slash", confidential, "http://localhost:8000/", false},
		{"trailing slash, non-loopback", confidential, "https://app.example.com/cb/", false},
		{"prefix", confidential, "https://app.example.com/cbx", false},
		{"dot segment", confidential, "https://app.example.com/x/../cb", false},
		{"dot segment, loopback", confidential, "http://127.0.0.1:9001/x/../callback?x=1", false},
		{"single dot", confidential, "https://app.example.com/./cb", false},
		{"percent-encoded path", confidential, "https://app.example.com/%63b", false},
		{"percent-encoding decoded", confidential, "https://app.example.com:8443/a/b", false},
		{"percent-encoding case", confidential, "https://app.example.com:8443/a%2fb", false},
		{"percent-encoded host", confidential, "http://%6cocalhost:8000", false},
		{"percent-encoded loopback IP", confidential, "http://127.0.0.%31:9000/callback?x=1", false},
		{"userinfo", confidential, "http://localhost:8000@evil.example", false},
		{"userinfo on loopback", confidential, "http://user@localhost:8000", false},
		{"userinfo, non-loopback", confidential, "https://user:pw@app.example.com/cb", false},
		{"fragment", confidential, "https://app.example.com/cb#x", false},
		{"empty fragment", confidential, "http://localhost:8000#", false},
		{"query added", confidential, "https://app.example.com/cb?next=//evil", false},
		{"query added, loopback", confidential, "http://localhost:8000?x=1", false},
		{"query changed", confidential, "http://127.0.0.1:9001/callback?x=2", false},
		{"query dropped", confidential, "http://127.0.0.1:9001/callback", false},
		{"query reordered", confidential, "http://127.0.0.1:9000/callback?x=1&", false},
		{"port on non-loopback", confidential, "https://app.example.com:443/cb", false},
		{"other port on non-loopback", confidential, "https://app.example.com:8444/a%2Fb", false},
		{"loopback https", confidential, "https://localhost:8000", false},
		{"loopback other host: 127.0.0.1 for localhost", confidential, "http://127.0.0.1:8000", false},
		{"loopback other host: localhost for 127.0.0.1", confidential, "http://localhost:9000/callback?x=1", false},
		{"loopback other host: 127.0.0.2", confidential, "http://127.0.0.2:9000/callback?x=1", false},
		{"localhost.", confidential, "http://localhost.:8000", false},
		{"localhost subdomain", confidential, "http://localhost.evil.example:8000", false},
		{"evil with localhost prefix", confidential, "http://localhost:8000.evil.example", false},
		{"IPv6 long form", confidential, "http://[0:0:0:0:0:0:0:1]:7000/cb", false},
		{"IPv6 mapped IPv4", confidential, "http://[::ffff:127.0.0.1]:7000/cb", false},
		{"IPv6 zone", confidential, "http://[::1%25eth0]:7000/cb", false},
		{"IPv6 upper case", confidential, "http://[::1]:7000/CB", false},
		{"IPv4 leading zero", confidential, "http://127.000.000.001:9000/callback?x=1", false},
		{"IPv4 decimal", confidential, "http://2130706433:9000/callback?x=1", false},
		{"port with leading zero", confidential, "http://localhost:08000", false},
		{"port out of range", confidential, "http://localhost:65536", false},
		{"empty port", confidential, "http://localhost:", false},
		{"port with sign", confidential, "http://localhost:+8000", false},
		{"backslash", confidential, `http://localhost:8000\@evil.example`, false},
		{"protocol-relative", confidential, "//evil.example", false},
		{"backslash-relative", confidential, `/\evil.example`, false},
		{"relative path", confidential, "/cb", false},
		{"OOB not registered", confidential, "urn:ietf:wg:oauth:2.0:oob", false},
		{"empty", confidential, "", false},
		{"too long", confidential, "http://localhost:8000/" + strings.Repeat("a", 2048), false},
		{"javascript", confidential, "javascript:alert(1)//localhost:8000", false},

		{"public default: loopback IPv4 any path", public, "http://127.0.0.1:41234/callback", true},
		{"public default: other 127/8 address (as Dex)", public, "http://127.0.0.2:41234", true},
		{"public default: IPv6", public, "http://[::1]:41234", true},
		{"public default: localhost", public, "http://localhost:8000", true},
		{"public default: OOB", public, "urn:ietf:wg:oauth:2.0:oob", true},
		{"public default: scheme case", public, "HTTP://localhost:8000", false},
		{"public default: host case", public, "http://LocalHost:8000", false},
		{"public default: localhost.", public, "http://localhost.:8000", false},
		{"public default: userinfo", public, "http://evil@127.0.0.1:8000", false},
		{"public default: fragment", public, "http://127.0.0.1:8000/#x", false},
		{"public default: https", public, "https://127.0.0.1:8000", false},
		{"public default: non-loopback", public, "http://evil.example:8000", false},
		{"public default: absolute", public, "https://evil.example/cb", false},
		{"public registered: exact only", publicRegistered, "https://spa.example.com/", true},
		{"public registered: no loopback default", publicRegistered, "http://127.0.0.1:8000", false},
		{"public registered: no OOB default", publicRegistered, "urn:ietf:wg:oauth:2.0:oob", false},
	} {
		if got := redirectURIAllowed(tc.client, tc.uri); got != tc.ok {
			t.Errorf("%s: %s %q: allowed=%v, want %v", tc.name, tc.client.ID, tc.uri, got, tc.ok)
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

var fixedTime = mustTime("2026-11-28T12:00:00Z")

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
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
