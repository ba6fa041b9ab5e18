package issuer

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// OAuth 2.0 error codes (RFC 6749 4.1.2.1, 5.2; RFC 8628 3.5; OIDC Core 3.1.2.6).
const (
	errInvalidRequest          = "invalid_request"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errUnauthorizedClient      = "unauthorized_client"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errUnsupportedResponseType = "unsupported_response_type"
	errInvalidScope            = "invalid_scope"
	errAccessDenied            = "access_denied"
	errServerError             = "server_error"
	errTemporarilyUnavailable  = "temporarily_unavailable"
	errLoginRequired           = "login_required"
	errConsentRequired         = "consent_required"
	errAuthorizationPending    = "authorization_pending"
	errSlowDown                = "slow_down"
	errExpiredToken            = "expired_token"
	errInvalidToken            = "invalid_token"
	errUnsupportedTokenType    = "unsupported_token_type"
	errRequestNotSupported     = "request_not_supported"
	errRequestURINotSupported  = "request_uri_not_supported"
)

// writeOAuthError writes an RFC 6749 5.2 error response.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if status == http.StatusUnauthorized && code == errInvalidClient {
		h.Set("WWW-Authenticate", `Basic realm="gatehouse"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, oauthDescription(description)})
}

// writeRateLimited is 429 with Retry-After, in the token endpoint's shape.
func writeRateLimited(w http.ResponseWriter, retry time.Duration) {
	secs := formatSeconds(retry)
	w.Header().Set("Retry-After", secs)
	writeOAuthError(w, http.StatusTooManyRequests, errInvalidRequest, "too many failed logins; retry after "+secs+" seconds")
}

// writeJSON writes v as a JSON response that must not be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// renderError shows an error page. Nothing from the request reaches the
// page unescaped: html/template escapes every field.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	s.opts.Web.WithStaticPrefix(s.path("/static")).Render(w, status, web.PageError, heading, web.ErrorData{
		Status: status, Heading: heading, Message: message, RequestID: requestIDFrom(r.Context()),
	})
}

func (s *Server) render(w http.ResponseWriter, status int, page, title string, data any) {
	s.opts.Web.WithStaticPrefix(s.path("/static")).Render(w, status, page, title, data)
}
