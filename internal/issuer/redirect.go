package issuer

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// redirectURIAllowed matches a redirect URI against a client's registered
// ones exactly: same scheme, host, path and query, byte for byte (no
// prefix match, no case folding). The one exception is RFC 8252 7.3: for a
// registered loopback redirect (http on 127.0.0.1, [::1] or localhost) any
// port is accepted, because a native app picks a free port at run time.
// Public clients with no registered redirect URIs get Dex's defaults:
// loopback on any port, and the out-of-band URN.
func redirectURIAllowed(c *Client, got string) bool {
	if got == "" || len(got) > 2048 {
		return false
	}
	u, err := url.Parse(got)
	if err != nil || u.Fragment != "" || u.User != nil {
		return false
	}
	if got == redirectOOB {
		return c.Public && len(c.RedirectURIs) == 0 || containsExact(c.RedirectURIs, got)
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return false
	}
	if containsExact(c.RedirectURIs, got) {
		return true
	}
	if !isLoopbackRedirect(u) {
		return false
	}
	if c.Public && len(c.RedirectURIs) == 0 {
		return true
	}
	for _, reg := range c.RedirectURIs {
		ru, err := url.Parse(reg)
		if err != nil || !isLoopbackRedirect(ru) {
			continue
		}
		if ru.Scheme == u.Scheme && ru.Hostname() == u.Hostname() && ru.EscapedPath() == u.EscapedPath() && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func containsExact(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// isLoopbackRedirect is an http URL on a loopback host with a port.
func isLoopbackRedirect(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
