package postgres_test

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

func open(t testing.TB, dsn string) *postgres.Storage {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) storage.Storage {
		s := open(t, pgtest.DSN(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestPersistence(t *testing.T) {
	dsn := pgtest.DSN(t)
	conformance.RunPersistence(t, func(t *testing.T) storage.Storage { return open(t, dsn) })
}

// TestReplicas starts several stores on one new database at once, as
// replicas of a Deployment do: the migrations are applied exactly once,
// and the stores then share their updates safely.
func TestReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	stores := make([]*postgres.Storage, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), postgres.Config{DSN: dsn})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, _ := conn.Query(t.Context(), "SELECT version::text || ' ' || name FROM schema_migrations ORDER BY version")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1 0001_init.sql", "2 0002_sessions_by_login.sql"}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations: %q, want %q", got, want)
	}
	// Opening again applies nothing.
	again := open(t, dsn)
	_ = again.Close()

	// Rotations of one family spread over the replicas lose nothing.
	ctx := t.Context()
	if err := stores[0].CreateRefreshFamily(ctx, storage.RefreshFamily{ID: "shared", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const rounds = 25
	for i := range n {
		wg.Go(func() {
			for range rounds {
				err := stores[i].UpdateRefreshFamily(ctx, "shared", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
					f.Generation++
					return f, nil
				})
				if err != nil {
					t.Errorf("replica %d: UpdateRefreshFamily: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	f, err := stores[n-1].GetRefreshFamily(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if f.Generation != n*rounds {
		t.Fatalf("Generation %d after %d rotations across %d replicas", f.Generation, n*rounds, n)
	}

	// Key rotation: exactly one replica wins each version.
	for v := range int64(5) {
		var wins atomic.Int64
		for i := range n {
			wg.Go(func() {
				err := stores[i].UpdateKeys(ctx, v, storage.Keys{SigningKey: []byte(fmt.Sprintf("replica-%d", i))})
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, storage.ErrConflict) {
					t.Errorf("replica %d: UpdateKeys: %v", i, err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("version %d: %d replicas won the key rotation, want 1", v, wins.Load())
		}
	}
}

func TestConnString(t *testing.T) {
	tests := []struct {
		name string
		cfg  postgres.Config
		want string
	}{
		{"dsn used as is", postgres.Config{DSN: "postgres://u@h/db?sslmode=disable", Host: "ignored"}, "postgres://u@h/db?sslmode=disable"},
		{"dex keys, default sslmode verify-full", postgres.Config{Host: "db.example.com", Port: 5433, Database: "dex", User: "dex", Password: "s3cret"},
			"host=db.example.com port=5433 user=dex password=s3cret dbname=dex sslmode=verify-full"},
		{"port in host wins", postgres.Config{Host: "db:6000", Port: 5432, Database: "dex"}, "host=db port=6000 dbname=dex sslmode=verify-full"},
		{"ipv6 host with port", postgres.Config{Host: "[::1]:5432"}, "host=::1 port=5432 sslmode=verify-full"},
		{"quoting", postgres.Config{Host: "h", User: "a b", Password: `it's\x`}, `host=h user='a b' password='it\'s\\x' sslmode=verify-full`},
		{"ssl files and timeout", postgres.Config{Host: "h", SSL: postgres.SSL{Mode: "verify-ca", CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"}, ConnectionTimeout: 7},
			"host=h sslmode=verify-ca sslrootcert=/ca.pem sslcert=/c.pem sslkey=/k.pem connect_timeout=7"},
		{"user only", postgres.Config{Host: "h", User: "u"}, "host=h user=u sslmode=verify-full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.ConnString(); got != tc.want {
				t.Fatalf("ConnString:\n got %s\nwant %s", got, tc.want)
			}
			if _, err := pgx.ParseConfig(tc.cfg.ConnString()); err != nil && tc.cfg.SSL.CAFile == "" {
				t.Fatalf("pgx cannot parse %q: %v", tc.cfg.ConnString(), err)
			}
		})
	}
}

// TestOpenWithDexKeys opens the test database through the Dex keys rather
// than the DSN, with the pool settings.
func TestOpenWithDexKeys(t *testing.T) {
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	pw, _ := u.User.Password()
	cfg := postgres.Config{
		Host: u.Hostname(), Port: uint16(port), Database: strings.TrimPrefix(u.Path, "/"), User: u.User.Username(), Password: pw,
		SSL: postgres.SSL{Mode: "disable"}, ConnectionTimeout: 5, MaxOpenConns: 3, MaxIdleConns: 1, ConnMaxLifetime: 60,
	}
	s, err := postgres.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(t.Context(), postgres.Config{DSN: "postgres://%zz"}); err == nil {
		t.Fatal("Open with a malformed DSN succeeded")
	}
}

// BenchmarkRotation runs with Dex's default pool size (5) and with one
// connection per worker of the bench/ load test (16).
func BenchmarkRotation(b *testing.B) {
	// One database for every run: creating one costs a checkpoint, whose
	// writes would land in the measurement.
	dsn := pgtest.DSN(b)
	for _, conns := range []int{5, 16} {
		b.Run(fmt.Sprintf("maxOpenConns=%d", conns), func(b *testing.B) {
			s, err := postgres.Open(b.Context(), postgres.Config{DSN: dsn, MaxOpenConns: conns})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			conformance.BenchmarkRotation(b, s)
		})
	}
}

// TestGarbageCollectOneReplicaAtATime holds the collection lock as another
// replica would and checks that GarbageCollect then steps aside.
func TestGarbageCollectOneReplicaAtATime(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateAuthRequest(ctx, storage.AuthRequest{ID: "old", Expiry: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got bool
	// 0x6761746568_6f7573 + 1: the key postgres.go uses.
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", int64(0x6761746568_6f7573+1)).Scan(&got); err != nil || !got {
		t.Fatalf("take the lock: %v %v", got, err)
	}
	res, err := s.GarbageCollect(ctx, time.Now(), time.Time{}, time.Time{})
	if err != nil || !res.IsEmpty() {
		t.Fatalf("GarbageCollect while another replica collects: %+v, %v; want nothing done", res, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = s.GarbageCollect(ctx, time.Now(), time.Time{}, time.Time{})
	if err != nil || res.AuthRequests != 1 {
		t.Fatalf("GarbageCollect after the lock was released: %+v, %v; want 1 auth request", res, err)
	}
}
