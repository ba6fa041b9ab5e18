package issuer

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

const (
	redirectOOB         = "urn:ietf:wg:oauth:2.0:oob"
	lastConnectorCookie = "gatehouse_connector"
)

// pkceChallenge is RFC 7636 4.2's code_challenge syntax.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authError is an authorization error that can be sent to a validated
// redirect URI (RFC 6749 4.1.2.1).
type authError struct {
	code, description string
}

// handleAuth is the authorization endpoint.
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	s.startAuth(w, r, "")
}

// startAuth validates an authorization request, stores it, binds it to
// the browser and sends the browser to a connector: the one named by
// connectorID (Dex's direct link /auth/{connector}?client_id=...), else
// by connector_id, else the only one or the user's choice. Until
// client_id and redirect_uri are validated, errors are shown on a page:
// sending them to an unvalidated redirect URI would make the issuer an
// open redirector.
func (s *Server) startAuth(w http.ResponseWriter, r *http.Request, connectorID string) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The login request could not be read.")
		return
	}
	q := r.Form
	for k, v := range q {
		if len(v) > 1 {
			s.renderError(w, r, http.StatusBadRequest, "Bad request", "The parameter "+k+" appears more than once.")
			return
		}
	}
	clientID := q.Get("client_id")
	client, ok := s.clients[clientID]
	if !ok {
		s.renderError(w, r, http.StatusBadRequest, "Unknown client", "The application that sent you here is not registered with this issuer (unknown client_id). Ask its administrator to add it to staticClients.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	// The device flow's own callback is gatehouse's, never a client's: a
	// request naming it (a public client's loopback default would let
	// http://127.0.0.1/dex/device/callback through on a loopback issuer)
	// could approve someone's device code with the attacker's login.
	if !redirectURIAllowed(client, redirectURI) || redirectURI == s.absURL("/device/callback") {
		s.renderError(w, r, http.StatusBadRequest, "Unregistered redirect URI", "The application asked to return to an address that is not registered for it. Ask its administrator to add the exact redirect URI to the client's redirectURIs.")
		return
	}
	state := q.Get("state")
	redirectErr := func(e authError) {
		s.redirectWithError(w, r, redirectURI, state, e)
	}

	if q.Get("request") != "" {
		redirectErr(authError{errRequestNotSupported, "request objects are not supported"})
		return
	}
	if q.Get("request_uri") != "" {
		redirectErr(authError{errRequestURINotSupported, "request_uri is not supported"})
		return
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			redirectErr(authError{errInvalidRequest, "response_type is required"})
		} else {
			redirectErr(authError{errUnsupportedResponseType, "only response_type=code is supported"})
		}
		return
	}
	if !s.grantAllowed(client, GrantAuthorizationCode) {
		redirectErr(authError{errUnauthorizedClient, "this client may not use the authorization code grant"})
		return
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		redirectErr(authError{errInvalidRequest, "only response_mode=query is supported"})
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if e := s.validateScopes(client, scopes); e != nil {
		redirectErr(*e)
		return
	}
	pkce, e := s.validatePKCE(client, q.Get("code_challenge"), q.Get("code_challenge_method"))
	if e != nil {
		redirectErr(*e)
		return
	}
	prompt := strings.Fields(q.Get("prompt"))
	for _, p := range prompt {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, p) {
			redirectErr(authError{errInvalidRequest, "unknown prompt value " + strconv.Quote(p)})
			return
		}
	}
	if slices.Contains(prompt, "none") {
		if len(prompt) > 1 {
			redirectErr(authError{errInvalidRequest, "prompt=none cannot be combined with other values"})
			return
		}
		// gatehouse keeps no login session of its own: every login goes
		// through a connector, so it can never complete without the user.
		redirectErr(authError{errLoginRequired, "interactive login is required"})
		return
	}
	maxAge := -1
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			redirectErr(authError{errInvalidRequest, "max_age must be a non-negative integer"})
			return
		}
		maxAge = n
	}
	if len(q.Get("nonce")) > 512 || len(state) > 2048 {
		redirectErr(authError{errInvalidRequest, "nonce or state is too long"})
		return
	}
	if c := q.Get("connector_id"); connectorID != "" && c != "" && c != connectorID {
		// As Dex: a direct link and its connector_id must agree.
		redirectErr(authError{errInvalidRequest, "connector_id " + strconv.Quote(c) + " does not match the connector in the path"})
		return
	}

	req := storage.AuthRequest{
		ID:            randomToken(24),
		ClientID:      client.ID,
		ResponseTypes: []string{"code"},
		Scopes:        scopes,
		RedirectURI:   redirectURI,
		Nonce:         q.Get("nonce"),
		State:         state,
		PKCE:          pkce,
		Prompt:        strings.Join(prompt, " "),
		MaxAge:        maxAge,
		HMACKey:       []byte(randomToken(32)),
		ClientIP:      s.opts.ClientIP(r),
		Expiry:        s.now().Add(s.opts.Expiry.AuthRequests),
	}
	if err := s.opts.Storage.CreateAuthRequest(r.Context(), req); err != nil {
		s.log.Error("create auth request", "err", err)
		redirectErr(authError{errServerError, "could not start the login"})
		return
	}
	s.bindToBrowser(w, req)
	if connectorID == "" {
		connectorID = q.Get("connector_id")
	}
	s.chooseConnector(w, r, client, req, connectorID)
}

// chooseConnector sends the browser to the only connector, to the one
// named by connector_id, or shows the choice.
func (s *Server) chooseConnector(w http.ResponseWriter, r *http.Request, client *Client, req storage.AuthRequest, connectorID string) {
	allowed := s.connectorsFor(client)
	if connectorID != "" {
		if c, ok := s.connectors[connectorID]; !ok || c.ExchangeOnly || !clientAllowsConnector(client, connectorID) {
			s.renderError(w, r, http.StatusBadRequest, "Login method not available", "The login method "+strconv.Quote(connectorID)+" does not exist or is not allowed for this application.")
			return
		}
		http.Redirect(w, r, s.connectorURL(connectorID, req.ID), http.StatusFound)
		return
	}
	if len(allowed) == 0 {
		s.renderError(w, r, http.StatusForbidden, "No login method", "No login method is configured for this application.")
		return
	}
	prompt := strings.Fields(req.Prompt)
	if len(allowed) == 1 && !s.opts.AlwaysShowLoginScreen && !slices.Contains(prompt, "select_account") {
		http.Redirect(w, r, s.connectorURL(allowed[0].ID, req.ID), http.StatusFound)
		return
	}
	last := ""
	if c, err := r.Cookie(lastConnectorCookie); err == nil {
		last = c.Value
	}
	data := web.LoginData{Client: client.Name}
	for _, c := range allowed {
		data.Connectors = append(data.Connectors, web.ConnectorLink{
			ID: c.ID, Name: c.Name, Type: c.Type, URL: s.connectorURL(c.ID, req.ID), LastUsed: c.ID == last,
			Unavailable: !connector.Available(c.Impl),
		})
	}
	// The last choice goes first.
	slices.SortStableFunc(data.Connectors, func(a, b web.ConnectorLink) int {
		switch {
		case a.LastUsed && !b.LastUsed:
			return -1
		case b.LastUsed && !a.LastUsed:
			return 1
		}
		return 0
	})
	s.render(w, http.StatusOK, web.PageLogin, "Log in", data)
}

func (s *Server) connectorURL(connID, reqID string) string {
	return s.path("/auth/"+url.PathEscape(connID)) + "?req=" + url.QueryEscape(reqID)
}

// loadBoundRequest loads the auth request named by the request and checks
// that this browser started it.
func (s *Server) loadBoundRequest(w http.ResponseWriter, r *http.Request, reqID string) (storage.AuthRequest, bool) {
	if reqID == "" {
		s.renderError(w, r, http.StatusBadRequest, "Login expired", "This login link is incomplete. Start again from your application.")
		return storage.AuthRequest{}, false
	}
	req, err := s.opts.Storage.GetAuthRequest(r.Context(), reqID)
	if errors.Is(err, storage.ErrNotFound) {
		s.renderError(w, r, http.StatusBadRequest, "Login expired", "This login has expired or was already used. Start again from your application (for kubectl: run your command again).")
		return storage.AuthRequest{}, false
	}
	if err != nil {
		s.log.Error("load auth request", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Try again", "The login could not be loaded. Try again in a moment.")
		return storage.AuthRequest{}, false
	}
	if !s.browserBound(r, req) {
		s.opts.Metrics.loginsFailed.WithLabelValues("csrf").Inc()
		s.renderError(w, r, http.StatusForbidden, "Login started elsewhere", "This login was started in another browser or its cookie is missing. Start again from your application in this browser.")
		return storage.AuthRequest{}, false
	}
	return req, true
}

// handleConnectorLogin starts a login at one connector. Without req (the
// auth request gatehouse's own pages link to) but with client_id, it is
// Dex's direct connector link, an authorization request sent straight to
// the connector's path: it is validated as at /auth and goes to this
// connector.
func (s *Server) handleConnectorLogin(w http.ResponseWriter, r *http.Request) {
	connID := r.PathValue("connector")
	if q := r.URL.Query(); !q.Has("req") && q.Has("client_id") {
		s.startAuth(w, r, connID)
		return
	}
	req, ok := s.loadBoundRequest(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	conn, exists := s.connectors[connID]
	client := s.clients[req.ClientID]
	if !exists || conn.ExchangeOnly || client == nil || !clientAllowsConnector(client, connID) {
		s.renderError(w, r, http.StatusBadRequest, "Login method not available", "This login method does not exist or is not allowed for this application.")
		return
	}
	if req.LoggedIn {
		s.renderError(w, r, http.StatusBadRequest, "Already logged in", "This login is already complete. Start again from your application.")
		return
	}
	s.rememberConnector(w, connID)
	switch impl := conn.Impl.(type) {
	case connector.CallbackConnector:
		callback := s.absURL("/callback")
		loginURL, connData, err := impl.LoginURL(r.Context(), s.scopes(req.Scopes), callback, req.ID)
		if err != nil {
			s.connectorError(w, r, req, conn, err)
			return
		}
		err = s.opts.Storage.UpdateAuthRequest(r.Context(), req.ID, func(a storage.AuthRequest) (storage.AuthRequest, error) {
			a.ConnectorID = connID
			a.ConnectorData = connData
			return a, nil
		})
		if err != nil {
			s.log.Error("update auth request", "err", err)
			s.renderError(w, r, http.StatusServiceUnavailable, "Try again", "The login could not be saved. Try again in a moment.")
			return
		}
		http.Redirect(w, r, loginURL, http.StatusFound)
	case connector.PasswordConnector:
		err := s.opts.Storage.UpdateAuthRequest(r.Context(), req.ID, func(a storage.AuthRequest) (storage.AuthRequest, error) {
			a.ConnectorID = connID
			return a, nil
		})
		if err != nil {
			s.log.Error("update auth request", "err", err)
			s.renderError(w, r, http.StatusServiceUnavailable, "Try again", "The login could not be saved. Try again in a moment.")
			return
		}
		s.renderPassword(w, http.StatusOK, conn, impl, req, "", "")
	default:
		s.renderError(w, r, http.StatusBadRequest, "Login method not available", "This login method cannot be used from a browser.")
	}
}

func (s *Server) renderPassword(w http.ResponseWriter, status int, conn *Connector, pc connector.PasswordConnector, req storage.AuthRequest, username, errMsg string) {
	back := ""
	if client := s.clients[req.ClientID]; client != nil && len(s.connectorsFor(client)) > 1 {
		back = s.path("/auth") + "?" + url.Values{
			"client_id": {req.ClientID}, "redirect_uri": {req.RedirectURI}, "response_type": {"code"},
			"scope": {strings.Join(req.Scopes, " ")}, "state": {req.State}, "nonce": {req.Nonce},
			"code_challenge": {req.PKCE.CodeChallenge}, "code_challenge_method": {req.PKCE.CodeChallengeMethod},
		}.Encode()
		if req.RedirectURI == s.absURL("/device/callback") {
			back = ""
		}
	}
	s.render(w, status, web.PagePassword, "Log in", web.PasswordData{
		PostURL: s.path("/auth/" + url.PathEscape(conn.ID) + "/login"),
		Prompt:  pc.Prompt(), Username: username, Error: errMsg,
		ReqID: req.ID, HMAC: formHMAC(req.HMACKey, "password:"+req.ID), BackURL: back,
	})
}

// handlePasswordLogin checks a username and password typed on our page.
func (s *Server) handlePasswordLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The login form could not be read.")
		return
	}
	connID := r.PathValue("connector")
	req, ok := s.loadBoundRequest(w, r, r.PostForm.Get("req"))
	if !ok {
		return
	}
	if !checkFormHMAC(req.HMACKey, "password:"+req.ID, r.PostForm.Get("hmac")) {
		s.opts.Metrics.loginsFailed.WithLabelValues("csrf").Inc()
		s.renderError(w, r, http.StatusForbidden, "Login form expired", "This form does not belong to the current login. Start again from your application.")
		return
	}
	conn, exists := s.connectors[connID]
	pc, isPassword := conn.implPassword()
	client := s.clients[req.ClientID]
	if !exists || !isPassword || client == nil || !clientAllowsConnector(client, connID) || req.ConnectorID != connID {
		s.renderError(w, r, http.StatusBadRequest, "Login method not available", "This login method is not allowed for this login.")
		return
	}
	if req.LoggedIn {
		s.renderError(w, r, http.StatusBadRequest, "Already logged in", "This login is already complete. Start again from your application.")
		return
	}
	username := r.PostForm.Get("login")
	password := r.PostForm.Get("password")
	att, wait, err := s.limiter.begin(r.Context(), userKey(connID, username), ipKey(s.opts.ClientIP(r)))
	if err != nil {
		return // the browser went away while waiting
	}
	if att == nil {
		s.opts.Metrics.loginsFailed.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", formatSeconds(wait))
		s.renderError(w, r, http.StatusTooManyRequests, "Too many attempts", "Too many failed logins. Wait "+formatSeconds(wait)+" seconds and try again.")
		return
	}
	defer att.end(false)
	ident, valid, err := pc.Login(r.Context(), s.scopes(req.Scopes), username, password)
	if err != nil {
		s.connectorError(w, r, req, conn, err)
		return
	}
	if !valid {
		att.end(true)
		s.opts.Metrics.loginsFailed.WithLabelValues("invalid_credentials").Inc()
		s.log.Info("login failed", "connector", connID, "username", username, "remote", s.opts.ClientIP(r), "reason", "invalid_credentials")
		s.renderPassword(w, http.StatusUnauthorized, conn, pc, req, username, "Invalid username or password.")
		return
	}
	s.finishLogin(w, r, req, connID, ident)
}

func (c *Connector) implPassword() (connector.PasswordConnector, bool) {
	if c == nil {
		return nil, false
	}
	pc, ok := c.Impl.(connector.PasswordConnector)
	return pc, ok
}

// handleCallback completes a login at a callback connector (GitHub,
// upstream OIDC). The state parameter is the auth request id.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, ok := s.loadBoundRequest(w, r, q.Get("state"))
	if !ok {
		return
	}
	conn := s.connectors[req.ConnectorID]
	if p := r.PathValue("connector"); p != "" && p != req.ConnectorID {
		conn = nil
	}
	cc, isCallback := conn.implCallback()
	if !isCallback || req.LoggedIn {
		s.renderError(w, r, http.StatusBadRequest, "Unexpected callback", "This login did not expect a reply from that identity provider. Start again from your application.")
		return
	}
	// An error= from upstream (the user cancelled, the provider refused)
	// is the connector's to explain: it answers with a UserError.
	ident, err := cc.HandleCallback(r.Context(), s.scopes(req.Scopes), req.ConnectorData, r)
	if err != nil {
		s.connectorError(w, r, req, conn, err)
		return
	}
	s.finishLogin(w, r, req, conn.ID, ident)
}

func (c *Connector) implCallback() (connector.CallbackConnector, bool) {
	if c == nil {
		return nil, false
	}
	cc, ok := c.Impl.(connector.CallbackConnector)
	return cc, ok
}

// refusal is how a login ends when its connector refuses or fails: the
// error for the client (RFC 6749 4.1.2.1) and the page for the browser
// when the client cannot be told.
type refusal struct {
	oauth           authError
	status          int
	heading, detail string
	retryAfter      time.Duration
}

// connectorError ends a login its connector refused (a UserError: not in
// an allowed org, cancelled upstream, rate limited) or failed (any other
// error; the details go to the log only). See endLogin.
func (s *Server) connectorError(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, conn *Connector, err error) {
	rid := requestIDFrom(r.Context())
	if ue, ok := connector.AsUserError(err); ok {
		reason := ue.Reason
		if reason == "" {
			reason = "denied"
		}
		s.opts.Metrics.loginsFailed.WithLabelValues(reason).Inc()
		s.log.Info("login refused by connector", "connector", conn.ID, "reason", reason, "client_id", req.ClientID, "err", ue.Err, "request_id", rid)
		status := ue.Status
		if status < 400 || status > 599 {
			status = http.StatusForbidden
		}
		desc := ue.Description
		if desc == "" {
			desc = ue.Title
		}
		s.endLogin(w, r, req, refusal{
			oauth:  authError{oauthCodeForStatus(status), desc},
			status: status, heading: ue.Title, detail: ue.Message, retryAfter: ue.RetryAfter,
		})
		return
	}
	s.opts.Metrics.loginsFailed.WithLabelValues("connector_error").Inc()
	s.log.Error("connector failed", "connector", conn.ID, "client_id", req.ClientID, "err", err, "request_id", rid)
	s.endLogin(w, r, req, refusal{
		oauth:  authError{errServerError, "logging in with " + conn.Name + " failed; tell your administrator request ID " + rid},
		status: http.StatusBadGateway, heading: "Login failed",
		detail: "Logging in with " + conn.Name + " failed. Try again; if it keeps failing, tell your administrator the request ID below.",
	})
}

// oauthCodeForStatus picks the RFC 6749 4.1.2.1 error for a refusal's
// HTTP status: a person refused (403, 401, 400) is access_denied; a
// provider that is busy or down (429, 503) is temporarily_unavailable;
// anything else that failed is server_error.
func oauthCodeForStatus(status int) string {
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return errTemporarilyUnavailable
	case status >= 500:
		return errServerError
	default:
		return errAccessDenied
	}
}

// endLogin ends a login at once with an error, so that the application
// waiting for it (kubectl's loopback listener, a web app) hears why instead
// of timing out. The auth request is consumed. The client's redirect URI
// gets the error with state and iss (RFC 6749 4.1.2.1, RFC 9207) when it
// can be trusted: the client is still registered and the URI still
// allowed for it. Otherwise (and for the out-of-band URN) the browser gets
// the explanatory page. A device login marks its device code denied, so
// the device's next poll gets access_denied with the same reason.
func (s *Server) endLogin(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, f refusal) {
	if err := s.opts.Storage.DeleteAuthRequest(r.Context(), req.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Error("delete auth request", "err", err)
	}
	s.clearBinding(w, req)
	page := func() {
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", formatSeconds(f.retryAfter))
		}
		s.renderError(w, r, f.status, f.heading, f.detail)
	}
	if req.RedirectURI == s.absURL("/device/callback") {
		s.refuseDevice(r, req, f.oauth.description)
		page()
		return
	}
	client := s.clients[req.ClientID]
	if client == nil || req.RedirectURI == redirectOOB || !redirectURIAllowed(client, req.RedirectURI) {
		page()
		return
	}
	s.redirectWithError(w, r, req.RedirectURI, req.State, f.oauth)
}

// finishLogin records the identity on the auth request and goes on to
// approval or straight to the code.
func (s *Server) finishLogin(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, connID string, ident connector.Identity) {
	now := s.now()
	updated, err := s.updateAuthRequest(r, req.ID, func(a storage.AuthRequest) (storage.AuthRequest, error) {
		if a.LoggedIn {
			return a, errAlreadyLoggedIn
		}
		a.LoggedIn = true
		a.ConnectorID = connID
		a.Claims = claimsFromIdentity(ident)
		a.ConnectorData = ident.ConnectorData
		a.AuthTime = now
		return a, nil
	})
	if errors.Is(err, errAlreadyLoggedIn) {
		s.renderError(w, r, http.StatusBadRequest, "Already logged in", "This login is already complete. Start again from your application.")
		return
	}
	if err != nil {
		s.log.Error("update auth request", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Try again", "The login could not be saved. Try again in a moment.")
		return
	}
	s.log.Info("login succeeded", "connector", connID, "user_id", ident.UserID, "username", ident.PreferredUsername, "client_id", req.ClientID, "remote", s.opts.ClientIP(r))
	if s.needsApproval(updated) {
		client := s.clients[updated.ClientID]
		s.render(w, http.StatusOK, web.PageApproval, "Grant access", web.ApprovalData{
			PostURL: s.path("/approval"), Client: clientDisplayName(client), Scopes: describeScopes(updated.Scopes),
			ReqID: updated.ID, HMAC: formHMAC(updated.HMACKey, "approval:"+updated.ID),
		})
		return
	}
	s.completeAuthRequest(w, r, updated)
}

var errAlreadyLoggedIn = errors.New("auth request already logged in")

func (s *Server) updateAuthRequest(r *http.Request, id string, f func(storage.AuthRequest) (storage.AuthRequest, error)) (storage.AuthRequest, error) {
	var out storage.AuthRequest
	err := s.opts.Storage.UpdateAuthRequest(r.Context(), id, func(a storage.AuthRequest) (storage.AuthRequest, error) {
		n, err := f(a)
		out = n
		return n, err
	})
	return out, err
}

func (s *Server) needsApproval(req storage.AuthRequest) bool {
	if slices.Contains(strings.Fields(req.Prompt), "consent") {
		return true
	}
	return !s.opts.SkipApprovalScreen
}

func clientDisplayName(c *Client) string {
	if c == nil {
		return "An application"
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func describeScopes(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		switch {
		case sc == scopeOpenID:
		case sc == scopeProfile:
			out = append(out, "View your name and username")
		case sc == scopeEmail:
			out = append(out, "View your email address")
		case sc == scopeGroups:
			out = append(out, "View your groups (teams)")
		case sc == scopeOfflineAccess:
			out = append(out, "Stay logged in (refresh tokens)")
		case sc == scopeFederatedID:
			out = append(out, "View your upstream identity")
		case strings.HasPrefix(sc, scopeCrossClient):
			out = append(out, "Get tokens for "+strings.TrimPrefix(sc, scopeCrossClient))
		}
	}
	if len(out) == 0 {
		out = append(out, "Confirm your identity")
	}
	return out
}

// handleApproval takes the consent form.
func (s *Server) handleApproval(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	req, ok := s.loadBoundRequest(w, r, r.PostForm.Get("req"))
	if !ok {
		return
	}
	if !checkFormHMAC(req.HMACKey, "approval:"+req.ID, r.PostForm.Get("hmac")) || !req.LoggedIn {
		s.opts.Metrics.loginsFailed.WithLabelValues("csrf").Inc()
		s.renderError(w, r, http.StatusForbidden, "Approval expired", "This approval does not belong to a completed login. Start again from your application.")
		return
	}
	if r.PostForm.Get("approval") != "approve" {
		_ = s.opts.Storage.DeleteAuthRequest(r.Context(), req.ID)
		if req.RedirectURI == s.absURL("/device/callback") {
			s.denyDevice(w, r, req)
			return
		}
		s.redirectWithError(w, r, req.RedirectURI, req.State, authError{errAccessDenied, "the user denied access"})
		return
	}
	s.completeAuthRequest(w, r, req)
}

// completeAuthRequest turns a logged-in auth request into a code (or a
// device approval) and sends the browser on.
func (s *Server) completeAuthRequest(w http.ResponseWriter, r *http.Request, req storage.AuthRequest) {
	// The request is consumed first: a second completion finds nothing.
	if err := s.opts.Storage.DeleteAuthRequest(r.Context(), req.ID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.renderError(w, r, http.StatusBadRequest, "Login expired", "This login was already used. Start again from your application.")
			return
		}
		s.log.Error("delete auth request", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Try again", "The login could not be completed. Try again in a moment.")
		return
	}
	s.clearBinding(w, req)
	if req.RedirectURI == s.absURL("/device/callback") {
		s.approveDevice(w, r, req)
		return
	}
	code := randomToken(32)
	ac := storage.AuthCode{
		ID: sha256Hex(code), ClientID: req.ClientID, RedirectURI: req.RedirectURI, Nonce: req.Nonce,
		Scopes: req.Scopes, PKCE: req.PKCE, ConnectorID: req.ConnectorID, ConnectorData: req.ConnectorData,
		Claims: req.Claims, AuthTime: req.AuthTime, Expiry: s.now().Add(s.opts.Expiry.AuthCodes),
	}
	if req.MaxAge >= 0 {
		// Remember that auth_time must be in the ID token (OIDC Core 3.1.2.1).
		ac.Scopes = append(slices.Clone(req.Scopes), internalScopeAuthTime)
	}
	if err := s.opts.Storage.CreateAuthCode(r.Context(), ac); err != nil {
		s.log.Error("create auth code", "err", err)
		s.redirectWithError(w, r, req.RedirectURI, req.State, authError{errServerError, "could not issue a code"})
		return
	}
	if req.RedirectURI == redirectOOB {
		s.render(w, http.StatusOK, web.PageOOB, "Your code", web.OOBData{Code: code})
		return
	}
	v := url.Values{"code": {code}}
	if req.State != "" {
		v.Set("state", req.State)
	}
	v.Set("iss", s.opts.Issuer) // RFC 9207
	http.Redirect(w, r, withQuery(req.RedirectURI, v), http.StatusSeeOther)
}

// internalScopeAuthTime marks, inside a stored code's scopes, that the
// request had max_age; splitAuthTimeScope removes it before any use.
const internalScopeAuthTime = "gatehouse:auth_time"

// splitAuthTimeScope returns the scopes without the internal marker and
// whether it was there.
func splitAuthTimeScope(scopes []string) ([]string, bool) {
	i := slices.Index(scopes, internalScopeAuthTime)
	if i < 0 {
		return scopes, false
	}
	return slices.Delete(slices.Clone(scopes), i, i+1), true
}

// redirectWithError sends an error to a validated redirect URI.
func (s *Server) redirectWithError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e authError) {
	if redirectURI == redirectOOB || redirectURI == s.absURL("/device/callback") {
		s.renderError(w, r, http.StatusBadRequest, "Login failed", e.description+" ("+e.code+")")
		return
	}
	v := url.Values{"error": {e.code}}
	if d := oauthDescription(e.description); d != "" {
		v.Set("error_description", d)
	}
	if state != "" {
		v.Set("state", state)
	}
	v.Set("iss", s.opts.Issuer)
	http.Redirect(w, r, withQuery(redirectURI, v), http.StatusSeeOther)
}

// validateScopes refuses unknown scopes and cross-client scopes for peers
// that do not trust the client, as Dex does.
func (s *Server) validateScopes(client *Client, scopes []string) *authError {
	if !slices.Contains(scopes, scopeOpenID) {
		return &authError{errInvalidScope, `the "openid" scope is required`}
	}
	return s.knownScopes(client, scopes)
}

// knownScopes checks that every scope is one of Dex's, and that a
// cross-client scope names a client that trusts this one.
func (s *Server) knownScopes(client *Client, scopes []string) *authError {
	for _, sc := range scopes {
		switch sc {
		case scopeOpenID, scopeProfile, scopeEmail, scopeGroups, scopeOfflineAccess, scopeFederatedID:
			continue
		}
		if peer, ok := strings.CutPrefix(sc, scopeCrossClient); ok {
			if _, exists := s.clients[peer]; !exists {
				return &authError{errInvalidScope, "unknown client " + strconv.Quote(peer) + " in cross-client scope"}
			}
			if !s.isTrustedPeer(peer, client.ID) {
				return &authError{errInvalidScope, "client " + strconv.Quote(peer) + " does not trust " + strconv.Quote(client.ID)}
			}
			continue
		}
		return &authError{errInvalidScope, "unsupported scope " + strconv.Quote(sc)}
	}
	return nil
}

// validatePKCE applies RFC 7636 and RFC 9700 2.1.1: public clients must
// use PKCE, and only S256 unless plain was allowed in the configuration.
func (s *Server) validatePKCE(client *Client, challenge, method string) (storage.PKCE, *authError) {
	if challenge == "" {
		if method != "" {
			return storage.PKCE{}, &authError{errInvalidRequest, "code_challenge_method without code_challenge"}
		}
		if client.Public {
			return storage.PKCE{}, &authError{errInvalidRequest, "PKCE is required for public clients: send code_challenge with code_challenge_method=S256"}
		}
		return storage.PKCE{}, nil
	}
	if method == "" {
		method = "plain" // RFC 7636 4.3 default
	}
	switch method {
	case "S256":
	case "plain":
		if !s.opts.AllowPlainPKCE {
			return storage.PKCE{}, &authError{errInvalidRequest, "code_challenge_method=plain is not allowed: use S256"}
		}
	default:
		return storage.PKCE{}, &authError{errInvalidRequest, "unsupported code_challenge_method " + strconv.Quote(method)}
	}
	if !pkceChallenge.MatchString(challenge) {
		return storage.PKCE{}, &authError{errInvalidRequest, "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]"}
	}
	return storage.PKCE{CodeChallenge: challenge, CodeChallengeMethod: method}, nil
}

// scopes tells connectors what the client asked for.
func (s *Server) scopes(scopes []string) connector.Scopes {
	return connector.Scopes{
		OfflineAccess: slices.Contains(scopes, scopeOfflineAccess),
		Groups:        slices.Contains(scopes, scopeGroups),
	}
}

func claimsFromIdentity(id connector.Identity) storage.Claims {
	return storage.Claims{
		UserID: id.UserID, Username: id.Username, PreferredUsername: id.PreferredUsername,
		Email: id.Email, EmailVerified: id.EmailVerified, Groups: id.Groups,
	}
}

func identityFromClaims(c storage.Claims, data []byte) connector.Identity {
	return connector.Identity{
		UserID: c.UserID, Username: c.Username, PreferredUsername: c.PreferredUsername,
		Email: c.Email, EmailVerified: c.EmailVerified, Groups: c.Groups, ConnectorData: data,
	}
}
