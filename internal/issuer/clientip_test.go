package issuer

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

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

// TestProxyWarning: one warning, at the first request from what looks
// like an untrusted proxy (a private, loopback or shared peer address
// with forwarding headers); none for direct clients or trusted proxies.
func TestProxyWarning(t *testing.T) {
	tenNet := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		header  string
		want    string // "" for no warning
	}{
		{"private peer with X-Forwarded-For, nothing trusted", nil, "10.42.0.7:40000", "X-Forwarded-For", "trusts none"},
		{"pod network in 172.16/12", nil, "172.20.1.2:40000", "X-Forwarded-For", "trusts none"},
		{"Forwarded header", nil, "192.168.1.10:40000", "Forwarded", "trusts none"},
		{"X-Real-Ip header", nil, "10.0.0.1:40000", "X-Real-Ip", "trusts none"},
		{"loopback sidecar", nil, "127.0.0.1:40000", "X-Forwarded-For", "trusts none"},
		{"IPv6 unique local", nil, "[fd00::5]:40000", "X-Forwarded-For", "trusts none"},
		{"shared address space", nil, "100.64.3.4:40000", "X-Forwarded-For", "trusts none"},
		{"private peer not among the trusted", tenNet, "192.168.1.10:40000", "X-Forwarded-For", "not in web.clientRemoteIP.trustedProxies"},
		{"trusted proxy", tenNet, "10.42.0.7:40000", "X-Forwarded-For", ""},
		{"public peer with a header (a client sending its own)", nil, "203.0.113.9:40000", "X-Forwarded-For", ""},
		{"private peer without headers (a direct client)", nil, "10.42.0.7:40000", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &proxyWatch{header: "X-Forwarded-For", trusted: tc.trusted, log: slog.New(slog.NewTextHandler(&buf, nil))}
			for i := 0; i < 3; i++ {
				r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
				if tc.header != "" {
					r.Header.Set(tc.header, "198.51.100.1")
				}
				p.check(r)
			}
			out := buf.String()
			if tc.want == "" {
				if out != "" {
					t.Fatalf("warned: %s", out)
				}
				return
			}
			if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, "peer="+strings.Trim(tc.peer[:strings.LastIndex(tc.peer, ":")], "[]")) {
				t.Fatalf("want one warning with %q and the peer, got:\n%s", tc.want, out)
			}
		})
	}
}
