package dexcompat

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"
)

func TestFamily(t *testing.T) {
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	used := created.Add(time.Hour)
	for _, tc := range []struct {
		name     string
		tok      RefreshToken
		session  []byte
		wantData string
		wantPrev bool
	}{
		{"own connector data", RefreshToken{ID: "r1", Token: "s2", ObsoleteToken: "s1", ConnectorData: []byte("own")}, []byte("session"), "own", true},
		{"offline session's", RefreshToken{ID: "r2", Token: "s1"}, []byte("session"), "session", false},
		{"none", RefreshToken{ID: "r3", Token: "s1"}, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tok.CreatedAt, tc.tok.LastUsed, tc.tok.ClientID, tc.tok.ConnectorID = created, used, "kubernetes", "github"
			tc.tok.Claims = Claims{UserID: "u", Email: "u@example.com", Groups: []string{"org:team"}}
			f, err := Family(tc.tok, tc.session)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(tc.tok.Token))
			if f.ID != tc.tok.ID || !bytes.Equal(f.CurrentHash, sum[:]) || string(f.ConnectorData) != tc.wantData ||
				f.Generation != ImportedGeneration || len(f.RotationKey) != 32 || f.Claims.Groups[0] != "org:team" ||
				!f.CreatedAt.Equal(created) || !f.LastUsed.Equal(used) || !f.ClaimsRefreshedAt.Equal(used) {
				t.Fatalf("%+v", f)
			}
			if tc.wantPrev != (f.PreviousHash != nil) || tc.wantPrev && (!bytes.Equal(f.PreviousHash, SecretHash("s1")) || !f.RotatedAt.Equal(used)) {
				t.Fatalf("previous secret: %x at %v", f.PreviousHash, f.RotatedAt)
			}
			g, _ := Family(tc.tok, tc.session)
			if bytes.Equal(f.RotationKey, g.RotationKey) {
				t.Fatal("two translations share a rotation key")
			}
		})
	}
}

func TestKeysNeedAPrivateKey(t *testing.T) {
	for _, k := range []Keys{
		{SigningKey: []byte(`not json`)},
		{SigningKey: []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"pub"}`)},
	} {
		if _, err := k.Storage(); err == nil {
			t.Errorf("%s: no error", k.SigningKey)
		}
	}
}
