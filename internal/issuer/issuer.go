// Package issuer implements the OpenID Connect provider: discovery, JWKS,
// the authorization endpoint with connector login, the token endpoint
// (authorization_code with PKCE, refresh_token with rotation, device_code,
// password, token exchange (RFC 8693)), userinfo, revocation (RFC 7009), introspection (RFC 7662) and
// the device authorization grant (RFC 8628).
//
// Paths are Dex's, under the issuer URL's path, so kube-apiserver and
// kubelogin settings written for Dex keep working.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// Grant types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	GrantPassword          = "password"
)

// SupportedGrantTypes are the grants gatehouse implements.
var SupportedGrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode, GrantPassword, GrantTokenExchange}

// Client is an OAuth 2.0 client (Dex's staticClients).
type Client struct {
	ID           string
	Secret       string // empty for public clients
	Name         string
	RedirectURIs []string
	Public       bool
	TrustedPeers []string
	LogoURL      string
	// AllowedConnectors restricts the connectors this client may use
	// (empty: all). Checked on every grant.
	AllowedConnectors []string
	// AllowedGrantTypes restricts the grants (empty: the server's).
	AllowedGrantTypes []string
}

// Connector is a configured connector with its id and display name.
type Connector struct {
	ID   string
	Type string
	Name string
	// Impl implements one or more of connector.PasswordConnector,
	// connector.CallbackConnector, connector.RefreshConnector,
	// connector.TokenIdentityConnector.
	Impl any
	// ExchangeOnly: the connector serves the token exchange grant only (an
	// oidc connector without clientID, for CI workload tokens). It is not
	// offered on the login page and cannot be used to log in.
	ExchangeOnly bool
}

// Expiry holds token and request lifetimes (Dex's expiry section).
type Expiry struct {
	IDTokens       time.Duration
	AuthRequests   time.Duration
	DeviceRequests time.Duration
	AuthCodes      time.Duration
	// Refresh tokens.
	RefreshReuseInterval   time.Duration
	RefreshValidIfNotUsed  time.Duration // 0: no idle limit
	RefreshAbsoluteLife    time.Duration // 0: no absolute limit
	RefreshDisableRotation bool
}

// Options configure the issuer.
type Options struct {
	// Issuer is the issuer URL, possibly with a path (https://host/dex).
	Issuer     string
	Storage    storage.Storage
	Keys       *keys.Manager
	Clients    []Client
	Connectors []Connector

	SkipApprovalScreen    bool
	AlwaysShowLoginScreen bool
	// PasswordConnector is the connector id used by the password grant
	// (empty: the password grant is off).
	PasswordConnector string
	// GrantTypes the server allows (empty: all supported, with the
	// password grant only when PasswordConnector is set; token exchange
	// included, as Dex does).
	GrantTypes []string
	// AllowPlainPKCE accepts code_challenge_method=plain (off by default).
	AllowPlainPKCE bool
	Expiry         Expiry
	// AllowedOrigins for CORS on discovery, keys, token and userinfo.
	AllowedOrigins []string
	// AllowedHeaders for CORS preflight (default: Authorization).
	AllowedHeaders []string
	// Headers replace gatehouse's own security headers of the same name
	// (Dex's web.headers).
	Headers http.Header
	// ClientIPHeader and TrustedProxies are web.clientRemoteIP: the
	// client's address is taken from ClientIPHeader when the TCP peer is
	// one of TrustedProxies (see TrustedProxyIP), else it is the peer.
	// Without trusted proxies, the first request that looks proxied
	// (private peer, forwarding headers) logs a warning.
	ClientIPHeader string
	TrustedProxies []netip.Prefix
	// ClientIP, when set, replaces the above (tests).
	ClientIP func(*http.Request) string

	Web *web.Renderer

	Logger  *slog.Logger
	Metrics *Metrics
	// LoginLimits rate-limit login attempts; zero values take defaults.
	LoginLimits LoginLimits
	// TokenConcurrency bounds the token requests worked on at once; the
	// rest wait their turn in arrival order (see admit). 0 means twice
	// GOMAXPROCS.
	TokenConcurrency int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the OIDC endpoints.
type Server struct {
	opts       Options
	issuerURL  *url.URL
	prefix     string // issuer path without trailing slash, "" for root
	clients    map[string]*Client
	connectors map[string]*Connector
	connOrder  []string
	grants     map[string]bool
	limiter    *loginLimiter
	log        *slog.Logger
	now        func() time.Time
	handler    http.Handler
	tokenSlots chan struct{} // see admit
	proxies    *proxyWatch   // nil when Options.ClientIP was given
}

// New validates opts and returns a server.
func New(opts Options) (*Server, error) {
	u, err := url.Parse(opts.Issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("issuer: %q is not an absolute URL", opts.Issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("issuer: %q must not have a query or fragment", opts.Issuer)
	}
	if opts.Storage == nil || opts.Keys == nil {
		return nil, errors.New("issuer: storage and keys are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var watch *proxyWatch
	if opts.ClientIP == nil {
		opts.ClientIP = TrustedProxyIP(opts.ClientIPHeader, opts.TrustedProxies)
		watch = &proxyWatch{header: opts.ClientIPHeader, trusted: opts.TrustedProxies, log: opts.Logger}
	}
	if len(opts.AllowedHeaders) == 0 {
		opts.AllowedHeaders = []string{"Authorization"}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if opts.Web == nil {
		r, err := web.New(web.Options{})
		if err != nil {
			return nil, err
		}
		opts.Web = r
	}
	setDefaultExpiry(&opts.Expiry)

	s := &Server{
		opts:       opts,
		issuerURL:  u,
		prefix:     strings.TrimSuffix(u.Path, "/"),
		clients:    map[string]*Client{},
		connectors: map[string]*Connector{},
		grants:     map[string]bool{},
		log:        opts.Logger,
		now:        opts.Now,
		proxies:    watch,
	}
	for i := range opts.Clients {
		c := &opts.Clients[i]
		if c.ID == "" {
			return nil, fmt.Errorf("issuer: staticClients[%d]: id is empty", i)
		}
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("issuer: staticClients[%d]: duplicate client id %q", i, c.ID)
		}
		if !c.Public && c.Secret == "" {
			return nil, fmt.Errorf("issuer: staticClients[%d] (%s): a confidential client needs a secret (or set public: true)", i, c.ID)
		}
		s.clients[c.ID] = c
	}
	for i := range opts.Connectors {
		c := &opts.Connectors[i]
		if _, dup := s.connectors[c.ID]; dup {
			return nil, fmt.Errorf("issuer: connectors[%d]: duplicate connector id %q", i, c.ID)
		}
		switch c.Impl.(type) {
		case connector.PasswordConnector, connector.CallbackConnector:
		case connector.TokenIdentityConnector:
			if !c.ExchangeOnly {
				return nil, fmt.Errorf("issuer: connectors[%d] (%s): connector implements no login method", i, c.ID)
			}
		default:
			return nil, fmt.Errorf("issuer: connectors[%d] (%s): connector implements no login method", i, c.ID)
		}
		s.connectors[c.ID] = c
		s.connOrder = append(s.connOrder, c.ID)
	}
	if opts.PasswordConnector != "" {
		c, ok := s.connectors[opts.PasswordConnector]
		if !ok {
			return nil, fmt.Errorf("issuer: oauth2.passwordConnector: no connector with id %q", opts.PasswordConnector)
		}
		if _, ok := c.Impl.(connector.PasswordConnector); !ok {
			return nil, fmt.Errorf("issuer: oauth2.passwordConnector: connector %q does not take passwords", opts.PasswordConnector)
		}
	}
	grants := opts.GrantTypes
	if len(grants) == 0 {
		grants = []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode, GrantTokenExchange}
		if opts.PasswordConnector != "" {
			grants = append(grants, GrantPassword)
		}
	}
	for _, g := range grants {
		if !slices.Contains(SupportedGrantTypes, g) {
			return nil, fmt.Errorf("issuer: oauth2.grantTypes: %q is not supported (supported: %s)", g, strings.Join(SupportedGrantTypes, ", "))
		}
		if g == GrantPassword && opts.PasswordConnector == "" {
			return nil, errors.New("issuer: oauth2.grantTypes: the password grant needs oauth2.passwordConnector")
		}
		s.grants[g] = true
	}
	s.limiter = newLoginLimiter(opts.LoginLimits, opts.Now)
	n := opts.TokenConcurrency
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	s.tokenSlots = make(chan struct{}, n)
	s.handler = s.routes()
	return s, nil
}

func setDefaultExpiry(e *Expiry) {
	if e.IDTokens <= 0 {
		e.IDTokens = 24 * time.Hour
	}
	if e.AuthRequests <= 0 {
		e.AuthRequests = 24 * time.Hour
	}
	if e.DeviceRequests <= 0 {
		e.DeviceRequests = 5 * time.Minute
	}
	if e.AuthCodes <= 0 {
		e.AuthCodes = 10 * time.Minute
	}
	if e.RefreshReuseInterval < 0 {
		e.RefreshReuseInterval = 0
	}
}

// ServeHTTP serves every endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// absURL returns the absolute URL of a path under the issuer.
func (s *Server) absURL(p string) string {
	return strings.TrimSuffix(s.opts.Issuer, "/") + p
}

// path returns a mux pattern path under the issuer path.
func (s *Server) path(p string) string { return s.prefix + p }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, name string, h http.HandlerFunc) {
		method, p, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+s.path(p), s.instrument(name, h))
	}
	for _, p := range []string{"/.well-known/openid-configuration", "/keys", "/token", "/userinfo"} {
		handle("OPTIONS "+p, "cors_preflight", s.cors(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	}
	handle("GET /.well-known/openid-configuration", "discovery", s.cors(s.handleDiscovery))
	handle("GET /keys", "keys", s.cors(s.handleKeys))
	handle("GET /auth", "auth", s.pageHeaders(s.handleAuth))
	handle("POST /auth", "auth", s.pageHeaders(s.handleAuth))
	handle("GET /auth/{connector}", "auth_connector", s.pageHeaders(s.handleConnectorLogin))
	handle("POST /auth/{connector}/login", "auth_password", s.pageHeaders(s.handlePasswordLogin))
	handle("GET /callback", "callback", s.pageHeaders(s.handleCallback))
	handle("GET /callback/{connector}", "callback", s.pageHeaders(s.handleCallback))
	handle("POST /approval", "approval", s.pageHeaders(s.handleApproval))
	handle("POST /token", "token", s.apiHeaders(s.cors(s.handleToken)))
	handle("GET /userinfo", "userinfo", s.apiHeaders(s.cors(s.handleUserinfo)))
	handle("POST /userinfo", "userinfo", s.apiHeaders(s.cors(s.handleUserinfo)))
	handle("POST /token/revoke", "revoke", s.apiHeaders(s.handleRevoke))
	handle("POST /token/introspect", "introspect", s.apiHeaders(s.handleIntrospect))
	handle("POST /device/code", "device_code", s.apiHeaders(s.handleDeviceCode))
	handle("GET /device", "device", s.pageHeaders(s.handleDevicePage))
	handle("POST /device", "device", s.pageHeaders(s.handleDeviceSubmit))
	handle("GET /healthz", "healthz", s.handleHealthz)
	handle("GET /healthz/ready", "ready", s.handleReady)
	mux.Handle("GET "+s.path("/static/"), http.StripPrefix(s.path("/static/"), s.opts.Web.StaticHandler()))
	for _, p := range []string{"/token", "/token/revoke", "/token/introspect", "/device/code"} {
		mux.Handle(s.path(p), s.instrument("method_not_allowed", s.apiHeaders(methodNotAllowed("POST"))))
	}
	if s.prefix != "" {
		mux.HandleFunc("GET /healthz", s.handleHealthz)
		mux.HandleFunc("GET /healthz/ready", s.handleReady)
	}
	var h http.Handler = mux
	if s.proxies != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.proxies.check(r)
			mux.ServeHTTP(w, r)
		})
	}
	return requestID(s.recoverPanics(h))
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeOAuthError(w, http.StatusMethodNotAllowed, errInvalidRequest, "use "+allow)
	}
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// handleReady answers 200 only when storage answers and keys are loaded.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.opts.Storage.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "storage not ready")
		return
	}
	if !s.opts.Keys.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "signing keys not ready")
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Ready reports whether the issuer can serve tokens.
func (s *Server) Ready(ctx context.Context) bool {
	return s.opts.Storage.Ping(ctx) == nil && s.opts.Keys.Ready()
}

// clientAllowsConnector checks a client's connector restriction.
func clientAllowsConnector(c *Client, connID string) bool {
	return len(c.AllowedConnectors) == 0 || slices.Contains(c.AllowedConnectors, connID)
}

// grantAllowed checks both the server's and the client's grant types.
func (s *Server) grantAllowed(c *Client, grant string) bool {
	if !s.grants[grant] {
		return false
	}
	return len(c.AllowedGrantTypes) == 0 || slices.Contains(c.AllowedGrantTypes, grant)
}

// connectorsFor lists the connectors a client may log in through, in
// config order.
func (s *Server) connectorsFor(c *Client) []*Connector {
	var out []*Connector
	for _, id := range s.connOrder {
		if clientAllowsConnector(c, id) && !s.connectors[id].ExchangeOnly {
			out = append(out, s.connectors[id])
		}
	}
	return out
}
