package issuer_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// dexTokenStore holds Dex refresh tokens beside gatehouse's families and
// turns one into a family when asked, as the kubernetes storage does
// with Dex's RefreshToken objects.
type dexTokenStore struct {
	*memory.Storage
	dex map[string]dexcompat.RefreshToken
}

func (d dexTokenStore) ImportDexRefreshToken(ctx context.Context, id string) error {
	t, ok := d.dex[id]
	if !ok {
		return storage.ErrNotFound
	}
	f, err := dexcompat.Family(t, nil)
	if err != nil {
		return err
	}
	if err := d.CreateRefreshFamily(ctx, f); err != nil {
		return err
	}
	delete(d.dex, id)
	return nil
}

// dexToken is what Dex hands a client: base64url(protobuf{1: id, 2: secret}).
func dexToken(id, secret string) string {
	var b []byte
	for i, v := range []string{id, secret} {
		b = append(b, byte((i+1)<<3|2), byte(len(v)))
		b = append(b, v...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestDexRefreshTokens: a refresh token in Dex's format refreshes the
// session it names (held in Dex's form and imported on first use, or
// copied by migrate from-dex), once; forged, unknown, misdirected and
// malformed ones are refused, and a wrong secret for a real session ends
// that session as any replay does.
func TestDexRefreshTokens(t *testing.T) {
	for _, tc := range []struct {
		name     string
		imported bool // true: the store imports Dex's token on first use; false: the family was copied
	}{{"imported on first use", true}, {"copied by migrate", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store := dexTokenStore{Storage: memory.New(), dex: map[string]dexcompat.RefreshToken{}}
			s := issuertest.Start(t, issuertest.Options{Storage: store})
			now := time.Now()
			add := func(id, secret string) {
				dt := dexcompat.RefreshToken{ID: id, Token: secret, ClientID: s.ClientID, ConnectorID: "local",
					Scopes: []string{"openid", "offline_access", "email"}, CreatedAt: now.Add(-time.Hour), LastUsed: now.Add(-time.Minute),
					Claims: dexcompat.Claims{UserID: s.UserID, Username: "admin", Email: s.Username, EmailVerified: true}}
				if tc.imported {
					store.dex[id] = dt
					return
				}
				f, err := dexcompat.Family(dt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.CreateRefreshFamily(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			refresh := func(tok string, client ...string) tokenResponse {
				if len(client) == 0 {
					client = []string{s.ClientID, s.ClientSecret}
				}
				return postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}, client...)
			}
			add("dexsessionone", "secret-one")
			add("dexsessiontwo", "secret-two")

			r := refresh(dexToken("dexsessionone", "secret-one"))
			if r.status != 200 || !strings.HasPrefix(r.RefreshToken, "dexsessionone.") {
				t.Fatalf("Dex's token: %d %s %s, refresh token %q", r.status, r.Error, r.Description, r.RefreshToken)
			}
			if c := claimsOf(t, s, r.IDToken); c["email"] != s.Username {
				t.Fatalf("claims: %v", c)
			}
			if r2 := refresh(r.RefreshToken); r2.status != 200 {
				t.Fatalf("the successor: %d %s", r2.status, r2.Error)
			}

			for _, bad := range []struct {
				name, token string
				client      []string
			}{
				{"unknown session", dexToken("dexsessionnone", "secret-one"), nil},
				{"not base64", "!!!not-a-token", nil},
				{"not protobuf", "AAAA", nil},
				{"no secret", dexToken("dexsessiontwo", ""), nil},
				{"another client", dexToken("dexsessiontwo", "secret-two"), []string{s.PublicClientID}},
			} {
				var got tokenResponse
				if bad.client != nil {
					got = postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bad.token}, "client_id": bad.client})
				} else {
					got = refresh(bad.token)
				}
				if got.status != 400 || got.Error != "invalid_grant" {
					t.Errorf("%s: %d %s, want 400 invalid_grant", bad.name, got.status, got.Error)
				}
			}
			// A guessed secret for a real session: refused, and the session
			// ends (the genuine token no longer works either).
			if got := refresh(dexToken("dexsessiontwo", "guessed")); got.status != 400 || got.Error != "invalid_grant" {
				t.Fatalf("wrong secret: %d %s", got.status, got.Error)
			}
			if got := refresh(dexToken("dexsessiontwo", "secret-two")); got.status != 400 {
				t.Fatalf("the session survived a wrong secret: %d", got.status)
			}
			f, err := store.GetRefreshFamily(ctx, "dexsessiontwo")
			if err != nil || !f.Revoked {
				t.Fatalf("session after a wrong secret: %+v %v", f, err)
			}
			if _, ok := store.dex["dexsessionone"]; ok {
				t.Error("Dex's token was not taken over")
			}
			if err := store.ImportDexRefreshToken(ctx, "dexsessionone"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Dex's token can be imported again: %v", err)
			}
		})
	}
}
