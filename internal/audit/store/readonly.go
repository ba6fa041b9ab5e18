package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ErrReadOnly is returned by the writing methods of a store opened with
// OpenReadOnly.
var ErrReadOnly = errors.New("the audit store is open read-only (gatehouse audit query/tail)")

// OpenReadOnly opens a store for reading only, as `gatehouse audit query`
// and `tail` need it: no migration transaction (which would wait for the
// sink's write lock), no writer, no prepared inserts, no checkpoint at
// Close, and SQLite connections with query_only set. A store whose
// schema is older than this gatehouse's is first migrated with Open, as
// opening it always did; a newer one is an error.
func OpenReadOnly(ctx context.Context, typ, dsn string) (*DB, error) {
	var db *DB
	switch typ {
	case "sqlite3", "sqlite", "":
		file, q, err := sqliteDSN(dsn)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("open audit store: %w", err)
		}
		q.Add("_pragma", "query_only(1)")
		r, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open audit store %s: %w", file, err)
		}
		r.SetMaxOpenConns(4)
		db = &DB{kind: "sqlite", r: r, dict: newDict(), readOnly: true}
	case "postgres", "postgresql":
		c, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open audit store: %w", err)
		}
		c.SetMaxOpenConns(4)
		db = &DB{kind: "postgres", r: c, dict: newDict(), readOnly: true}
	default:
		return Open(ctx, typ, dsn)
	}
	have, err := db.schemaVersion(ctx)
	if err == nil {
		want := latestSchema()
		switch {
		case have > want:
			err = fmt.Errorf("open audit store: its schema is version %d, newer than this gatehouse knows (%d): use the gatehouse release that wrote it", have, want)
		case have < want:
			// An older store: migrate it, as opening it always did, then
			// open it again read-only.
			db.r.Close()
			w, err := Open(ctx, typ, dsn)
			if err != nil {
				return nil, err
			}
			if err := w.Close(); err != nil {
				return nil, err
			}
			return OpenReadOnly(ctx, typ, dsn)
		}
	}
	if err != nil {
		db.r.Close()
		return nil, err
	}
	return db, nil
}

// OpenDSNReadOnly is OpenReadOnly for a DSN as OpenDSN takes it.
func OpenDSNReadOnly(ctx context.Context, dsn string) (*DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenReadOnly(ctx, "postgres", dsn)
	}
	return OpenReadOnly(ctx, "sqlite3", dsn)
}

// schemaVersion reads the store's schema version (0: no audit store yet).
func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.r.QueryRowContext(ctx, "SELECT MAX(version) FROM audit_schema").Scan(&v)
	if err != nil {
		// A file or database where gatehouse never stored audit events.
		var n int
		probe := "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_schema'"
		if db.kind == "postgres" {
			probe = "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'audit_schema' AND schemaname = current_schema()"
		}
		if perr := db.r.QueryRowContext(ctx, probe).Scan(&n); perr == nil && n == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("open audit store: %w", err)
	}
	return int(v.Int64), nil
}

// latestSchema is the highest migration version this gatehouse has.
func latestSchema() int {
	entries, _ := fs.ReadDir(migrations, "migrations/sqlite")
	v := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0]); err == nil && n > v && (migrateUpTo == 0 || n <= migrateUpTo) {
			v = n
		}
	}
	return v
}
