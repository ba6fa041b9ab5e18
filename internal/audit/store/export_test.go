package store

import "context"

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
// index (first and second round) and returns a function that restores
// them.
func SetProbeCap(n, n2 int) func() {
	old, old2 := probeCap, probeCap2
	probeCap, probeCap2 = n, n2
	return func() { probeCap, probeCap2 = old, old2 }
}
