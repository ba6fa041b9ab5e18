// Package sqlite is the SQLite storage backend (Dex's `storage: {type:
// sqlite3}`), on modernc.org/sqlite: pure Go, no cgo.
//
// SQLite lets one writer at a time hold the database; a second connection
// that tries to write meanwhile waits (busy_timeout) and can still fail
// with SQLITE_BUSY when a deferred transaction tries to upgrade its read
// lock. So every write goes through one writer connection, whose
// transactions begin IMMEDIATE (taking the write lock before they read):
// concurrent writers queue in Go for that connection instead of racing in
// SQLite. Reads that are not part of an update use a pool of read-only
// connections, which WAL mode lets run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/migrate"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/sqlrow"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config is the config of storage type sqlite3.
type Config struct {
	// File is the database file, created if missing.
	File string
}

// readers is the size of the read-only connection pool.
const readers = 4

// Storage is a SQLite database. It is safe for concurrent use.
type Storage struct {
	w      *sql.DB // one connection; transactions BEGIN IMMEDIATE
	r      *sql.DB // read-only pool
	ws, rs *stmts  // prepared statements of w and r
	now    func() time.Time

	reqs, codes, families, devices, pwds sqlrow.Queries
	keysSelect, keysInsert, keysUpdate   string
	listFamilies, listPasswords, byCode  string
	listFamiliesByClaim                  map[string]string // by claim name
}

var _ storage.Storage = (*Storage)(nil)

var dialect = sqlrow.Dialect{
	Param:   sqlrow.NumberedParam,
	TimeArg: func(t time.Time) any { return t.UnixMicro() },
	TimeScan: func(p *time.Time) (any, func()) {
		v := new(int64)
		return v, func() { *p = time.UnixMicro(*v).UTC() }
	},
}

// dsn returns the driver's DSN for file. The pragmas run on every new
// connection:
//   - journal_mode=WAL: readers do not block the writer nor it them.
//   - synchronous=NORMAL: in WAL mode a commit is written to the WAL
//     before COMMIT returns but the WAL is fsynced only at checkpoints. A
//     committed transaction therefore survives the process being killed
//     (kill -9, OOM, panic): the data is in the OS page cache and SQLite
//     recovers it from the WAL on the next open (TestCrash checks this).
//     What it does not survive is the machine losing power or the kernel
//     crashing before the next checkpoint: the last transactions may be
//     rolled back (never corrupted). FULL would fsync on every commit and
//     cost most of the write throughput.
//   - busy_timeout: another process holding the write lock (a backup, the
//     sqlite3 shell) is waited for rather than failed on.
//   - foreign_keys=ON: no table uses them yet; on so that one that does
//     is enforced.
func dsn(file string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "1")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + uriPath.Replace(file) + "?" + q.Encode()
}

// uriPath escapes what SQLite's URI file names would otherwise read as a
// query, a fragment or a %-escape (a file "x%41.db" would open "xA.db").
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Open opens the database in cfg.File, creating it if missing, and applies
// the migrations it lacks.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.File == "" {
		return nil, errors.New("sqlite storage: file is required")
	}
	// The file holds the private signing key: readable by its owner only.
	// SQLite gives the -wal and -shm files the same mode.
	if f, err := os.OpenFile(cfg.File, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite storage: %w", err)
	}
	w, err := sql.Open("sqlite", dsn(cfg.File, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite storage %s: %w", cfg.File, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrateTakingTurns(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite storage %s: %w", cfg.File, err)
	}
	r, err := sql.Open("sqlite", dsn(cfg.File, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite storage %s: %w", cfg.File, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)

	keyCols := sqlrow.Keys.Columns()
	s := &Storage{
		w: w, r: r, ws: newStmts(w), rs: newStmts(r), now: time.Now,
		reqs:       sqlrow.NewQueries(sqlrow.AuthRequests, &dialect),
		codes:      sqlrow.NewQueries(sqlrow.AuthCodes, &dialect),
		families:   sqlrow.NewQueries(sqlrow.RefreshFamilies, &dialect),
		devices:    sqlrow.NewQueries(sqlrow.DeviceRequests, &dialect),
		pwds:       sqlrow.NewQueries(sqlrow.Passwords, &dialect),
		keysSelect: "SELECT " + strings.Join(keyCols, ", ") + " FROM signing_keys WHERE id = 1",
		keysInsert: "INSERT INTO signing_keys (id, " + strings.Join(keyCols, ", ") + ") VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
		keysUpdate: "UPDATE signing_keys SET signing_key = ?1, verification_keys = ?2, next_rotation = ?3, version = ?4 WHERE id = 1 AND version = ?5",
	}
	s.listFamilies = "SELECT " + s.families.Cols + " FROM refresh_families WHERE connector_id = ?1 AND user_id = ?2 ORDER BY created_at DESC, id"
	s.listFamiliesByClaim = map[string]string{}
	for _, c := range []string{storage.ClaimPreferredUsername, storage.ClaimEmail} {
		// The column carries the claim's name (migration 0002 indexes it).
		s.listFamiliesByClaim[c] = "SELECT " + s.families.Cols + " FROM refresh_families WHERE " + c + " = ?1 ORDER BY created_at DESC, id LIMIT ?2"
	}
	s.byCode = "SELECT " + s.devices.Cols + " FROM device_requests WHERE user_code = ?1"
	s.listPasswords = "SELECT " + s.pwds.Cols + " FROM passwords ORDER BY email"
	// Prepare the writer's statements now: one prepared lazily inside a
	// transaction would wait for the only connection, which that
	// transaction holds.
	for _, q := range []sqlrow.Queries{s.reqs, s.codes, s.families, s.devices, s.pwds} {
		for _, query := range []string{q.Insert, q.Select, q.Update, q.Delete} {
			if _, err := s.ws.get(ctx, query); err != nil {
				s.Close()
				return nil, fmt.Errorf("sqlite storage %s: prepare: %w", cfg.File, err)
			}
		}
	}
	for _, query := range []string{s.keysInsert, s.keysUpdate} {
		if _, err := s.ws.get(ctx, query); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite storage %s: prepare: %w", cfg.File, err)
		}
	}
	s.ws.frozen = true
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite storage %s: %w", cfg.File, err)
	}
	return s, nil
}

// busyWait bounds how long Open retries migrations that meet SQLITE_BUSY,
// as long as busy_timeout would have waited.
const busyWait = 10 * time.Second

// migrateTakingTurns runs the migrations, trying again while the database
// is busy. busy_timeout makes SQLite wait for another connection's lock in
// most cases, but not in all: a connection that opens a brand-new file
// while another one switches it to WAL (or recovers its WAL) is answered
// SQLITE_BUSY at once, without the busy handler (seen with three stores
// opening one new file together, TestMigrations). Such a store takes its
// turn a moment later instead of failing to start.
func migrateTakingTurns(ctx context.Context, w *sql.DB) error {
	deadline := time.Now().Add(busyWait)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		err := runMigrations(ctx, w)
		if err == nil || !isBusy(err) || time.Now().Add(pause).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// isBusy reports SQLITE_BUSY (any of its extended codes).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// runMigrations applies, in one IMMEDIATE transaction (so two processes
// opening the file at once take turns), the migrations not yet recorded in
// schema_migrations. Versions newer than this binary knows are left alone:
// migrations are additive, so an older gatehouse can still run after a
// rollback.
func runMigrations(ctx context.Context, w *sql.DB) error {
	all, err := migrate.List(migrations, "migrations")
	if err != nil {
		return err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes every connection; the last one to close checkpoints the WAL.
func (s *Storage) Close() error {
	s.rs.close()
	s.ws.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the database answers a read.
func (s *Storage) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite storage: ping: %w", err)
	}
	return nil
}

// isDuplicate reports a primary key or unique constraint violation.
func isDuplicate(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func create[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], q *sqlrow.Queries, v T) error {
	args, err := t.Args(&dialect, &v)
	if err != nil {
		return fmt.Errorf("sqlite storage: create %s: %w", t.Name, err)
	}
	if _, err := s.ws.exec(ctx, nil, q.Insert, args...); err != nil {
		if isDuplicate(err) {
			return storage.ErrAlreadyExists
		}
		return fmt.Errorf("sqlite storage: create %s: %w", t.Name, err)
	}
	return nil
}

func get[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], query, key string) (T, error) {
	row, err := s.rs.queryRow(ctx, query, key)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("sqlite storage: get %s: %w", t.Name, err)
	}
	v, err := t.Scan(&dialect, row)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, storage.ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("sqlite storage: get %s: %w", t.Name, err)
	}
	if t.Expired(&v, s.now()) {
		var zero T
		return zero, storage.ErrNotFound
	}
	return v, nil
}

// update runs a read-modify-write in one IMMEDIATE transaction on the
// writer connection: no other write can interleave between the read and
// the write. setKey puts the key back into what the updater returned;
// hideExpired says whether an expired object is not found.
func update[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], q *sqlrow.Queries, key string,
	hideExpired bool, setKey func(*T), updater func(T) (T, error)) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	row, err := s.ws.txQueryRow(ctx, tx, q.Select, key)
	if err != nil {
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	cur, err := t.Scan(&dialect, row)
	if errors.Is(err, sql.ErrNoRows) || err == nil && hideExpired && t.Expired(&cur, s.now()) {
		return storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	next, err := updater(cur)
	if err != nil {
		return err
	}
	setKey(&next)
	args, err := t.Args(&dialect, &next)
	if err != nil {
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	if _, err := s.ws.exec(ctx, tx, q.Update, args...); err != nil {
		if isDuplicate(err) {
			return fmt.Errorf("sqlite storage: update %s: %w", t.Name, storage.ErrAlreadyExists)
		}
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite storage: update %s: %w", t.Name, err)
	}
	return nil
}

func del(ctx context.Context, s *Storage, name string, q *sqlrow.Queries, key string) error {
	res, err := s.ws.exec(ctx, nil, q.Delete, key)
	if err != nil {
		return fmt.Errorf("sqlite storage: delete %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite storage: delete %s: %w", name, err)
	} else if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// CreateAuthRequest stores a new auth request.
func (s *Storage) CreateAuthRequest(ctx context.Context, a storage.AuthRequest) error {
	return create(ctx, s, sqlrow.AuthRequests, &s.reqs, a)
}

// GetAuthRequest returns an unexpired auth request.
func (s *Storage) GetAuthRequest(ctx context.Context, id string) (storage.AuthRequest, error) {
	return get(ctx, s, sqlrow.AuthRequests, s.reqs.Select, id)
}

// UpdateAuthRequest applies updater to an unexpired auth request atomically.
func (s *Storage) UpdateAuthRequest(ctx context.Context, id string, updater func(storage.AuthRequest) (storage.AuthRequest, error)) error {
	return update(ctx, s, sqlrow.AuthRequests, &s.reqs, id, true, func(a *storage.AuthRequest) { a.ID = id }, updater)
}

// DeleteAuthRequest removes an auth request.
func (s *Storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return del(ctx, s, "auth request", &s.reqs, id)
}

// CreateAuthCode stores a new code.
func (s *Storage) CreateAuthCode(ctx context.Context, c storage.AuthCode) error {
	return create(ctx, s, sqlrow.AuthCodes, &s.codes, c)
}

// GetAuthCode returns an unexpired code.
func (s *Storage) GetAuthCode(ctx context.Context, id string) (storage.AuthCode, error) {
	return get(ctx, s, sqlrow.AuthCodes, s.codes.Select, id)
}

// UpdateAuthCode applies updater to an unexpired code atomically.
func (s *Storage) UpdateAuthCode(ctx context.Context, id string, updater func(storage.AuthCode) (storage.AuthCode, error)) error {
	return update(ctx, s, sqlrow.AuthCodes, &s.codes, id, true, func(c *storage.AuthCode) { c.ID = id }, updater)
}

// CreateRefreshFamily stores a new family.
func (s *Storage) CreateRefreshFamily(ctx context.Context, f storage.RefreshFamily) error {
	return create(ctx, s, sqlrow.RefreshFamilies, &s.families, f)
}

// GetRefreshFamily returns a family, revoked or not.
func (s *Storage) GetRefreshFamily(ctx context.Context, id string) (storage.RefreshFamily, error) {
	return get(ctx, s, sqlrow.RefreshFamilies, s.families.Select, id)
}

// UpdateRefreshFamily applies updater atomically.
func (s *Storage) UpdateRefreshFamily(ctx context.Context, id string, updater func(storage.RefreshFamily) (storage.RefreshFamily, error)) error {
	return update(ctx, s, sqlrow.RefreshFamilies, &s.families, id, false, func(f *storage.RefreshFamily) { f.ID = id }, updater)
}

// DeleteRefreshFamily removes a family.
func (s *Storage) DeleteRefreshFamily(ctx context.Context, id string) error {
	return del(ctx, s, "refresh family", &s.families, id)
}

// ListRefreshFamilies lists a user's families, newest first.
func (s *Storage) ListRefreshFamilies(ctx context.Context, connectorID, userID string) ([]storage.RefreshFamily, error) {
	return s.listFamiliesBy(ctx, s.listFamilies, connectorID, userID)
}

// ListRefreshFamiliesByClaim lists the families whose claim equals
// value, newest first, at most limit.
func (s *Storage) ListRefreshFamiliesByClaim(ctx context.Context, claim, value string, limit int) ([]storage.RefreshFamily, error) {
	if err := storage.CheckListByClaim(claim, limit); err != nil {
		return nil, err
	}
	q := s.listFamiliesByClaim[claim]
	return s.listFamiliesBy(ctx, q, value, limit)
}

func (s *Storage) listFamiliesBy(ctx context.Context, query string, args ...any) ([]storage.RefreshFamily, error) {
	rows, err := s.rs.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: list refresh families: %w", err)
	}
	defer rows.Close()
	var out []storage.RefreshFamily
	for rows.Next() {
		f, err := sqlrow.RefreshFamilies.Scan(&dialect, rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite storage: list refresh families: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite storage: list refresh families: %w", err)
	}
	return out, nil
}

// CreateDeviceRequest stores a device request; user codes are unique.
func (s *Storage) CreateDeviceRequest(ctx context.Context, d storage.DeviceRequest) error {
	return create(ctx, s, sqlrow.DeviceRequests, &s.devices, d)
}

// GetDeviceRequestByUserCode finds an unexpired request by user code.
func (s *Storage) GetDeviceRequestByUserCode(ctx context.Context, userCode string) (storage.DeviceRequest, error) {
	return get(ctx, s, sqlrow.DeviceRequests, s.byCode, userCode)
}

// GetDeviceRequest finds an unexpired request by device code hash.
func (s *Storage) GetDeviceRequest(ctx context.Context, deviceCodeHash string) (storage.DeviceRequest, error) {
	return get(ctx, s, sqlrow.DeviceRequests, s.devices.Select, deviceCodeHash)
}

// UpdateDeviceRequest applies updater atomically, expired or not.
func (s *Storage) UpdateDeviceRequest(ctx context.Context, deviceCodeHash string, updater func(storage.DeviceRequest) (storage.DeviceRequest, error)) error {
	return update(ctx, s, sqlrow.DeviceRequests, &s.devices, deviceCodeHash, false,
		func(d *storage.DeviceRequest) { d.DeviceCodeHash = deviceCodeHash }, updater)
}

// CreatePassword stores a password under its lower-cased email.
func (s *Storage) CreatePassword(ctx context.Context, p storage.Password) error {
	p.Email = canon.Email(p.Email)
	return create(ctx, s, sqlrow.Passwords, &s.pwds, p)
}

// GetPassword returns a password by email, in any case.
func (s *Storage) GetPassword(ctx context.Context, email string) (storage.Password, error) {
	return get(ctx, s, sqlrow.Passwords, s.pwds.Select, canon.Email(email))
}

// UpdatePassword applies updater atomically.
func (s *Storage) UpdatePassword(ctx context.Context, email string, updater func(storage.Password) (storage.Password, error)) error {
	key := canon.Email(email)
	return update(ctx, s, sqlrow.Passwords, &s.pwds, key, false, func(p *storage.Password) { p.Email = key }, updater)
}

// DeletePassword removes a password.
func (s *Storage) DeletePassword(ctx context.Context, email string) error {
	return del(ctx, s, "password", &s.pwds, canon.Email(email))
}

// ListPasswords lists every password, ordered by email.
func (s *Storage) ListPasswords(ctx context.Context) ([]storage.Password, error) {
	rows, err := s.rs.query(ctx, s.listPasswords)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: list passwords: %w", err)
	}
	defer rows.Close()
	var out []storage.Password
	for rows.Next() {
		p, err := sqlrow.Passwords.Scan(&dialect, rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite storage: list passwords: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite storage: list passwords: %w", err)
	}
	return out, nil
}

// GetKeys returns the key set.
func (s *Storage) GetKeys(ctx context.Context) (storage.Keys, error) {
	row, err := s.rs.queryRow(ctx, s.keysSelect)
	if err != nil {
		return storage.Keys{}, fmt.Errorf("sqlite storage: get keys: %w", err)
	}
	k, err := sqlrow.Keys.Scan(&dialect, row)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Keys{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Keys{}, fmt.Errorf("sqlite storage: get keys: %w", err)
	}
	return k, nil
}

// UpdateKeys replaces the key set in one statement if its version is
// still expectedVersion (an insert when expectedVersion is 0).
func (s *Storage) UpdateKeys(ctx context.Context, expectedVersion int64, k storage.Keys) error {
	k.Version = expectedVersion + 1
	args, err := sqlrow.Keys.Args(&dialect, &k)
	if err != nil {
		return fmt.Errorf("sqlite storage: update keys: %w", err)
	}
	var res sql.Result
	if expectedVersion == 0 {
		res, err = s.ws.exec(ctx, nil, s.keysInsert, args...)
	} else {
		res, err = s.ws.exec(ctx, nil, s.keysUpdate, append(args, expectedVersion)...)
	}
	if err != nil {
		return fmt.Errorf("sqlite storage: update keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite storage: update keys: %w", err)
	}
	if n == 0 {
		return storage.ErrConflict
	}
	return nil
}

// gcBatch is how many rows one garbage-collection transaction deletes.
const gcBatch = 500

// GarbageCollect removes expired objects and dead refresh families. It
// deletes in transactions of at most gcBatch rows: SQLite has one writer,
// and a single transaction deleting, say, a million auth requests left by
// a flood of /auth requests would hold every refresh grant behind it.
func (s *Storage) GarbageCollect(ctx context.Context, now time.Time, refreshIdleBefore, refreshCreatedBefore time.Time) (storage.GCResult, error) {
	var r storage.GCResult
	var err error
	del := func(n *int64, table, key, where string, args ...any) {
		query := fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d)", table, key, key, table, where, gcBatch)
		for err == nil {
			var res sql.Result
			if res, err = s.w.ExecContext(ctx, query, args...); err != nil {
				return
			}
			var c int64
			if c, err = res.RowsAffected(); err != nil {
				return
			}
			*n += c
			if c < gcBatch {
				return
			}
		}
	}
	// An object expires when now is after its expiry (as Get sees it).
	nowArg := dialect.TimeArg(canon.Time(now))
	del(&r.AuthRequests, "auth_requests", "id", "expiry < ?1", nowArg)
	del(&r.AuthCodes, "auth_codes", "id", "expiry < ?1", nowArg)
	del(&r.DeviceRequests, "device_requests", "device_code_hash", "expiry < ?1", nowArg)
	del(&r.RefreshTokens, "refresh_families", "id", "revoked")
	if !refreshIdleBefore.IsZero() {
		del(&r.RefreshTokens, "refresh_families", "id", "last_used < ?1", dialect.TimeArg(canon.Time(refreshIdleBefore)))
	}
	if !refreshCreatedBefore.IsZero() {
		del(&r.RefreshTokens, "refresh_families", "id", "created_at < ?1", dialect.TimeArg(canon.Time(refreshCreatedBefore)))
	}
	if err != nil {
		return r, fmt.Errorf("sqlite storage: garbage collect: %w", err)
	}
	return r, nil
}
