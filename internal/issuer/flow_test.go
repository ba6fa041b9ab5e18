package issuer_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// tokenResponse is what the token endpoint answers.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
	// IssuedTokenType is in token exchange answers (RFC 8693 2.2.1).
	IssuedTokenType string `json:"issued_token_type"`
	status          int
	header          http.Header
}

func postToken(t *testing.T, s *issuertest.Server, form url.Values, basic ...string) tokenResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := s.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token endpoint answered %d with non-JSON %q", resp.StatusCode, body)
	}
	tr.status = resp.StatusCode
	tr.header = resp.Header
	return tr
}

// claimsOf decodes a JWT's payload after checking its signature against
// the issuer's published keys.
func claimsOf(t *testing.T, s *issuertest.Server, jwt string) map[string]any {
	t.Helper()
	resp, err := s.HTTPClient.Get(s.URL + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(jwt, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	keys := set.Key(jws.Signatures[0].Protected.KeyID)
	if len(keys) == 0 {
		t.Fatalf("JWT signed by a key not in /keys")
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify JWT: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type pkcePair struct{ verifier, challenge string }

func newPKCE() pkcePair {
	v := strings.Repeat("verifier-", 6) + time.Now().Format("150405.000000000")
	sum := sha256.Sum256([]byte(v))
	return pkcePair{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func authURL(s *issuertest.Server, params map[string]string) string {
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	return s.URL + "/auth?" + v.Encode()
}

// loginForCode runs the browser part of the code flow and returns the
// parameters of the redirect back to the client.
func loginForCode(t *testing.T, s *issuertest.Server, params map[string]string) url.Values {
	t.Helper()
	resp, page, err := s.LoginPage(s.Browser(), authURL(s, params))
	if err != nil {
		t.Fatalf("login: %v\n%s", err, page)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("login ended without a redirect (status %d): %s", resp.StatusCode, page)
	}
	return loc.Query()
}

func codeParams(s *issuertest.Server, p pkcePair, scope string) map[string]string {
	return map[string]string{
		"client_id": s.ClientID, "redirect_uri": "http://localhost:8000", "response_type": "code",
		"scope": scope, "state": "state-123", "nonce": "nonce-456",
		"code_challenge": p.challenge, "code_challenge_method": "S256",
	}
}

func exchange(t *testing.T, s *issuertest.Server, code, verifier string) tokenResponse {
	t.Helper()
	return postToken(t, s, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:8000"},
		"code_verifier": {verifier},
	}, s.ClientID, s.ClientSecret)
}

func TestAuthorizationCodeFlow(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	q := loginForCode(t, s, codeParams(s, p, "openid profile email groups offline_access"))
	if q.Get("state") != "state-123" {
		t.Errorf("state did not round-trip: %q", q.Get("state"))
	}
	if q.Get("iss") != s.URL {
		t.Errorf("RFC 9207 iss = %q, want %q", q.Get("iss"), s.URL)
	}
	tr := exchange(t, s, q.Get("code"), p.verifier)
	if tr.status != 200 || tr.IDToken == "" || tr.RefreshToken == "" || tr.AccessToken == "" {
		t.Fatalf("token response %d %+v", tr.status, tr)
	}
	if tr.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q", tr.header.Get("Cache-Control"))
	}
	c := claimsOf(t, s, tr.IDToken)
	want := map[string]any{
		"iss": s.URL, "aud": s.ClientID, "nonce": "nonce-456", "email": s.Username, "email_verified": true, "name": "admin",
		// Dex's documented sub for this user id on the "local" connector.
		"sub": "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if c["at_hash"] == nil || c["c_hash"] != nil && c["c_hash"] == "" {
		t.Errorf("at_hash missing: %v", c)
	}
	if _, ok := c["azp"]; ok {
		t.Errorf("azp set for a single-audience token (Dex omits it): %v", c["azp"])
	}
}

func TestCodeIsSingleUseAndReplayRevokes(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	q := loginForCode(t, s, codeParams(s, p, "openid offline_access"))
	first := exchange(t, s, q.Get("code"), p.verifier)
	if first.status != 200 {
		t.Fatalf("first redemption: %+v", first)
	}
	replay := exchange(t, s, q.Get("code"), p.verifier)
	if replay.status != 400 || replay.Error != "invalid_grant" {
		t.Fatalf("replayed code: %d %s", replay.status, replay.Error)
	}
	// What the first redemption issued is revoked.
	r := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}, s.ClientID, s.ClientSecret)
	if r.status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh token issued before the code replay still works: %d %s", r.status, r.Error)
	}
	if code := userinfoStatus(t, s, first.AccessToken); code != 401 {
		t.Fatalf("access token issued before the code replay still works at userinfo: %d", code)
	}
}

func userinfoStatus(t *testing.T, s *issuertest.Server, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 from userinfo without a Bearer WWW-Authenticate challenge")
	}
	return resp.StatusCode
}

func TestPKCE(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	cases := []struct {
		name      string
		params    map[string]string
		wantError string // error in the redirect, "" for a code
		verifier  string
		tokenErr  string
	}{
		{"public client without PKCE is refused", map[string]string{"client_id": s.PublicClientID, "code_challenge": "", "code_challenge_method": ""}, "invalid_request", "", ""},
		{"plain is refused", map[string]string{"code_challenge": p.verifier, "code_challenge_method": "plain"}, "invalid_request", "", ""},
		{"missing method means plain, refused", map[string]string{"code_challenge_method": ""}, "invalid_request", "", ""},
		{"wrong verifier", nil, "", strings.Repeat("x", 43), "invalid_grant"},
		{"missing verifier", nil, "", "", "invalid_grant"},
		{"right verifier", nil, "", p.verifier, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := codeParams(s, p, "openid")
			for k, v := range tc.params {
				params[k] = v
			}
			if params["client_id"] == s.PublicClientID {
				params["redirect_uri"] = "http://127.0.0.1:41234/callback"
			}
			q := loginForCode(t, s, params)
			if tc.wantError != "" {
				if q.Get("error") != tc.wantError || q.Get("code") != "" {
					t.Fatalf("redirect = %v, want error %s", q, tc.wantError)
				}
				return
			}
			tr := exchange(t, s, q.Get("code"), tc.verifier)
			if tc.tokenErr != "" {
				if tr.status != 400 || tr.Error != tc.tokenErr {
					t.Fatalf("token = %d %s, want %s", tr.status, tr.Error, tc.tokenErr)
				}
				return
			}
			if tr.status != 200 {
				t.Fatalf("token = %d %s %s", tr.status, tr.Error, tr.Description)
			}
		})
	}
}

func TestRefreshRotationAndReplay(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	tr := passwordGrant(t, s, "openid offline_access groups")
	refresh := func(tok string) tokenResponse {
		return postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}, s.ClientID, s.ClientSecret)
	}
	r1 := refresh(tr.RefreshToken)
	if r1.status != 200 || r1.RefreshToken == "" || r1.RefreshToken == tr.RefreshToken {
		t.Fatalf("first refresh did not rotate: %d %+v", r1.status, r1)
	}
	r2 := refresh(r1.RefreshToken)
	if r2.status != 200 {
		t.Fatalf("second refresh: %d %s", r2.status, r2.Error)
	}
	// Replay of r1's token (already rotated, reuseInterval 0): the whole
	// family is revoked, including the newest token.
	if rr := refresh(r1.RefreshToken); rr.status != 400 || rr.Error != "invalid_grant" {
		t.Fatalf("replay accepted: %d %s", rr.status, rr.Error)
	}
	if rr := refresh(r2.RefreshToken); rr.status != 400 {
		t.Fatalf("newest token of a replayed family still works: %d", rr.status)
	}
	// Another client cannot use someone else's refresh token.
	other := passwordGrant(t, s, "openid offline_access")
	if rr := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {other.RefreshToken}, "client_id": {s.PublicClientID}}); rr.status != 400 || rr.Error != "invalid_grant" {
		t.Fatalf("refresh token accepted from another client: %d %s", rr.status, rr.Error)
	}
}

func TestRefreshReuseIntervalGivesSameSuccessor(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{RefreshReuseInterval: 30 * time.Second})
	tr := passwordGrant(t, s, "openid offline_access")
	var wg sync.WaitGroup
	results := make([]tokenResponse, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, s.ClientID, s.ClientSecret)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status != 200 {
			t.Fatalf("concurrent refresh %d failed inside the reuse interval: %d %s %s", i, r.status, r.Error, r.Description)
		}
		if r.RefreshToken != results[0].RefreshToken {
			t.Fatalf("concurrent refreshes got different successors")
		}
	}
	if r := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {results[0].RefreshToken}}, s.ClientID, s.ClientSecret); r.status != 200 {
		t.Fatalf("the shared successor does not work: %d %s", r.status, r.Error)
	}
}

func TestSeveralSessionsPerUser(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	laptop := passwordGrant(t, s, "openid offline_access")
	desktop := passwordGrant(t, s, "openid offline_access")
	for name, tok := range map[string]string{"laptop": laptop.RefreshToken, "desktop": desktop.RefreshToken} {
		if r := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}, s.ClientID, s.ClientSecret); r.status != 200 {
			t.Fatalf("%s session logged out by the other login: %d %s", name, r.status, r.Error)
		}
	}
}

func passwordGrant(t *testing.T, s *issuertest.Server, scope string) tokenResponse {
	t.Helper()
	tr := postToken(t, s, url.Values{"grant_type": {"password"}, "username": {s.Username}, "password": {s.Password}, "scope": {scope}}, s.ClientID, s.ClientSecret)
	if tr.status != 200 {
		t.Fatalf("password grant: %d %s %s", tr.status, tr.Error, tr.Description)
	}
	return tr
}

func TestDeviceFlow(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	resp, err := s.HTTPClient.PostForm(s.URL+"/device/code", url.Values{"client_id": {s.PublicClientID}, "scope": {"openid profile offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	var da struct {
		DeviceCode, UserCode, VerificationURI string
		Interval                              int
	}
	var raw map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	da.DeviceCode, _ = raw["device_code"].(string)
	da.UserCode, _ = raw["user_code"].(string)
	da.VerificationURI, _ = raw["verification_uri"].(string)
	if resp.StatusCode != 200 || da.DeviceCode == "" || len(da.UserCode) != 9 || da.VerificationURI != s.URL+"/device" {
		t.Fatalf("device authorization: %d %v", resp.StatusCode, raw)
	}
	poll := func() tokenResponse {
		return postToken(t, s, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {s.PublicClientID}})
	}
	if r := poll(); r.Error != "authorization_pending" {
		t.Fatalf("first poll: %s", r.Error)
	}
	if r := poll(); r.Error != "slow_down" {
		t.Fatalf("immediate second poll: %s, want slow_down", r.Error)
	}
	// The user types the code in lower case with a space.
	_, page, err := s.SubmitUserCode(s.Browser(), strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " ")))
	if err != nil || !strings.Contains(page, "You are logged in") {
		t.Fatalf("device login: %v\n%s", err, page)
	}
	r := poll()
	if r.status != 200 || r.IDToken == "" || r.RefreshToken == "" {
		t.Fatalf("poll after approval: %d %s", r.status, r.Error)
	}
	if r := poll(); r.status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("device code redeemed twice: %d %s", r.status, r.Error)
	}
}

func TestUserinfoTakesAccessTokensOnly(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	tr := passwordGrant(t, s, "openid email")
	if code := userinfoStatus(t, s, tr.AccessToken); code != 200 {
		t.Fatalf("userinfo with access token: %d", code)
	}
	if code := userinfoStatus(t, s, tr.IDToken); code != 401 {
		t.Fatalf("userinfo accepted an ID token: %d", code)
	}
	if code := userinfoStatus(t, s, tr.AccessToken+"x"); code != 401 {
		t.Fatalf("userinfo accepted a tampered token: %d", code)
	}
}

func TestRevocation(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	tr := passwordGrant(t, s, "openid offline_access")
	resp, err := s.HTTPClient.PostForm(s.URL+"/token/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if r := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, s.ClientID, s.ClientSecret); r.status != 400 {
		t.Fatalf("revoked refresh token still works: %d", r.status)
	}
	if code := userinfoStatus(t, s, tr.AccessToken); code != 401 {
		t.Fatalf("access token of a revoked session still works: %d", code)
	}
	// Unknown tokens get 200 (RFC 7009 2.2).
	resp, err = s.HTTPClient.PostForm(s.URL+"/token/revoke", url.Values{"token": {"nonsense"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke unknown token: %d", resp.StatusCode)
	}
}

func TestIntrospectionNeedsAuthenticatedClient(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	tr := passwordGrant(t, s, "openid")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		active bool
	}{
		{"no client", url.Values{"token": {tr.AccessToken}}, 401, false},
		{"public client", url.Values{"token": {tr.AccessToken}, "client_id": {s.PublicClientID}}, 401, false},
		{"wrong secret", url.Values{"token": {tr.AccessToken}, "client_id": {s.ClientID}, "client_secret": {"wrong"}}, 401, false},
		{"confidential client", url.Values{"token": {tr.AccessToken}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}}, 200, true},
		{"garbage token", url.Values{"token": {"x.y.z"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}}, 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.HTTPClient.PostForm(s.URL+"/token/introspect", tc.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, out)
			}
			if tc.status == 200 && out["active"] != tc.active {
				t.Fatalf("active = %v, want %v", out["active"], tc.active)
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"no client", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, nil, 401, "invalid_client"},
		{"wrong secret", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, []string{"kubernetes", "nope"}, 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, []string{"nobody", "x"}, 401, "invalid_client"},
		{"unsupported grant", url.Values{"grant_type": {"client_credentials"}}, []string{"kubernetes", "test-client-secret"}, 400, "unsupported_grant_type"},
		{"missing code", url.Values{"grant_type": {"authorization_code"}}, []string{"kubernetes", "test-client-secret"}, 400, "invalid_request"},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {"http://localhost:8000"}}, []string{"kubernetes", "test-client-secret"}, 400, "invalid_grant"},
		{"malformed refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}}, []string{"kubernetes", "test-client-secret"}, 400, "invalid_grant"},
		{"wrong password", url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"wrong"}, "scope": {"openid"}}, []string{"kubernetes", "test-client-secret"}, 400, "invalid_grant"},
		{"unknown scope", url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"x"}, "scope": {"openid admin"}}, []string{"kubernetes", "test-client-secret"}, 400, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := postToken(t, s, tc.form, tc.basic...)
			if tr.status != tc.status || tr.Error != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", tr.status, tr.Error, tr.Description, tc.status, tc.code)
			}
			if tc.status == 401 && tr.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestPromptAndMaxAge(t *testing.T) {
	s := issuertest.Start(t, issuertest.Options{})
	p := newPKCE()
	params := codeParams(s, p, "openid")
	params["prompt"] = "none"
	if q := loginForCode(t, s, params); q.Get("error") != "login_required" || q.Get("state") != "state-123" {
		t.Fatalf("prompt=none: %v", q)
	}
	params = codeParams(s, p, "openid")
	params["max_age"] = "0"
	q := loginForCode(t, s, params)
	tr := exchange(t, s, q.Get("code"), p.verifier)
	c := claimsOf(t, s, tr.IDToken)
	if _, ok := c["auth_time"]; !ok {
		t.Fatalf("max_age requested but no auth_time: %v", c)
	}
	if strings.Contains(tr.header.Get("X-Unused"), "gatehouse") {
		t.Fatal("unreachable")
	}
}
