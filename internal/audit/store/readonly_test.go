package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// TestOpenReadOnly: the query commands' store reads what the sink stored
// while the sink holds its write lock (Open's migration transaction would
// wait for it), refuses every write, migrates a store of an older schema
// as Open does, and names a newer schema.
func TestOpenReadOnly(t *testing.T) {
	for _, b := range []struct {
		name         string
		driver, lock string
		dsn          func(t *testing.T) (typ, dsn, rawDSN string)
	}{
		{"sqlite", "sqlite", "INSERT INTO audit_schema (version) VALUES (-1)", func(t *testing.T) (string, string, string) {
			f := filepath.Join(t.TempDir(), "audit.db")
			return "sqlite3", f, "file:" + f + "?_pragma=busy_timeout(10000)"
		}},
		// The lock every migration takes first.
		{"postgres", "pgx", "SELECT pg_advisory_xact_lock(7170751)", func(t *testing.T) (string, string, string) {
			dsn := pgtest.DSN(t)
			return "postgres", dsn, dsn
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			typ, dsn, raw := b.dsn(t)
			ctx := context.Background()
			events := genEvents(t, 31, 120)
			w, err := store.Open(ctx, typ, dsn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Insert(ctx, events); err != nil {
				t.Fatal(err)
			}
			release := stall(t, b.driver, raw, b.lock)
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := store.OpenReadOnly(qctx, typ, dsn)
			if err != nil {
				t.Fatalf("open read-only while the writer holds its lock: %v", err)
			}
			got, _, err := r.Query(qctx, query.Filter{User: events[7].User, IncludeRaw: true, Limit: 1000})
			cancel()
			release()
			if err != nil || len(got) == 0 {
				t.Fatalf("query while the writer holds its lock: %d events, %v", len(got), err)
			}
			for _, e := range got {
				if e.User != events[7].User || len(e.Raw) == 0 {
					t.Fatalf("event %s: user %q, %d bytes of JSON", e.AuditID, e.User, len(e.Raw))
				}
			}
			if _, err := r.Insert(ctx, genEvents(t, 32, 1)); !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("Insert on a read-only store: %v", err)
			}
			if _, err := r.Retain(ctx, store.Retention{MaxEvents: 1}, time.Now()); !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("Retain on a read-only store: %v", err)
			}
			if err := r.Optimize(ctx); !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("Optimize on a read-only store: %v", err)
			}
			if n, err := w.Count(ctx); err != nil || n != int64(len(events)) {
				t.Errorf("the store holds %d events after the refused writes, %v; want %d", n, err, len(events))
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			// A schema this gatehouse does not know yet.
			if err := store.Exec(ctx, w, "INSERT INTO audit_schema (version) VALUES (999)"); err != nil {
				t.Fatal(err)
			}
			if _, err := store.OpenReadOnly(ctx, typ, dsn); err == nil || !strings.Contains(err.Error(), "999") {
				t.Errorf("open a store of schema 999: %v, want an error naming it", err)
			}
			w.Close()
		})
	}
}

// TestOpenReadOnlyMigratesOldSchema: an older store is migrated when the
// query command opens it, as before.
func TestOpenReadOnlyMigratesOldSchema(t *testing.T) {
	for _, typ := range []string{"sqlite3", "postgres"} {
		t.Run(typ, func(t *testing.T) {
			ctx := context.Background()
			dsn := filepath.Join(t.TempDir(), "audit.db")
			if typ == "postgres" {
				dsn = pgtest.DSN(t)
			}
			restore := store.MigrateUpTo(1)
			old, err := store.Open(ctx, typ, dsn)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			old.Close()
			r, err := store.OpenReadOnly(ctx, typ, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Insert(ctx, genEvents(t, 33, 3)); !errors.Is(err, store.ErrReadOnly) {
				t.Fatalf("Insert after the migration: %v, want read-only", err)
			}
			if n, err := store.Rows(ctx, r, "audit_schema"); err != nil || n < 2 {
				t.Fatalf("audit_schema: %d versions, %v; want the store migrated", n, err)
			}
			if n, err := store.Rows(ctx, r, "event_batches"); err != nil || n != 0 {
				t.Fatalf("event_batches: %d rows, %v", n, err)
			}
		})
	}
}
