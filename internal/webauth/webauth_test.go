package webauth_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/webauth"
)

func start(t *testing.T) (*issuertest.Server, *webauth.Auth) {
	t.Helper()
	var auth *webauth.Auth
	s := issuertest.Start(t, issuertest.Options{
		ClientsFor: func(u string) []issuer.Client {
			origin := strings.TrimSuffix(u, "/dex")
			return []issuer.Client{{ID: "gatehouse-pages", Secret: "pages-secret", RedirectURIs: []string{origin + "/audit/callback"}}}
		},
		Mount: func(s *issuertest.Server, mux *http.ServeMux) {
			var err error
			auth, err = webauth.New(webauth.Options{
				Issuer: s.Issuer, IssuerURL: s.URL, Keys: s.Keys, ClientID: "gatehouse-pages", ClientSecret: "pages-secret", Prefix: "/audit",
			})
			if err != nil {
				t.Fatal(err)
			}
			auth.Mount(mux)
			mux.Handle("GET /audit", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				v, ok := auth.Authenticate(r)
				if !ok {
					auth.LoginRedirect().ServeHTTP(w, r)
					return
				}
				_, _ = io.WriteString(w, "viewer="+v.User)
			}))
		},
	})
	return s, auth
}

func TestLoginThroughIssuer(t *testing.T) {
	s, _ := start(t)
	b := s.Browser()
	origin := strings.TrimSuffix(s.URL, "/dex")
	// Follow everything on the issuer's origin: page → login → issuer → callback → page.
	resp, page, err := s.LoginPage(b, origin+"/audit")
	if err != nil {
		t.Fatalf("login: %v %s", err, page)
	}
	if resp.StatusCode != 200 || !strings.Contains(page, "viewer=admin@example.com") {
		t.Fatalf("after login: %d %q", resp.StatusCode, page)
	}
	// A second browser without the session cookie is sent to log in.
	nb := s.Browser()
	nb.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r2, err := nb.Get(origin + "/audit")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r2.Header.Get("Location"), "/audit/login") {
		t.Fatalf("no session: %d %q", r2.StatusCode, r2.Header.Get("Location"))
	}
}

func TestForgedSessionsAndReturnPaths(t *testing.T) {
	s, auth := start(t)
	origin := strings.TrimSuffix(s.URL, "/dex")
	// An access token from the issuer is not a session.
	tr, err := s.HTTPClient.PostForm(s.URL+"/token", url.Values{"grant_type": {"password"}, "username": {s.Username}, "password": {s.Password}, "scope": {"openid"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr.Body)
	tr.Body.Close()
	at := strings.Split(strings.Split(string(body), `"access_token":"`)[1], `"`)[0]
	req, _ := http.NewRequest(http.MethodGet, origin+"/audit", nil)
	req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: at})
	if _, ok := auth.Authenticate(req); ok {
		t.Fatal("an access token was accepted as a page session")
	}
	// The return path after login stays on the pages.
	b := s.Browser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, ret := range []string{"https://evil.example/", "//evil.example", `/\evil.example`, "/dex/keys"} {
		r, err := b.Get(origin + "/audit/login?return=" + url.QueryEscape(ret))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), s.URL+"/auth?") {
			t.Fatalf("login for return %q: %d %q", ret, r.StatusCode, r.Header.Get("Location"))
		}
	}
}
