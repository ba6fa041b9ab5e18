package issuer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

type ctxKey int

const requestIDKey ctxKey = iota

// requestID gives every request an id (X-Request-Id if the caller sent a
// sane one) for logs and error pages.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// recoverPanics turns a handler panic into a logged 500.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "request_id", requestIDFrom(r.Context()), "panic", v, "stack", string(debug.Stack()))
				writeOAuthError(w, http.StatusInternalServerError, errServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status code for metrics and logs.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument records metrics and a log line for each request.
func (s *Server) instrument(endpoint string, next http.Handler) http.Handler {
	m := s.opts.Metrics
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		code := strconv.Itoa(rec.status)
		m.requests.WithLabelValues(endpoint, code).Inc()
		m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
		if s.log.Enabled(r.Context(), levelForStatus(rec.status)) {
			s.log.Log(r.Context(), levelForStatus(rec.status), "request",
				"request_id", requestIDFrom(r.Context()), "method", r.Method, "path", r.URL.Path,
				"endpoint", endpoint, "status", rec.status, "duration_ms", float64(d.Microseconds())/1000,
				"remote", s.opts.ClientIP(r))
		}
	})
}

// securityHeaders are sent with every page: no framing (clickjacking), no
// sniffing, no referrer leaks of codes, HSTS on HTTPS.
func (s *Server) securityHeaders(h http.Header, page bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if s.issuerURL.Scheme == "https" {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	if page {
		img := "'self' data:"
		if logo := s.opts.Web.LogoURL(); logo != "" {
			img += " " + originOf(logo)
		}
		// No form-action: Chromium applies it to the redirect after a
		// form post, which must reach the client's redirect URI.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src "+img+"; frame-ancestors 'none'; base-uri 'none'")
	} else {
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	}
	for k, v := range s.opts.Headers {
		h[k] = v
	}
}

func (s *Server) pageHeaders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.securityHeaders(w.Header(), true)
		next(w, r)
	}
}

func (s *Server) apiHeaders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.securityHeaders(w.Header(), false)
		next(w, r)
	}
}

// cors allows configured origins (web.allowedOrigins) to call the JSON
// endpoints from a browser; "*" allows any.
func (s *Server) cors(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && len(s.opts.AllowedOrigins) > 0 {
			if slices.Contains(s.opts.AllowedOrigins, "*") || slices.Contains(s.opts.AllowedOrigins, origin) {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Add("Vary", "Origin")
				if r.Method == http.MethodOptions {
					w.Header().Set("Access-Control-Allow-Headers", strings.Join(s.opts.AllowedHeaders, ", "))
					w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				}
			}
		}
		next(w, r)
	}
}

func levelForStatus(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
