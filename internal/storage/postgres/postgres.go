// Package postgres is the PostgreSQL storage backend (Dex's `storage:
// {type: postgres}`), on pgx v5 with pgxpool. It is the backend for
// several gatehouse replicas behind one load balancer: every update runs
// in a transaction that locks its row (SELECT ... FOR UPDATE), the key set
// is replaced by compare-and-swap on its version, and migrations run at
// Open under a transaction-scoped advisory lock, so replicas that start
// together take turns and only the first applies anything.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/migrate"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/sqlrow"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations across replicas ("gatehous" in ASCII).
const migrationLock int64 = 0x6761746568_6f7573

// gcLock is the advisory lock key held by the replica collecting garbage.
const gcLock = migrationLock + 1

// Storage is a PostgreSQL database. It is safe for concurrent use, also
// by several processes on one database.
type Storage struct {
	pool *pgxpool.Pool
	now  func() time.Time

	reqs, codes, families, devices, pwds sqlrow.Queries
	keysSelect, keysInsert, keysUpdate   string
	listFamilies, listPasswords, byCode  string
	listFamiliesByClaim                  map[string]string // by claim name
}

var _ storage.Storage = (*Storage)(nil)

var dialect = sqlrow.Dialect{
	Param:   sqlrow.DollarParam,
	TimeArg: func(t time.Time) any { return t },
	TimeScan: func(p *time.Time) (any, func()) {
		return p, func() { *p = canon.Time(*p) }
	},
}

// Open connects to the database and applies the migrations it lacks.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, fmt.Errorf("postgres storage: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres storage: %w", err)
	}
	if err := runMigrations(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres storage: %w", err)
	}
	list := strings.Join(sqlrow.Keys.Columns(), ", ")
	s := &Storage{
		pool: pool, now: time.Now,
		reqs:       sqlrow.NewQueries(sqlrow.AuthRequests, &dialect),
		codes:      sqlrow.NewQueries(sqlrow.AuthCodes, &dialect),
		families:   sqlrow.NewQueries(sqlrow.RefreshFamilies, &dialect),
		devices:    sqlrow.NewQueries(sqlrow.DeviceRequests, &dialect),
		pwds:       sqlrow.NewQueries(sqlrow.Passwords, &dialect),
		keysSelect: "SELECT " + list + " FROM signing_keys WHERE id = 1",
		keysInsert: "INSERT INTO signing_keys (id, " + list + ") VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
		keysUpdate: "UPDATE signing_keys SET signing_key = $1, verification_keys = $2, next_rotation = $3, version = $4 WHERE id = 1 AND version = $5",
	}
	s.listFamilies = "SELECT " + s.families.Cols + " FROM refresh_families WHERE connector_id = $1 AND user_id = $2 ORDER BY created_at DESC, id"
	s.listFamiliesByClaim = map[string]string{}
	for _, c := range []string{storage.ClaimPreferredUsername, storage.ClaimEmail} {
		// The column carries the claim's name (migration 0002 indexes it).
		s.listFamiliesByClaim[c] = "SELECT " + s.families.Cols + " FROM refresh_families WHERE " + c + " = $1 ORDER BY created_at DESC, id LIMIT $2"
	}
	s.listPasswords = "SELECT " + s.pwds.Cols + " FROM passwords ORDER BY email"
	s.byCode = "SELECT " + s.devices.Cols + " FROM device_requests WHERE user_code = $1"
	return s, nil
}

// runMigrations applies, in one transaction holding an advisory lock, the
// migrations not yet recorded in schema_migrations. A replica that starts
// while another migrates waits for the lock, then finds nothing to do.
// Versions newer than this binary knows are left alone: migrations are
// additive, so an older gatehouse keeps running during a rolling update
// or after a rollback.
func runMigrations(ctx context.Context, pool *pgxpool.Pool) error {
	all, err := migrate.List(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		applied := map[int64]bool{}
		for _, v := range versions {
			applied[v] = true
		}
		for _, m := range all {
			if applied[m.Version] {
				continue
			}
			// No arguments: the simple protocol, which runs every
			// statement of the file.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// Close closes the pool.
func (s *Storage) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Storage) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres storage: ping: %w", err)
	}
	return nil
}

// isDuplicate reports a unique_violation.
func isDuplicate(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func create[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], q *sqlrow.Queries, v T) error {
	args, err := t.Args(&dialect, &v)
	if err != nil {
		return fmt.Errorf("postgres storage: create %s: %w", t.Name, err)
	}
	if _, err := s.pool.Exec(ctx, q.Insert, args...); err != nil {
		if isDuplicate(err) {
			return storage.ErrAlreadyExists
		}
		return fmt.Errorf("postgres storage: create %s: %w", t.Name, err)
	}
	return nil
}

func get[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], query, key string) (T, error) {
	v, err := t.Scan(&dialect, s.pool.QueryRow(ctx, query, key))
	if errors.Is(err, pgx.ErrNoRows) {
		var zero T
		return zero, storage.ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("postgres storage: get %s: %w", t.Name, err)
	}
	if t.Expired(&v, s.now()) {
		var zero T
		return zero, storage.ErrNotFound
	}
	return v, nil
}

// update runs a read-modify-write in one transaction that locks the row
// (SELECT ... FOR UPDATE): a concurrent update of the same object, from
// this process or another replica, waits for this one to commit and then
// reads its result. setKey puts the key back into what the updater
// returned; hideExpired says whether an expired object is not found.
//
// The refresh grant runs this on every request, so it is sent as two
// batches (BEGIN with the SELECT, then the UPDATE with COMMIT): two round
// trips instead of four. A connection given back inside a failed
// transaction is closed by pgxpool, never reused.
func update[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], q *sqlrow.Queries, key string,
	hideExpired bool, setKey func(*T), updater func(T) (T, error)) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres storage: update %s: %w", t.Name, err)
	}
	defer conn.Release()
	inTx := false
	defer func() {
		if inTx {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
				// Release closes a connection left in a transaction.
				err = errors.Join(err, fmt.Errorf("postgres storage: rollback: %w", rerr))
			}
		}
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(q.Select+" FOR UPDATE", key)
	br := conn.SendBatch(ctx, b)
	inTx = true
	_, err = br.Exec()
	var cur T
	if err == nil {
		cur, err = t.Scan(&dialect, br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) || err == nil && hideExpired && t.Expired(&cur, s.now()) {
		return storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres storage: update %s: %w", t.Name, err)
	}
	next, err := updater(cur)
	if err != nil {
		return err
	}
	setKey(&next)
	args, err := t.Args(&dialect, &next)
	if err != nil {
		return fmt.Errorf("postgres storage: update %s: %w", t.Name, err)
	}
	b = &pgx.Batch{}
	b.Queue(q.Update, args...)
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		inTx = false
		return nil
	}
	if isDuplicate(err) {
		return fmt.Errorf("postgres storage: update %s: %w", t.Name, storage.ErrAlreadyExists)
	}
	return fmt.Errorf("postgres storage: update %s: %w", t.Name, err)
}

func del(ctx context.Context, s *Storage, name string, q *sqlrow.Queries, key string) error {
	tag, err := s.pool.Exec(ctx, q.Delete, key)
	if err != nil {
		return fmt.Errorf("postgres storage: delete %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func list[T any](ctx context.Context, s *Storage, t *sqlrow.Table[T], query string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres storage: list %s: %w", t.Name, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := t.Scan(&dialect, rows)
		if err != nil {
			return nil, fmt.Errorf("postgres storage: list %s: %w", t.Name, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres storage: list %s: %w", t.Name, err)
	}
	return out, nil
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
	return list(ctx, s, sqlrow.RefreshFamilies, s.listFamilies, connectorID, userID)
}

// ListRefreshFamiliesByClaim lists the families whose claim equals
// value, newest first, at most limit.
func (s *Storage) ListRefreshFamiliesByClaim(ctx context.Context, claim, value string, limit int) ([]storage.RefreshFamily, error) {
	if err := storage.CheckListByClaim(claim, limit); err != nil {
		return nil, err
	}
	q := s.listFamiliesByClaim[claim]
	return list(ctx, s, sqlrow.RefreshFamilies, q, value, limit)
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
	return list(ctx, s, sqlrow.Passwords, s.listPasswords)
}

// GetKeys returns the key set.
func (s *Storage) GetKeys(ctx context.Context) (storage.Keys, error) {
	k, err := sqlrow.Keys.Scan(&dialect, s.pool.QueryRow(ctx, s.keysSelect))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Keys{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Keys{}, fmt.Errorf("postgres storage: get keys: %w", err)
	}
	return k, nil
}

// UpdateKeys replaces the key set in one statement if its version is
// still expectedVersion (an insert when expectedVersion is 0). Under READ
// COMMITTED a concurrent UPDATE waits for the winner's commit and then
// re-checks the version, so exactly one writer per version wins.
func (s *Storage) UpdateKeys(ctx context.Context, expectedVersion int64, k storage.Keys) error {
	k.Version = expectedVersion + 1
	args, err := sqlrow.Keys.Args(&dialect, &k)
	if err != nil {
		return fmt.Errorf("postgres storage: update keys: %w", err)
	}
	var tag pgconn.CommandTag
	if expectedVersion == 0 {
		tag, err = s.pool.Exec(ctx, s.keysInsert, args...)
	} else {
		tag, err = s.pool.Exec(ctx, s.keysUpdate, append(args, expectedVersion)...)
	}
	if err != nil {
		return fmt.Errorf("postgres storage: update keys: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrConflict
	}
	return nil
}

// GarbageCollect removes expired objects and dead refresh families in one
// transaction. Replicas all run it on their own timers; one collects at a
// time (an advisory lock), and one that finds another collecting returns
// an empty result at once rather than deleting the same rows beside it
// (which could deadlock the two).
func (s *Storage) GarbageCollect(ctx context.Context, now time.Time, refreshIdleBefore, refreshCreatedBefore time.Time) (storage.GCResult, error) {
	var r storage.GCResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", gcLock).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		var err error
		exec := func(n *int64, query string, args ...any) {
			if err != nil {
				return
			}
			var tag pgconn.CommandTag
			if tag, err = tx.Exec(ctx, query, args...); err == nil {
				*n += tag.RowsAffected()
			}
		}
		nowArg := canon.Time(now)
		exec(&r.AuthRequests, "DELETE FROM auth_requests WHERE expiry < $1", nowArg)
		exec(&r.AuthCodes, "DELETE FROM auth_codes WHERE expiry < $1", nowArg)
		exec(&r.DeviceRequests, "DELETE FROM device_requests WHERE expiry < $1", nowArg)
		exec(&r.RefreshTokens, "DELETE FROM refresh_families WHERE revoked")
		if !refreshIdleBefore.IsZero() {
			exec(&r.RefreshTokens, "DELETE FROM refresh_families WHERE last_used < $1", canon.Time(refreshIdleBefore))
		}
		if !refreshCreatedBefore.IsZero() {
			exec(&r.RefreshTokens, "DELETE FROM refresh_families WHERE created_at < $1", canon.Time(refreshCreatedBefore))
		}
		return err
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("postgres storage: garbage collect: %w", err)
	}
	return r, nil
}
