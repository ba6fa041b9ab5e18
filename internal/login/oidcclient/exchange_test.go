package oidcclient

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestExchangeAnswers: how each kind of token endpoint answer is read.
// The issuer is a wire stand-in (discovery, keys, a scripted /token).
func TestExchangeAnswers(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var answer func(w http.ResponseWriter, r *http.Request)
	var got map[string]string
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/keys", "scopes_supported": []string{"openid", "offline_access"}})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = map[string]string{}
		for k := range r.PostForm {
			got[k] = r.PostForm.Get(k)
		}
		if id, secret, ok := r.BasicAuth(); ok {
			got["basic"] = id + ":" + secret
		}
		answer(w, r)
	})
	token := func(aud string) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k"}}, nil)
		b, _ := json.Marshal(map[string]any{"iss": srv.URL, "sub": "u", "aud": aud, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
		jws, _ := signer.Sign(b)
		s, _ := jws.CompactSerialize()
		return s
	}
	ok := func(tokenType, aud string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token(aud), "issued_token_type": tokenType, "token_type": "bearer", "expires_in": 3600})
		}
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		secret  string
		answer  func(http.ResponseWriter, *http.Request)
		wantErr string
	}{
		{name: "issued", answer: ok(TokenTypeIDToken, "prod")},
		{name: "confidential client", secret: "s3cret", answer: ok(TokenTypeIDToken, "prod")},
		{name: "RFC 6749 error", answer: reply(400, "", `{"error":"invalid_target","error_description":"client prod does not trust kubernetes"}`), wantErr: "invalid_target: client prod does not trust kubernetes (the cluster's client must list this client in its trustedPeers"},
		{name: "proxy error page", answer: reply(502, "", "<html>Bad Gateway</html>"), wantErr: "the issuer answered 502"},
		{name: "busy", answer: reply(503, "30", `{"error":"temporarily_unavailable","error_description":"the connector's provider is down"}`), wantErr: "the issuer answered 503 temporarily_unavailable: the connector's provider is down"},
		{name: "400 without an RFC error", answer: reply(400, "", "bad"), wantErr: "answered 400 Bad Request: bad"},
		{name: "an access token instead", answer: ok("urn:ietf:params:oauth:token-type:access_token", "prod"), wantErr: `the issuer issued "urn:ietf:params:oauth:token-type:access_token"`},
		{name: "another audience", answer: ok(TokenTypeIDToken, "staging"), wantErr: "verify the issued ID token"},
		{name: "not JSON", answer: reply(200, "", "ok"), wantErr: "no JSON token response"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			answer = tt.answer
			c, err := New(ctx, Config{IssuerURL: srv.URL, ClientID: "kubernetes", ClientSecret: tt.secret, ExtraScopes: []string{"groups"}})
			if err != nil {
				t.Fatal(err)
			}
			ts, err := c.Exchange(ctx, ExchangeRequest{SubjectToken: "subject", Audience: "prod"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				// An outage is told apart: get-token then keeps a
				// cached token that is still valid.
				var ue *UnavailableError
				if outage := tt.name == "busy" || tt.name == "proxy error page"; errors.As(err, &ue) != outage {
					t.Errorf("UnavailableError = %v, want %v", ue, outage)
				} else if tt.name == "busy" && ue.RetryAfter != 30*time.Second {
					t.Errorf("RetryAfter = %v", ue.RetryAfter)
				}
				return
			}
			if err != nil || ts.IDToken == "" || ts.RefreshToken != "" || ts.Claims["aud"] != "prod" {
				t.Fatalf("ts %+v, err %v", ts, err)
			}
			want := map[string]string{"grant_type": GrantTokenExchange, "subject_token": "subject", "subject_token_type": TokenTypeIDToken,
				"requested_token_type": TokenTypeIDToken, "audience": "prod", "scope": "openid groups"}
			if tt.secret == "" {
				want["client_id"] = "kubernetes"
			} else {
				want["basic"] = "kubernetes:s3cret"
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (request %v)", k, got[k], v, got)
				}
			}
			if _, ok := got["connector_id"]; ok {
				t.Errorf("connector_id sent for the issuer's own token")
			}
			if tt.secret != "" && got["client_id"] != "" {
				t.Errorf("a confidential client sent client_id in the form too")
			}
		})
	}
}

// reply answers with status, body and, when set, Retry-After.
func reply(status int, retryAfter, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
