package fakegithub

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// codeTTL is how long an authorization code lives (GitHub: 10 minutes).
const codeTTL = 10 * time.Minute

// knownScopes are the OAuth App scopes the fake grants; others are dropped
// as GitHub drops unknown scopes.
var knownScopes = map[string]bool{
	"user": true, "user:email": true, "read:user": true, "read:org": true,
	"write:org": true, "admin:org": true, "repo": true,
}

type authCode struct {
	clientID    string
	login       string
	redirectURI string
	scopes      []string
	challenge   string // PKCE S256 code_challenge, if sent
	expires     time.Time
	used        bool
}

type token struct {
	value     string
	clientID  string
	login     string
	scopes    []string
	githubApp bool
	expires   time.Time // zero: never
	revoked   bool
	// pair links an access token and its refresh token.
	pair *token
}

func (t *token) usable(now time.Time) bool {
	return !t.revoked && (t.expires.IsZero() || now.Before(t.expires))
}

func (t *token) hasScope(any []string) bool {
	if t.githubApp || len(any) == 0 {
		return true // GitHub App permissions are the app's, not scopes
	}
	for _, want := range any {
		for _, have := range t.scopes {
			if have == want {
				return true
			}
		}
	}
	return false
}

func randomString(prefix string) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// callbackAllowed applies GitHub's redirect_uri rule: same scheme, host and
// port as the registered callback, path equal to it or below it.
func callbackAllowed(registered, got string) bool {
	if registered == "" {
		return true
	}
	r, err1 := url.Parse(registered)
	g, err2 := url.Parse(got)
	if err1 != nil || err2 != nil {
		return false
	}
	if r.Scheme != g.Scheme || !strings.EqualFold(r.Host, g.Host) {
		return false
	}
	rp := strings.TrimSuffix(r.Path, "/")
	return g.Path == r.Path || g.Path == rp || strings.HasPrefix(g.Path, rp+"/")
}

func redirectWith(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, err := url.Parse(target)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

var chooserPage = template.Must(template.New("chooser").Parse(`<!doctype html>
<html><head><title>Sign in to GitHub (fake)</title></head>
<body><h1>Sign in to GitHub</h1><p>fakegithub: choose who is logged in.</p>
<ul>{{range .Users}}<li><a id="login-{{.Login}}" href="{{.URL}}">{{.Login}}</a></li>{{end}}</ul>
<p><a id="cancel" href="{{.Cancel}}">Cancel</a></p></body></html>`))

// authorize is GET /login/oauth/authorize: it approves the logged-in user
// and redirects to redirect_uri with code and state.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	app := s.app(q.Get("client_id"))
	var registered string
	if app != nil {
		registered = app.CallbackURL
	}
	s.mu.Unlock()
	if app == nil {
		http.Error(w, "404: This is not the web page you are looking for (unknown client_id).", http.StatusNotFound)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		redirectURI = registered
	}
	if redirectURI == "" {
		http.Error(w, "redirect_uri missing and the app has no callback URL", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	if !callbackAllowed(registered, redirectURI) {
		redirectWith(w, r, registered, url.Values{
			"error":             {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch"},
			"state":             {state},
		})
		return
	}
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		redirectWith(w, r, redirectURI, url.Values{
			"error": {"invalid_request"}, "error_description": {"code_challenge_method must be S256"}, "state": {state},
		})
		return
	}

	login := ""
	if c, err := r.Cookie(LoginCookie); err == nil {
		login = c.Value
	}
	s.mu.Lock()
	if login == "" {
		login = s.login
	}
	u := s.user(login)
	s.mu.Unlock()
	if login == Deny {
		redirectWith(w, r, redirectURI, url.Values{
			"error":             {"access_denied"},
			"error_description": {"The user has denied your application access."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied"},
			"state":             {state},
		})
		return
	}
	if u == nil {
		s.showChooser(w, r, redirectURI, state)
		return
	}

	var scopes []string
	for _, sc := range strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ' ' || r == ',' }) {
		if knownScopes[sc] {
			scopes = append(scopes, sc)
		}
	}
	code := randomString("")[:20]
	s.mu.Lock()
	s.codes[code] = &authCode{
		clientID: app.ClientID, login: u.Login, redirectURI: q.Get("redirect_uri"),
		scopes: scopes, challenge: challenge, expires: s.opts.Now().Add(codeTTL),
	}
	s.mu.Unlock()
	redirectWith(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
}

func (s *Server) showChooser(w http.ResponseWriter, r *http.Request, redirectURI, state string) {
	type entry struct{ Login, URL string }
	var users []entry
	back := r.URL.RequestURI()
	for _, l := range s.userNames() {
		users = append(users, entry{l, "/fakegithub/login?" + url.Values{"as": {l}, "return": {back}}.Encode()})
	}
	cancel := "/fakegithub/login?" + url.Values{"as": {Deny}, "return": {back}}.Encode()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = chooserPage.Execute(w, map[string]any{"Users": users, "Cancel": cancel})
}

// chooseLogin sets the login cookie and returns to the authorize URL.
func (s *Server) chooseLogin(w http.ResponseWriter, r *http.Request) {
	back := r.URL.Query().Get("return")
	if !strings.HasPrefix(back, "/login/oauth/authorize?") {
		http.Error(w, "bad return", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: r.URL.Query().Get("as"), Path: "/login/oauth/"})
	http.Redirect(w, r, back, http.StatusFound)
}

// tokenError writes GitHub's token endpoint error: status 200 with an
// error field, in the representation the client asked for.
func tokenError(w http.ResponseWriter, r *http.Request, code, desc, anchor string) {
	writeToken(w, r, map[string]any{
		"error":             code,
		"error_description": desc,
		"error_uri":         "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#" + anchor,
	})
}

// writeToken answers JSON when Accept asks for it, XML is not offered,
// and otherwise form encoding, GitHub's default.
func writeToken(w http.ResponseWriter, r *http.Request, body map[string]any) {
	wantJSON := false
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "application/json" {
			wantJSON = true
		}
	}
	if wantJSON {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	v := url.Values{}
	for k, val := range body {
		switch x := val.(type) {
		case string:
			v.Set(k, x)
		case int:
			v.Set(k, strconv.Itoa(x))
		}
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	_, _ = w.Write([]byte(v.Encode()))
}

// accessToken is POST /login/oauth/access_token: it exchanges a code, or
// with grant_type=refresh_token a GitHub App refresh token, for tokens.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.app(clientID)
	if app == nil || subtle.ConstantTimeCompare([]byte(app.ClientSecret), []byte(secret)) != 1 {
		tokenError(w, r, "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "incorrect-client-credentials")
		return
	}
	now := s.opts.Now()
	var login string
	var scopes []string
	switch r.Form.Get("grant_type") {
	case "", "authorization_code":
		code := s.codes[r.Form.Get("code")]
		if code == nil || code.used || code.clientID != app.ClientID || !now.Before(code.expires) {
			tokenError(w, r, "bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
			return
		}
		code.used = true
		if ru := r.Form.Get("redirect_uri"); ru != "" && code.redirectURI != "" && ru != code.redirectURI {
			tokenError(w, r, "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "redirect-uri-mismatch")
			return
		}
		if code.challenge != "" {
			sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
			if base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge {
				tokenError(w, r, "bad_verification_code", "The code_verifier does not match the code_challenge.", "bad-verification-code")
				return
			}
		}
		login, scopes = code.login, code.scopes
	case "refresh_token":
		rt := s.refreshes[r.Form.Get("refresh_token")]
		if rt == nil || !rt.usable(now) || rt.clientID != app.ClientID {
			tokenError(w, r, "bad_refresh_token", "The refresh token passed is incorrect or expired.", "bad-refresh-token")
			return
		}
		// Refresh tokens are single-use: the old pair stops working.
		rt.revoked = true
		if rt.pair != nil {
			rt.pair.revoked = true
		}
		login = rt.login
	default:
		tokenError(w, r, "unsupported_grant_type", "The grant type is not supported.", "unsupported-grant-type")
		return
	}

	at := &token{clientID: app.ClientID, login: login, scopes: scopes, githubApp: app.GitHubApp}
	body := map[string]any{"token_type": "bearer"}
	if app.GitHubApp {
		at.value = randomString("ghu_")
		ttl, rttl := time.Duration(app.AccessTokenTTL), time.Duration(app.RefreshTokenTTL)
		if ttl <= 0 {
			ttl = 8 * time.Hour
		}
		if rttl <= 0 {
			rttl = 15897600 * time.Second
		}
		at.expires = now.Add(ttl)
		rt := &token{value: randomString("ghr_"), clientID: app.ClientID, login: login, githubApp: true, expires: now.Add(rttl), pair: at}
		at.pair = rt
		s.refreshes[rt.value] = rt
		body["expires_in"] = int(ttl / time.Second)
		body["refresh_token"] = rt.value
		body["refresh_token_expires_in"] = int(rttl / time.Second)
		body["scope"] = ""
	} else {
		at.value = randomString("gho_")
		body["scope"] = strings.Join(scopes, ",")
	}
	s.tokens[at.value] = at
	body["access_token"] = at.value
	writeToken(w, r, body)
}
