package warm

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

func tokenExpiring(exp time.Time) string {
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".c2ln"
}

func TestServe(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key := tokencache.Key{IssuerURL: "https://i", ClientID: "c"}
	tests := []struct {
		name   string
		entry  *tokencache.Entry
		margin time.Duration
		want   bool
	}{
		{"no entry", nil, time.Minute, false},
		{"valid", &tokencache.Entry{IDToken: tokenExpiring(now.Add(time.Hour))}, time.Minute, true},
		{"within the margin", &tokencache.Entry{IDToken: tokenExpiring(now.Add(30 * time.Second))}, time.Minute, false},
		{"exactly at the margin", &tokencache.Entry{IDToken: tokenExpiring(now.Add(time.Minute))}, time.Minute, false},
		{"expired", &tokencache.Entry{IDToken: tokenExpiring(now.Add(-time.Second))}, 0, false},
		{"refresh token only", &tokencache.Entry{RefreshToken: "r"}, 0, false},
		{"garbage token", &tokencache.Entry{IDToken: "garbage"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tokencache.Store{Dir: t.TempDir()}
			if tt.entry != nil {
				if err := store.Save(key, *tt.entry); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			done, err := Serve(&out, store, key, execcredential.Info{APIVersion: execcredential.V1}, now, tt.margin)
			if err != nil || done != tt.want || (out.Len() > 0) != tt.want {
				t.Fatalf("Serve = %v, %v, output %q", done, err, out.String())
			}
		})
	}
}
