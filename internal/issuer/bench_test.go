package issuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// benchIssuer is an issuer handler without TLS or sockets, so the
// benchmark measures the issuer and its storage, not the network.
func benchIssuer(b *testing.B, store storage.Storage, alg keys.Algorithm) http.Handler {
	b.Helper()
	km, err := keys.NewManager(keys.Options{Storage: store, Algorithm: alg})
	if err != nil {
		b.Fatal(err)
	}
	if err := km.Rotate(context.Background()); err != nil {
		b.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	lc, err := local.New([]local.User{{Email: "a@example.com", Hash: hash, Username: "a", UserID: "a", Groups: []string{"exampleorg:infra-team"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := issuer.New(issuer.Options{
		Issuer: "https://issuer.example/dex", Storage: store, Keys: km, PasswordConnector: local.ID,
		Clients:    []issuer.Client{{ID: "kubernetes", Secret: "s", RedirectURIs: []string{"http://localhost:8000"}}},
		Connectors: []issuer.Connector{{ID: local.ID, Name: "Email", Impl: lc}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

func benchGrant(h http.Handler, form url.Values) (map[string]any, int) {
	req := httptest.NewRequest(http.MethodPost, "https://issuer.example/dex/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("kubernetes", "s")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return out, rec.Code
}

// BenchmarkRefreshGrant rotates refresh tokens, one chain per goroutine.
func BenchmarkRefreshGrant(b *testing.B) {
	for _, alg := range []keys.Algorithm{keys.RS256, keys.ES256} {
		b.Run(string(alg)+"/memory", func(b *testing.B) {
			benchRefresh(b, benchIssuer(b, memory.New(), alg))
		})
		b.Run(string(alg)+"/sqlite", func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), sqlite.Config{File: filepath.Join(b.TempDir(), "bench.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchRefresh(b, benchIssuer(b, st, alg))
		})
		b.Run(string(alg)+"/postgres", func(b *testing.B) {
			st, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchRefresh(b, benchIssuer(b, st, alg))
		})
	}
}

func benchRefresh(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		out, code := benchGrant(h, url.Values{"grant_type": {"password"}, "username": {"a@example.com"}, "password": {"pw"}, "scope": {"openid email groups offline_access"}})
		if code != 200 {
			b.Errorf("password grant: %d %v", code, out)
			return
		}
		tok := out["refresh_token"].(string)
		for pb.Next() {
			out, code := benchGrant(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}})
			if code != 200 {
				b.Errorf("refresh: %d %v", code, out)
				return
			}
			tok = out["refresh_token"].(string)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refresh/s")
	_ = time.Second
}
