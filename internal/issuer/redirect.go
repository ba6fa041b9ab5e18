package issuer

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// redirectURIAllowed matches a redirect URI against a client's registered
// ones as strings, byte for byte (RFC 9700 4.1.3): no case folding of
// scheme or host, no normalisation of dot segments, percent-encoding or a
// trailing slash, no prefix match. The one exception is RFC 8252 7.3: for
// a registered loopback redirect (http on 127.0.0.1, [::1] or localhost,
// see splitLoopback) any port is accepted, the rest of the string being
// identical, because a native app picks a free port at run time.
// Public clients with no registered redirect URIs get Dex's defaults:
// any loopback redirect, and the out-of-band URN.
//
// The comparison is on the raw strings, not on url.Parse results: Go's
// parser lowercases the scheme ("HTTP://localhost" would match "http://")
// and decodes percent-escapes in the host.
func redirectURIAllowed(c *Client, got string) bool {
	if got == "" || len(got) > 2048 {
		return false
	}
	if got == redirectOOB {
		return c.Public && len(c.RedirectURIs) == 0 || slices.Contains(c.RedirectURIs, got)
	}
	u, err := url.Parse(got)
	if err != nil || u.Scheme == "" || u.User != nil || strings.Contains(got, "#") {
		return false // relative (Dex's "/device/callback" is no client's), or never registrable
	}
	if slices.Contains(c.RedirectURIs, got) {
		return true // including private-use schemes (com.example.app:/cb, RFC 8252 7.1)
	}
	gotLB, ok := splitLoopback(got)
	if !ok {
		return false
	}
	if c.Public && len(c.RedirectURIs) == 0 {
		return true
	}
	for _, reg := range c.RedirectURIs {
		if regLB, ok := splitLoopback(reg); ok && regLB.host == gotLB.host && regLB.rest == gotLB.rest {
			return true
		}
	}
	return false
}

// loopbackURI is a loopback redirect URI split around its port.
type loopbackURI struct {
	host string // as written: "127.0.0.1", "[::1]", "localhost"
	rest string // path and query, as written
}

// splitLoopback splits a loopback redirect URI (RFC 8252 7.3) written
// exactly as "http://" HOST [":" PORT] [PATH] ["?" QUERY], where HOST is
// "localhost", an IPv4 loopback address in dotted decimal, or an IPv6
// loopback address in brackets, and PORT is 1 to 65535 in decimal without
// leading zeros. Anything else is not a loopback redirect: an upper-case
// scheme or host, "localhost.", userinfo, a zone, percent-escapes in the
// authority, a fragment.
func splitLoopback(raw string) (loopbackURI, bool) {
	rest, ok := strings.CutPrefix(raw, "http://")
	if !ok || strings.ContainsAny(rest, "#") {
		return loopbackURI{}, false
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		i = len(rest)
	}
	authority, tail := rest[:i], rest[i:]
	if strings.ContainsAny(authority, "@%") {
		return loopbackURI{}, false
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return loopbackURI{}, false
		}
		host, port = authority[:end+1], authority[end+1:]
	} else if j := strings.IndexByte(authority, ':'); j >= 0 {
		host, port = authority[:j], authority[j:]
	}
	if port != "" && !validPort(strings.TrimPrefix(port, ":")) || port != "" && port[0] != ':' {
		return loopbackURI{}, false
	}
	if !loopbackHost(host) {
		return loopbackURI{}, false
	}
	return loopbackURI{host: host, rest: tail}, true
}

// loopbackHost: "localhost", or a loopback IP literal that netip parses
// (which refuses leading zeros and zones). IPv4 in dotted form only,
// IPv6 in brackets only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		a, err := netip.ParseAddr(inner)
		return ok && err == nil && a.Is6() && a.IsLoopback()
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is4() && a.IsLoopback()
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// Binding of an auth request to the browser that started it. The cookie's
// value is an HMAC of the request id under the request's own key, so a
// form or callback replayed from another browser (login CSRF, a stolen
// login link) is refused.
func bindingCookieName(reqID string) string {
	return "gatehouse_auth_" + sha256Hex(reqID)[:16]
}

func (s *Server) bindToBrowser(w http.ResponseWriter, req storage.AuthRequest) {
	http.SetCookie(w, s.cookie(bindingCookieName(req.ID), formHMAC(req.HMACKey, "browser:"+req.ID), req.Expiry.Sub(s.now())))
}

func (s *Server) clearBinding(w http.ResponseWriter, req storage.AuthRequest) {
	http.SetCookie(w, s.cookie(bindingCookieName(req.ID), "", -1))
}

func (s *Server) browserBound(r *http.Request, req storage.AuthRequest) bool {
	c, err := r.Cookie(bindingCookieName(req.ID))
	if err != nil {
		return false
	}
	return checkFormHMAC(req.HMACKey, "browser:"+req.ID, c.Value)
}

func (s *Server) rememberConnector(w http.ResponseWriter, connID string) {
	http.SetCookie(w, s.cookie(lastConnectorCookie, connID, 365*24*time.Hour))
}

// cookie builds a cookie scoped to the issuer path: HttpOnly, Secure on
// HTTPS, SameSite=Lax (the callback from GitHub is a cross-site top-level
// GET, which Lax allows and Strict would not).
func (s *Server) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	path := s.prefix
	if path == "" {
		path = "/"
	}
	c := &http.Cookie{
		Name: name, Value: value, Path: path, HttpOnly: true,
		Secure: s.issuerURL.Scheme == "https", SameSite: http.SameSiteLaxMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge.Seconds())
		if c.MaxAge == 0 {
			c.MaxAge = 1
		}
	}
	return c
}

// responseParams are the parameters gatehouse adds to a redirect back to
// the client; the same names in the registered URI's own query are dropped
// so that the client reads gatehouse's values (a mix-up attacker's iss or
// state placed first would otherwise be what url.Values.Get returns).
var responseParams = []string{"code", "state", "iss", "error", "error_description"}

// withQuery adds v to a redirect URI, keeping the URI's own query as it
// is written (RFC 6749 3.1.2: it MUST be retained). Written by hand
// because url.URL.Query().Encode() would re-encode and reorder it.
func withQuery(redirectURI string, v url.Values) string {
	base, query, _ := strings.Cut(redirectURI, "?")
	var b strings.Builder
	b.WriteString(base)
	b.WriteByte('?')
	for _, part := range strings.Split(query, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if name, err := url.QueryUnescape(k); err == nil && slices.Contains(responseParams, name) {
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString(v.Encode())
	return b.String()
}

// maxDescription bounds error_description: a reason, not a document.
const maxDescription = 300

// oauthDescription makes text fit RFC 6749's error_description: printable
// ASCII except '"' and '\' (%x20-21 / %x23-5B / %x5D-7E). Other
// characters become '?', quotes become apostrophes; the result is cut to
// maxDescription bytes.
func oauthDescription(text string) string {
	var b strings.Builder
	for _, c := range text {
		switch {
		case c == '"':
			b.WriteByte('\'')
		case c == '\\':
			b.WriteByte('/')
		case c == '\t' || c == '\n' || c == '\r':
			b.WriteByte(' ')
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
		if b.Len() > maxDescription {
			return strings.TrimSpace(b.String()[:maxDescription-3]) + "..."
		}
	}
	return strings.TrimSpace(b.String())
}
