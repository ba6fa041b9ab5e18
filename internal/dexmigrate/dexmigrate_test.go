package dexmigrate

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/dexmigrate/dexfixture"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// source is a Dex database holding the fixture, and a way to change it
// as a running Dex would.
type source struct {
	cfg  config.Storage
	db   *sql.DB
	bind func(string) string
}

func sqliteSource(t *testing.T, fx *dexfixture.Fixture) source {
	file := filepath.Join(t.TempDir(), "dex.db")
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fx.Write(t, db, dexfixture.SQLite)
	return source{cfg: config.Storage{Type: config.StorageSQLite3, SQLite3: config.SQLite3{File: file}}, db: db, bind: func(s string) string { return s }}
}

func postgresSource(t *testing.T, fx *dexfixture.Fixture) source {
	dsn := pgtest.DSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fx.Write(t, db, dexfixture.Postgres)
	return source{cfg: config.Storage{Type: config.StoragePostgres, Postgres: config.Postgres{DSN: dsn}}, db: db,
		bind: func(s string) string { return strings.NewReplacer("?1", "$1", "?2", "$2", "?3", "$3").Replace(s) }}
}

func read(t *testing.T, src source) *dexcompat.Snapshot {
	t.Helper()
	snap, err := Read(context.Background(), src.cfg, kubernetes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func plan(t *testing.T, snap *dexcompat.Snapshot, target storage.Storage) *Plan {
	t.Helper()
	p, err := NewPlan(context.Background(), snap, target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func actions(p *Plan) map[string]Action {
	m := map[string]Action{}
	for _, it := range p.Items {
		m[it.Kind+" "+it.Key] = it.Action
	}
	return m
}

// TestFromDexDatabase reads Dex's SQL tables as Dex writes them, copies
// them, copies again (nothing to do), follows what Dex changes between
// two runs, and leaves alone what gatehouse already used.
func TestFromDexDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T, *dexfixture.Fixture) source
	}{{"sqlite3", sqliteSource}, {"postgres", postgresSource}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fx := dexfixture.New(t)
			src := tc.open(t, fx)
			snap := read(t, src)

			if len(snap.Passwords) != 1 || snap.Passwords[0].Email != fx.Email || snap.Passwords[0].UserID != fx.UserID {
				t.Fatalf("passwords: %+v", snap.Passwords)
			}
			if snap.Keys == nil || dexcompat.KeyID(snap.Keys.SigningKey) != fx.SigningKey.KeyID || len(snap.Keys.VerificationKeys) != 1 ||
				!snap.Keys.NextRotation.Equal(fx.NextRotation) {
				t.Fatalf("keys: %+v", snap.Keys)
			}
			if len(snap.RefreshTokens) != 2 || len(snap.OfflineSessions) != 2 || len(snap.Clients) != 1 || len(snap.Connectors) != 1 {
				t.Fatalf("snapshot: %d refresh tokens, %d offline sessions, %d clients, %d connectors",
					len(snap.RefreshTokens), len(snap.OfflineSessions), len(snap.Clients), len(snap.Connectors))
			}
			gh := snap.RefreshTokens[0] // ordered by id: "dexgithub..." < "dexlocal..."
			if gh.ID != fx.GitHubRefreshID || gh.Token != "github-secret-1" || !gh.CreatedAt.Equal(fx.Now.Add(-2*time.Hour)) ||
				strings.Join(gh.Claims.Groups, ",") != "exampleorg:infra-team" || strings.Join(gh.Scopes, " ") != "openid offline_access email groups profile" {
				t.Fatalf("github refresh token: %+v", gh)
			}
			if c := snap.Clients[0]; c.ID != "grafana" || c.Secret != "grafana-secret" || len(c.RedirectURIs) != 1 || c.Public {
				t.Fatalf("client: %+v", c)
			}

			target := memory.New()
			p := plan(t, snap, target)
			want := map[string]Action{
				"password " + fx.Email: Create, "signing keys " + fx.SigningKey.KeyID: Create,
				"refresh token " + fx.LocalRefreshID: Create, "refresh token " + fx.GitHubRefreshID: Create,
			}
			mustActions(t, "first run", p, want)
			if err := p.Apply(ctx, target); err != nil {
				t.Fatal(err)
			}
			f, err := target.GetRefreshFamily(ctx, fx.GitHubRefreshID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.CurrentHash, dexcompat.SecretHash("github-secret-1")) || f.PreviousHash != nil ||
				!bytes.Equal(f.ConnectorData, fx.SessionConnectorData) || f.Claims.UserID != "1234" || f.ClientID != "kubernetes" {
				t.Fatalf("family from the github token: %+v", f)
			}
			f, err = target.GetRefreshFamily(ctx, fx.LocalRefreshID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.PreviousHash, dexcompat.SecretHash("local-secret-1")) || !f.RotatedAt.Equal(fx.Now.Add(-time.Hour)) {
				t.Fatalf("family from the local token keeps Dex's previous secret: %+v", f)
			}
			k, err := target.GetKeys(ctx)
			if err != nil || dexcompat.KeyID(k.SigningKey) != fx.SigningKey.KeyID || len(k.VerificationKeys) != 1 || k.Version != 1 {
				t.Fatalf("keys: %+v, %v", k, err)
			}

			// Again: nothing to do.
			for key := range want {
				want[key] = Unchanged
			}
			mustActions(t, "second run", plan(t, read(t, src), target), want)

			// Dex refreshes the local session meanwhile; gatehouse
			// refreshes the GitHub one.
			if _, err := src.db.Exec(src.bind(`update refresh_token set token = 'local-secret-3', obsolete_token = 'local-secret-2' where id = ?1`), fx.LocalRefreshID); err != nil {
				t.Fatal(err)
			}
			if err := target.UpdateRefreshFamily(ctx, fx.GitHubRefreshID, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
				f.Generation++
				f.PreviousHash, f.CurrentHash = f.CurrentHash, []byte("gatehouse's")
				return f, nil
			}); err != nil {
				t.Fatal(err)
			}
			want["refresh token "+fx.LocalRefreshID] = Update
			want["refresh token "+fx.GitHubRefreshID] = Skip
			p = plan(t, read(t, src), target)
			mustActions(t, "after Dex and gatehouse each refreshed a session", p, want)
			if err := p.Apply(ctx, target); err != nil {
				t.Fatal(err)
			}
			f, _ = target.GetRefreshFamily(ctx, fx.LocalRefreshID)
			if !bytes.Equal(f.CurrentHash, dexcompat.SecretHash("local-secret-3")) {
				t.Fatal("the local session does not hold Dex's new secret")
			}
			f, _ = target.GetRefreshFamily(ctx, fx.GitHubRefreshID)
			if string(f.CurrentHash) != "gatehouse's" {
				t.Fatal("the copy overwrote a session gatehouse had refreshed")
			}

			var out bytes.Buffer
			plan(t, read(t, src), target).Report(&out, true)
			for _, s := range []string{"would skip refresh token " + fx.GitHubRefreshID + " (already refreshed with gatehouse)",
				"passwords:      1 unchanged", "refresh tokens: 1 unchanged, 1 would skip", "1 client(s) and 1 connector(s)", "dry run: nothing was written"} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("report lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func mustActions(t *testing.T, what string, p *Plan, want map[string]Action) {
	t.Helper()
	got := actions(p)
	for k, a := range want {
		if got[k] != a {
			t.Errorf("%s: %s: %q, want %q", what, k, got[k], a)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d items, want %d: %v", what, len(got), len(want), got)
	}
}

// TestKeysBesideGatehouses: a store that already has keys keeps signing
// with them and publishes Dex's public keys until Dex's tokens expire.
func TestKeysBesideGatehouses(t *testing.T) {
	ctx := context.Background()
	fx := dexfixture.New(t)
	snap := read(t, sqliteSource(t, fx))
	target := memory.New()
	own := storage.Keys{SigningKey: []byte(`{"kid":"gatehouse-kid"}`), NextRotation: time.Now().Add(time.Hour)}
	if err := target.UpdateKeys(ctx, 0, own); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := NewPlan(ctx, snap, target, Options{DexIDTokenLifetime: 2 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(p)["signing keys "+fx.SigningKey.KeyID]; a != Update {
		t.Fatalf("keys: %s", a)
	}
	if err := p.Apply(ctx, target); err != nil {
		t.Fatal(err)
	}
	k, _ := target.GetKeys(ctx)
	if string(k.SigningKey) != string(own.SigningKey) || len(k.VerificationKeys) != 2 {
		t.Fatalf("keys after the copy: %+v", k)
	}
	expiry := map[string]time.Time{}
	for _, v := range k.VerificationKeys {
		expiry[dexcompat.KeyID(v.PublicKey)] = v.Expiry
	}
	if !expiry[fx.SigningKey.KeyID].Equal(now.Add(2*time.Hour).UTC().Truncate(time.Microsecond)) || !expiry[fx.OldKey.KeyID].Equal(fx.Now.Add(20*time.Hour)) {
		t.Fatalf("expiries: %v", expiry)
	}
	// Again: already published.
	p, _ = NewPlan(ctx, snap, target, Options{})
	if a := actions(p)["signing keys "+fx.SigningKey.KeyID]; a != Unchanged {
		t.Fatalf("keys on the second run: %s", a)
	}
}

func TestReadRefusesMemoryAndUnknown(t *testing.T) {
	for _, tc := range []struct {
		typ, want string
	}{{"memory", "nothing to copy"}, {"etcd", `storage type "etcd"`}} {
		_, err := Read(context.Background(), config.Storage{Type: tc.typ}, kubernetes.Config{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.typ, err)
		}
	}
	_, err := Read(context.Background(), config.Storage{Type: config.StorageSQLite3, SQLite3: config.SQLite3{File: filepath.Join(t.TempDir(), "empty.db")}}, kubernetes.Config{})
	if err == nil || !strings.Contains(err.Error(), "is this Dex's database?") {
		t.Errorf("a file that is not Dex's: %v", err)
	}
}
