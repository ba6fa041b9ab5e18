package oidc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// lateConnector lets the downstream issuer start before its connector
// exists: the connector's redirectURI needs the downstream's URL, and the
// upstream's client needs it too.
type lateConnector struct {
	mu sync.Mutex
	c  *Connector
}

func (l *lateConnector) get() *Connector {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

func (l *lateConnector) LoginURL(ctx context.Context, s connector.Scopes, callbackURL, state string) (string, []byte, error) {
	return l.get().LoginURL(ctx, s, callbackURL, state)
}

func (l *lateConnector) HandleCallback(ctx context.Context, s connector.Scopes, connData []byte, r *http.Request) (connector.Identity, error) {
	return l.get().HandleCallback(ctx, s, connData, r)
}

func (l *lateConnector) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	return l.get().Refresh(ctx, s, id)
}

// TestThroughIssuer runs the connector inside a real downstream gatehouse:
// kubectl's login at the downstream goes through the upstream gatehouse's
// pages, and the downstream's tokens carry the upstream user; refreshing at
// the downstream refreshes upstream, so changed groups and a removed user
// take effect.
func TestThroughIssuer(t *testing.T) {
	late := &lateConnector{}
	down := issuertest.Start(t, issuertest.Options{
		Connectors: []issuer.Connector{{ID: "upstream", Type: Type, Name: "Upstream", Impl: late}},
	})
	callback := down.URL + "/callback"

	u := &upstream{dir: &directory{users: map[string]connector.Identity{}}, tamper: &tamper{fn: map[string]func(map[string]any){}}}
	u.Server = issuertest.Start(t, issuertest.Options{
		Connectors:   []issuer.Connector{{ID: "local", Type: "local", Name: "Email", Impl: u.dir}},
		ExtraClients: []issuer.Client{{ID: testClientID, Secret: testClientSecret, Name: "downstream", RedirectURIs: []string{callback}}},
	})
	u.dir.password = u.Password
	u.dir.users[testLogin] = connector.Identity{
		UserID: "u-1001", Username: "Jane Doe", PreferredUsername: "jane",
		Email: testLogin, EmailVerified: true, Groups: []string{"infra", "dev"},
	}
	cfg := u.config()
	cfg.RedirectURI = callback
	cfg.Scopes = []string{"profile", "email", "groups"}
	cfg.InsecureEnableGroups = true
	late.mu.Lock()
	late.c = newConnector(t, cfg)
	late.mu.Unlock()

	// A browser that trusts both issuers and stops at kubectl's loopback.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(down.CAPEM)
	pool.AppendCertsFromPEM(u.CAPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	jar, _ := cookiejar.New(nil)
	hosts := []string{mustURL(t, down.URL).Host, mustURL(t, u.URL).Host}
	browser := &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: tr,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if !slices.Contains(hosts, req.URL.Host) {
				return http.ErrUseLastResponse
			}
			return nil
		}}

	kubectl := &oauth2.Config{
		ClientID: down.ClientID, ClientSecret: down.ClientSecret, RedirectURL: "http://localhost:8000",
		Endpoint: oauth2.Endpoint{AuthURL: down.URL + "/auth", TokenURL: down.URL + "/token"},
		Scopes:   []string{"openid", "profile", "email", "groups", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	resp, page, err := u.LoginPage(browser, kubectl.AuthCodeURL("kubectl-state", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatalf("login: %v\n%s", err, page)
	}
	loc := mustURL(t, resp.Header.Get("Location"))
	if loc.Host != "localhost:8000" || loc.Query().Get("state") != "kubectl-state" {
		t.Fatalf("login ended at %s, want kubectl's loopback with its state", loc)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, down.HTTPClient)
	tok, err := kubectl.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange at the downstream: %v", err)
	}
	claims := claimsOf(t, tok.Extra("id_token").(string))
	upstreamSub := subjectOf("u-1001")
	want := map[string]any{
		"iss": down.URL, "sub": encodeSub(upstreamSub, "upstream"), "name": "Jane Doe", "preferred_username": "jane",
		"email": testLogin, "email_verified": true,
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("downstream ID token %s = %v, want %v", k, claims[k], v)
		}
	}
	if g := groupsOf(claims); !slices.Equal(g, []string{"infra", "dev"}) {
		t.Errorf("downstream groups %v, want [infra dev]", g)
	}

	refresh := func() (*oauth2.Token, error) {
		old := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Unix(1, 0)}
		return kubectl.TokenSource(ctx, old).Token()
	}
	u.dir.set(testLogin, func(id *connector.Identity) { id.Groups = []string{"dev"} })
	if tok, err = refresh(); err != nil {
		t.Fatalf("refresh at the downstream: %v", err)
	}
	if g := groupsOf(claimsOf(t, tok.Extra("id_token").(string))); !slices.Equal(g, []string{"dev"}) {
		t.Errorf("after the upstream change, groups %v, want [dev]", g)
	}

	u.dir.remove(testLogin)
	if _, err := refresh(); err == nil {
		t.Error("refresh at the downstream succeeded after the user was removed upstream")
	}
}

func groupsOf(claims map[string]any) []string {
	var out []string
	list, _ := claims["groups"].([]any)
	for _, g := range list {
		s, _ := g.(string)
		out = append(out, s)
	}
	return out
}

// encodeSub is Dex's subject: base64url of the protobuf {1: user, 2: conn}
// (short strings only).
func encodeSub(userID, connID string) string {
	b := []byte{0x0a, byte(len(userID))}
	b = append(b, userID...)
	b = append(b, 0x12, byte(len(connID)))
	b = append(b, connID...)
	return base64.RawURLEncoding.EncodeToString(b)
}
