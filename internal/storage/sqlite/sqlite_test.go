package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/internal/storage/sqlite"
)

func open(t testing.TB, file string) *sqlite.Storage {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{File: file})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) storage.Storage {
		s := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestPersistence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.db")
	conformance.RunPersistence(t, func(t *testing.T) storage.Storage { return open(t, file) })
}

// TestMigrations checks that migrations are recorded once, that opening
// again applies nothing twice, and that stores opening one new file at
// the same time take turns.
func TestMigrations(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.db")
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), sqlite.Config{File: file})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s := open(t, file)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT version, name FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v int64
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v, name))
	}
	if want := []string{"1 0001_init.sql", "2 0002_sessions_by_login.sql"}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations: %q, want %q", got, want)
	}
	var mode string
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
}

func TestOpenNeedsFile(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), sqlite.Config{}); err == nil {
		t.Fatal("Open without a file succeeded")
	}
	if _, err := sqlite.Open(t.Context(), sqlite.Config{File: filepath.Join(t.TempDir(), "missing-dir", "x.db")}); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func BenchmarkRotation(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	conformance.BenchmarkRotation(b, s)
}

// TestFileMode checks that a new database, which holds the private
// signing key, and its WAL are readable by their owner only.
func TestFileMode(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.db")
	s := open(t, file)
	defer s.Close()
	if err := s.UpdateKeys(t.Context(), 0, storage.Keys{SigningKey: []byte("private")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{file, file + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), m)
		}
	}
}

// TestFileNames opens files whose names SQLite's URI syntax would read
// otherwise: each must be the file created, and opened again.
func TestFileNames(t *testing.T) {
	for _, name := range []string{"a b.db", "x%41.db", "q?_pragma=query_only(1).db", "h#frag.db", "%.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, name)
			s := open(t, file)
			if err := s.CreatePassword(t.Context(), storage.Password{Email: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{name}) {
				t.Fatalf("files in the directory: %q, want only %q", names, name)
			}
			s = open(t, file)
			defer s.Close()
			if _, err := s.GetPassword(t.Context(), "a@example.com"); err != nil {
				t.Fatalf("after reopening: %v", err)
			}
		})
	}
}

// TestGarbageCollectInBatches collects more rows than one batch deletes.
func TestGarbageCollectInBatches(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	defer s.Close()
	ctx := t.Context()
	const n = 1234
	old := time.Now().Add(-time.Hour)
	for i := range n {
		if err := s.CreateAuthRequest(ctx, storage.AuthRequest{ID: fmt.Sprintf("req-%d", i), Expiry: old}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshFamily(ctx, storage.RefreshFamily{ID: fmt.Sprintf("fam-%d", i), Revoked: i%2 == 0, CreatedAt: old, LastUsed: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAuthRequest(ctx, storage.AuthRequest{ID: "live", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res, err := s.GarbageCollect(ctx, time.Now(), time.Time{}, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := (storage.GCResult{AuthRequests: n, RefreshTokens: n / 2}); res != want {
		t.Fatalf("GarbageCollect: %+v, want %+v", res, want)
	}
	if _, err := s.GetAuthRequest(ctx, "live"); err != nil {
		t.Fatal(err)
	}
}
