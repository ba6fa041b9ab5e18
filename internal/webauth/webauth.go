// Package webauth logs people into gatehouse's own pages (the audit trail)
// through gatehouse itself: an authorization code flow with PKCE against
// the issuer, redeemed in-process, and a session cookie signed with the
// issuer's keys. Replicas share the keys through storage, so any replica
// accepts a session another one created; nothing lives in process memory.
package webauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/keys"
)

// Options configure the login.
type Options struct {
	// Issuer serves the OIDC endpoints; codes are redeemed by calling it
	// in-process.
	Issuer http.Handler
	// IssuerURL is the issuer URL (https://host/dex).
	IssuerURL string
	Keys      *keys.Manager
	// ClientID and ClientSecret of the internal client registered with
	// the issuer for these pages; its redirect URI is CallbackURL().
	ClientID, ClientSecret string
	// Prefix is where the pages live (e.g. /audit): login at
	// Prefix+"/login", callback at Prefix+"/callback".
	Prefix string
	// KeepGroups, when set, limits the groups kept in the session cookie
	// (the ones that grant access), so a user in hundreds of teams still
	// fits in a cookie.
	KeepGroups []string
	// SessionTTL (default 8h).
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Auth is the login for one set of pages.
type Auth struct {
	o        Options
	origin   string
	secure   bool
	audience string
}

// Viewer is a logged-in person.
type Viewer struct {
	User   string
	Groups []string
}

// New checks the options.
func New(o Options) (*Auth, error) {
	u, err := url.Parse(o.IssuerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("webauth: bad issuer URL %q", o.IssuerURL)
	}
	if o.Issuer == nil || o.Keys == nil || o.ClientID == "" || o.ClientSecret == "" || o.Prefix == "" {
		return nil, errors.New("webauth: issuer, keys, client and prefix are required")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	origin := u.Scheme + "://" + u.Host
	return &Auth{o: o, origin: origin, secure: u.Scheme == "https", audience: origin + o.Prefix}, nil
}

// CallbackURL is the redirect URI to register for the internal client.
func (a *Auth) CallbackURL() string { return a.origin + a.o.Prefix + "/callback" }

// Mount registers the login and callback handlers.
func (a *Auth) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+a.o.Prefix+"/login", a.login)
	mux.HandleFunc("GET "+a.o.Prefix+"/callback", a.callback)
	mux.HandleFunc("POST "+a.o.Prefix+"/logout", a.logout)
}

// LoginRedirect answers an unauthenticated request by sending the browser
// to the login, which returns it to the same page afterwards.
func (a *Auth) LoginRedirect() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		back := r.URL.RequestURI()
		http.Redirect(w, r, a.o.Prefix+"/login?return="+url.QueryEscape(back), http.StatusSeeOther)
	})
}

const (
	sessionCookie = "gatehouse_session"
	flowCookie    = "gatehouse_login_flow"
)

// flowState is what the login remembers between redirect and callback,
// signed so the browser cannot change it.
type flowState struct {
	Audience string `json:"aud"`
	State    string `json:"state"`
	Verifier string `json:"verifier"`
	Nonce    string `json:"nonce"`
	Return   string `json:"return"`
	Expiry   int64  `json:"exp"`
	Kind     string `json:"kind"`
}

type sessionClaims struct {
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	Subject  string   `json:"sub"`
	User     string   `json:"user"`
	Groups   []string `json:"groups,omitempty"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	Kind     string   `json:"kind"`
}

func random() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *Auth) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: a.o.Prefix, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge.Seconds())
	}
	return c
}

// sign and verify wrap the issuer's keys: the payload's "aud" is this
// page set and "kind" tells flow state from session, so neither can be
// replayed as the other or as an access token.
func (a *Auth) sign(ctx context.Context, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return a.o.Keys.Sign(ctx, b, keys.TypeAccessToken)
}

func (a *Auth) verify(ctx context.Context, tok string, v any, kind string) error {
	payload, typ, err := a.o.Keys.Verify(ctx, tok)
	if err != nil {
		return err
	}
	if typ != keys.TypeAccessToken {
		return errors.New("wrong token type")
	}
	var head struct {
		Audience string `json:"aud"`
		Kind     string `json:"kind"`
		Expiry   int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return err
	}
	if head.Audience != a.audience || head.Kind != kind {
		return errors.New("token is for something else")
	}
	if a.o.Now().Unix() >= head.Expiry {
		return errors.New("expired")
	}
	return json.Unmarshal(payload, v)
}

// safeReturn keeps the return path on these pages (no open redirect).
func (a *Auth) safeReturn(p string) string {
	if p == "" || !strings.HasPrefix(p, a.o.Prefix) || strings.HasPrefix(p, "//") || strings.Contains(p, `\`) {
		return a.o.Prefix
	}
	if u, err := url.Parse(p); err != nil || u.Host != "" || u.Scheme != "" {
		return a.o.Prefix
	}
	return p
}

func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	fs := flowState{
		Audience: a.audience, State: random(), Verifier: random(), Nonce: random(),
		Return: a.safeReturn(r.URL.Query().Get("return")), Expiry: a.o.Now().Add(15 * time.Minute).Unix(), Kind: "flow",
	}
	tok, err := a.sign(r.Context(), fs)
	if err != nil {
		a.o.Logger.Error("webauth: sign login state", "err", err)
		http.Error(w, "login unavailable; try again", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, a.cookie(flowCookie, tok, 15*time.Minute))
	sum := sha256.Sum256([]byte(fs.Verifier))
	q := url.Values{
		"client_id": {a.o.ClientID}, "redirect_uri": {a.CallbackURL()}, "response_type": {"code"},
		"scope": {"openid profile email groups"}, "state": {fs.State}, "nonce": {fs.Nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	http.Redirect(w, r, strings.TrimSuffix(a.o.IssuerURL, "/")+"/auth?"+q.Encode(), http.StatusSeeOther)
}

func (a *Auth) callback(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(flowCookie)
	var fs flowState
	if err != nil || a.verify(r.Context(), c.Value, &fs, "flow") != nil {
		http.Error(w, "This login has expired or was started in another browser. Open the page again.", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	if q.Get("state") != fs.State {
		http.Error(w, "This login does not match the one this browser started. Open the page again.", http.StatusBadRequest)
		return
	}
	if e := q.Get("error"); e != "" {
		http.Error(w, "Login failed: "+e, http.StatusForbidden)
		return
	}
	idToken, err := a.redeem(r.Context(), q.Get("code"), fs.Verifier)
	if err != nil {
		a.o.Logger.Warn("webauth: redeem code", "err", err)
		http.Error(w, "Login failed; open the page again.", http.StatusBadGateway)
		return
	}
	var claims struct {
		Issuer            string   `json:"iss"`
		Subject           string   `json:"sub"`
		Nonce             string   `json:"nonce"`
		Email             string   `json:"email"`
		PreferredUsername string   `json:"preferred_username"`
		Groups            []string `json:"groups"`
		Expiry            int64    `json:"exp"`
	}
	payload, typ, err := a.o.Keys.Verify(r.Context(), idToken)
	if err == nil && typ == keys.TypeIDToken {
		err = json.Unmarshal(payload, &claims)
	} else if err == nil {
		err = errors.New("not an ID token")
	}
	if err != nil || claims.Issuer != a.o.IssuerURL || claims.Nonce != fs.Nonce {
		http.Error(w, "Login failed: the ID token did not check out.", http.StatusBadGateway)
		return
	}
	user := claims.PreferredUsername
	if user == "" {
		user = claims.Email
	}
	if user == "" {
		user = claims.Subject
	}
	groups := claims.Groups
	if len(a.o.KeepGroups) > 0 {
		groups = slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return !slices.Contains(a.o.KeepGroups, g) })
	}
	now := a.o.Now()
	sess, err := a.sign(r.Context(), sessionClaims{
		Issuer: a.o.IssuerURL, Audience: a.audience, Subject: claims.Subject, User: user, Groups: groups,
		Expiry: now.Add(a.o.SessionTTL).Unix(), IssuedAt: now.Unix(), Kind: "session",
	})
	if err != nil {
		http.Error(w, "Login failed; try again.", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, a.cookie(flowCookie, "", -1))
	http.SetCookie(w, a.cookie(sessionCookie, sess, a.o.SessionTTL))
	http.Redirect(w, r, fs.Return, http.StatusSeeOther)
}

// redeem exchanges the code at the issuer's token endpoint, in-process.
func (a *Auth) redeem(ctx context.Context, code, verifier string) (string, error) {
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.CallbackURL()}, "code_verifier": {verifier},
	}
	u, _ := url.Parse(strings.TrimSuffix(a.o.IssuerURL, "/") + "/token")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.Path, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Host = u.Host
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.o.ClientID), url.QueryEscape(a.o.ClientSecret))
	rec := httptest.NewRecorder()
	a.o.Issuer.ServeHTTP(rec, req)
	var out struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		return "", fmt.Errorf("token endpoint answered %d: %w", rec.Code, err)
	}
	if rec.Code != http.StatusOK || out.IDToken == "" {
		return "", fmt.Errorf("token endpoint answered %d %s", rec.Code, out.Error)
	}
	return out.IDToken, nil
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, a.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, a.o.Prefix, http.StatusSeeOther)
}

// Authenticate returns the viewer of a request with a valid session.
func (a *Auth) Authenticate(r *http.Request) (Viewer, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return Viewer{}, false
	}
	var s sessionClaims
	if err := a.verify(r.Context(), c.Value, &s, "session"); err != nil {
		return Viewer{}, false
	}
	return Viewer{User: s.User, Groups: s.Groups}, true
}
