package store

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
)

// SetBucketEvents sets how many events share a name index bucket and
// returns a function that restores it.
func SetBucketEvents(n int) func() {
	old := bucketEvents
	bucketEvents = n
	return func() { bucketEvents = old }
}

// MigrateUpTo makes Open apply the migrations up to version v only (0:
// all) and returns a function that restores it.
func MigrateUpTo(v int) func() {
	old := migrateUpTo
	migrateUpTo = v
	return func() { migrateUpTo = old }
}

// Exec runs a statement on the store's writing connection (? placeholders).
func Exec(ctx context.Context, db *DB, q string, args ...any) error {
	_, err := db.w.ExecContext(ctx, db.rebind(q), args...)
	return err
}

// Rows counts the rows of a table.
func Rows(ctx context.Context, db *DB, table string) (int64, error) {
	var n int64
	err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

// LegacyBlob is raw compressed as the first stores of schema 2 kept a
// batch (zstdMark: the whole batch in one zstd frame, no index).
func LegacyBlob(raw []byte) []byte {
	if err := zstdInit(); err != nil {
		panic(err)
	}
	return zstdEnc.EncodeAll(raw, []byte{zstdMark})
}

// SetProbeCap sets how many events the planner's probes count in an
// index and returns a function that restores it.
func SetProbeCap(n int) func() {
	old := probeCap
	probeCap = n
	return func() { probeCap = old }
}

// IndexColumns lists the columns of a SQLite index, in order.
func IndexColumns(ctx context.Context, db *DB, index string) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DrivingIndex is the FROM clause Query uses for f.
func DrivingIndex(ctx context.Context, db *DB, f query.Filter) (string, error) {
	from, _, _, _, err := db.where(ctx, f, true)
	return from, err
}
