// Package store keeps audit events in SQLite (modernc.org/sqlite, WAL mode,
// the default) or PostgreSQL (pgx, for several gatehouse replicas). A batch
// is inserted in one transaction, so it is stored whole or not at all, and
// an event already stored under the same (auditID, stage) is skipped, so a
// retried batch is never stored twice.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

//go:embed migrations
var migrations embed.FS

// migrateUpTo stops the migrations after this version when not 0 (for the
// upgrade tests).
var migrateUpTo int

// ErrNotFound is returned by Get for an unknown id.
var ErrNotFound = errors.New("audit event not found")

// Result counts what an Insert did.
type Result struct {
	Inserted   int
	Duplicates int
}

// DB is an audit event store.
type DB struct {
	kind     string  // "sqlite" or "postgres"
	w        *sql.DB // nil when readOnly
	r        *sql.DB
	readOnly bool // OpenReadOnly: Insert and retention refuse

	dict *dict // the string dictionary's cache

	nbMu    sync.Mutex
	nb      int64 // the name index's current bucket (see the migration 0002)
	nbCount int   // events given to it

	tmpDir string // removed on Close (memory storage)

	// SQLite's single writer takes batches from reqs (nil for PostgreSQL).
	closeOnce  sync.Once
	reqs       chan *insertReq
	quit       chan struct{}
	writerDone chan struct{}

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared multi-row inserts, by SQL
}

// buckets are the row counts of the prepared multi-row INSERTs: a chunk
// is padded to the next bucket by repeating its last row, which the
// ON CONFLICT clause then skips. Parsing a 400-row INSERT afresh costs
// about a tenth of the insert itself.
var buckets = []int{8, 32, 128, 512}

// prepare prepares the INSERTs for every bucket. It must run outside a
// transaction: the SQLite writer has a single connection.
func (db *DB) prepare(ctx context.Context) error {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if db.stmts != nil {
		return nil
	}
	stmts := map[string]*sql.Stmt{}
	for _, n := range buckets {
		st, err := db.w.PrepareContext(ctx, db.rebind(insertSQL(n)))
		if err != nil {
			for _, st := range stmts {
				st.Close()
			}
			return fmt.Errorf("prepare audit insert: %w", err)
		}
		stmts["events"+strconv.Itoa(n)] = st
	}
	db.stmts = stmts
	return nil
}

func insertSQL(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", nEventCols), ",") + "),"
	return "INSERT INTO events (" + eventCols + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row, n), ",") + " ON CONFLICT (ts, audit_id, stage) DO NOTHING"
}

// bucketed pads args (rows of width columns) to a bucket size and returns
// the statement for it.
func (db *DB) bucketed(ctx context.Context, tx *sql.Tx, kind string, args []any, width int) (*sql.Stmt, []any) {
	rows := len(args) / width
	n := buckets[len(buckets)-1]
	for _, b := range buckets {
		if rows <= b {
			n = b
			break
		}
	}
	last := args[len(args)-width:]
	for range n - rows {
		args = append(args, last...)
	}
	db.stmtMu.Lock()
	st := db.stmts[kind+strconv.Itoa(n)]
	db.stmtMu.Unlock()
	return tx.StmtContext(ctx, st), args
}

// Open opens (creating and migrating as needed) a store. typ is "sqlite3"
// (or "sqlite") with dsn a file name, or "postgres" with dsn a URL or
// key=value connection string.
func Open(ctx context.Context, typ, dsn string) (*DB, error) {
	switch typ {
	case "sqlite3", "sqlite", "":
		return openSQLite(ctx, dsn)
	case "postgres", "postgresql":
		return openPostgres(ctx, dsn)
	case "memory":
		// Nothing kept across restarts, like gatehouse's memory storage:
		// a SQLite file in a directory removed on Close.
		dir, err := os.MkdirTemp("", "gatehouse-audit-")
		if err != nil {
			return nil, fmt.Errorf("audit storage: %w", err)
		}
		db, err := openSQLite(ctx, filepath.Join(dir, "audit.db"))
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		db.tmpDir = dir
		return db, nil
	}
	return nil, fmt.Errorf("audit storage type %q is not supported: want sqlite3, postgres or memory", typ)
}

// OpenDSN opens a store named by one string: a postgres:// or
// postgresql:// URL, else a SQLite file name.
func OpenDSN(ctx context.Context, dsn string) (*DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return Open(ctx, "postgres", dsn)
	}
	return Open(ctx, "sqlite3", dsn)
}

// sqliteDSN splits a SQLite DSN (a file name, optionally "file:" before
// it and _pragma parameters after a "?") and returns the file and the
// pragmas every connection sets, the DSN's own last.
func sqliteDSN(dsn string) (file string, q url.Values, err error) {
	if dsn == "" {
		return "", nil, errors.New("audit storage: sqlite3 needs a file")
	}
	file = strings.TrimPrefix(dsn, "file:")
	var extra []string // _pragma parameters given in the DSN
	if i := strings.IndexByte(file, '?'); i >= 0 {
		v, err := url.ParseQuery(file[i+1:])
		if err != nil {
			return "", nil, fmt.Errorf("audit storage: sqlite3 file %q: %w", file, err)
		}
		extra = v["_pragma"]
		file = file[:i]
	}
	q = url.Values{}
	// WAL lets readers run beside the writer; synchronous=FULL makes a
	// commit durable (the WAL is synced) before the sink answers 2xx.
	// Checkpoints stay in the writer's commits, which keeps the WAL
	// bounded (a checkpointer on another connection was measured and saved
	// nothing, and with the writer's own checkpoints off the WAL grew by
	// 100 MB a second), but every 10,000 pages (40 MB) rather than 1,000:
	// a page written by many commits is copied once (measured: 69,000 ->
	// 78,000 events a second). temp_store=MEMORY keeps the statement
	// journal of the multi-row INSERTs off the disk (it was a seventh of the
	// writer's time in pwrite).
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(OFF)", "cache_size(-65536)", "temp_store(MEMORY)", "wal_autocheckpoint(10000)"} {
		q.Add("_pragma", p)
	}
	for _, p := range extra {
		q.Add("_pragma", p)
	}
	return file, q, nil
}

func openSQLite(ctx context.Context, dsn string) (*DB, error) {
	file, q, err := sqliteDSN(dsn)
	if err != nil {
		return nil, err
	}
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+file+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open audit store %s: %w", file, err)
	}
	w.SetMaxOpenConns(1) // SQLite has one writer; queue here, not on SQLITE_BUSY
	w.SetConnMaxIdleTime(0)
	db := &DB{kind: "sqlite", w: w, dict: newDict()}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := db.initBucket(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open audit store %s: %w", file, err)
	}
	r.SetMaxOpenConns(4)
	db.r = r
	db.reqs, db.quit, db.writerDone = make(chan *insertReq), make(chan struct{}), make(chan struct{})
	go db.writer()
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	c, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	c.SetMaxOpenConns(16)
	db := &DB{kind: "postgres", w: c, r: c, dict: newDict()}
	if err := db.migrate(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := db.initBucket(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the store; closing again does nothing.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() { err = db.close() })
	return err
}

func (db *DB) close() error {
	if db.quit != nil {
		close(db.quit)
		<-db.writerDone
	}
	if db.readOnly {
		return db.r.Close()
	}
	if db.kind == "sqlite" {
		_, _ = db.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	db.stmtMu.Lock()
	for _, st := range db.stmts {
		st.Close()
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	err := db.w.Close()
	if db.r != db.w && db.r != nil {
		err = errors.Join(err, db.r.Close())
	}
	if db.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(db.tmpDir))
	}
	return err
}

// Kind is "sqlite" or "postgres".
func (db *DB) Kind() string { return db.kind }

// migrate applies the embedded migrations not yet recorded in
// audit_schema, each in its own transaction.
func (db *DB) migrate(ctx context.Context) error {
	dir := "migrations/" + db.kind
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("read audit migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	if db.kind == "sqlite" {
		// Building an index (0003) sorts every event: in temporary files
		// (TMPDIR), not in memory as the store's temp_store=MEMORY would
		// (measured on 5 million events: 800 MB of RSS). The writer's one
		// connection runs the migration, then goes back to memory.
		if _, err := db.w.ExecContext(ctx, "PRAGMA temp_store=FILE"); err != nil {
			return fmt.Errorf("migrate audit store: %w", err)
		}
		defer db.w.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store=MEMORY") //nolint:errcheck // only speed depends on it
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate audit store: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if db.kind == "postgres" {
		// Several replicas may start at once: one migrates, the others wait.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7170751)"); err != nil {
			return fmt.Errorf("migrate audit store: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS audit_schema (version INTEGER PRIMARY KEY)"); err != nil {
		return fmt.Errorf("migrate audit store: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM audit_schema").Scan(&have); err != nil {
		return fmt.Errorf("migrate audit store: %w", err)
	}
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("audit migration %s: name must start with a number", e.Name())
		}
		if v <= have || (migrateUpTo > 0 && v > migrateUpTo) {
			continue
		}
		b, err := migrations.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return fmt.Errorf("read audit migration %s: %w", e.Name(), err)
		}
		for _, stmt := range strings.Split(string(b), ";\n") {
			if strings.TrimSpace(stripComments(stmt)) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("audit migration %s: %w", e.Name(), err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.rebind("INSERT INTO audit_schema (version) VALUES (?)"), v); err != nil {
			return fmt.Errorf("audit migration %s: %w", e.Name(), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate audit store: %w", err)
	}
	return nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
	}
	return b.String()
}

// rebind turns ? placeholders into PostgreSQL's $n. The SQL in this
// package never has a ? inside a literal.
func (db *DB) rebind(q string) string {
	if db.kind != "postgres" {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// eventCols are the columns Insert writes. The string columns but
// audit_id and name hold audit_strings ids; batch, raw_off and raw_len
// locate the event's JSON in its batch's compressed blob.
const eventCols = "ts, audit_id, stage, verb, username, gset, resource, subresource, namespace, name, nb, code, source, level, api_group, user_agent, batch, raw_off, raw_len"
const nEventCols = 19

// bucketEvents is about how many events share a bucket of the name
// index: the newest bucket's part of the index takes every insert, so it
// must stay small (a few hundred pages); a query by name seeks every
// bucket, so they must not be too many (about 300 for 10 million events).
var bucketEvents = 1 << 15 // a variable for tests

// bucket returns the name index bucket for n more events.
func (db *DB) bucket(n int) int64 {
	db.nbMu.Lock()
	defer db.nbMu.Unlock()
	if db.nbCount >= bucketEvents {
		db.nb, db.nbCount = db.nb+1, 0
	}
	db.nbCount += n
	return db.nb
}

// initBucket starts a new name index bucket after the stored ones.
func (db *DB) initBucket(ctx context.Context) error {
	if migrateUpTo == 1 { // a schema 1 store, in the upgrade tests
		return nil
	}
	var nb sql.NullInt64
	if err := db.w.QueryRowContext(ctx, "SELECT MAX(nb) FROM event_batches").Scan(&nb); err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	db.nb = nb.Int64 + 1 // 0 holds the events stored under schema 1
	return nil
}

// chunk bounds rows per statement (SQLite allows 32766 parameters); it is
// the largest bucket.
const chunk = 512

// dictFields are an event's strings kept in the dictionary, in the order
// of eventCols; gset is the groups as a JSON array.
func dictFields(e *event.Event, gset string) [11]string {
	return [11]string{e.Stage, e.Verb, e.User, gset, e.Resource, e.Sub, e.Namespace, e.Source, e.Level, e.APIGroup, e.UserAgent}
}

// Insert stores events in one transaction. Events whose (auditID, stage)
// is already stored are skipped and counted as duplicates. On error
// nothing of the batch is stored.
func (db *DB) Insert(ctx context.Context, events []event.Event) (Result, error) {
	b := NewBatch()
	for _, e := range events {
		if err := b.Add(e); err != nil {
			return Result{}, fmt.Errorf("store audit events: %w", err)
		}
	}
	return db.InsertBatch(ctx, b)
}

// InsertBatch stores a batch as Insert does. Its answer is exact: nil
// means the batch is committed; an error means it is not, except when
// the commit itself failed in a way that leaves the outcome unknown
// (PostgreSQL's connection lost during COMMIT), where a retry finds the
// events as duplicates. When ctx ends before the batch is committed,
// InsertBatch returns ctx's error and the batch is not stored, unless its
// commit had already begun: then InsertBatch waits for the outcome (the
// writer bounds a commit to a minute) and reports it.
func (db *DB) InsertBatch(ctx context.Context, b *Batch) (Result, error) {
	if db.readOnly {
		return Result{}, fmt.Errorf("store audit events: %w", ErrReadOnly)
	}
	if b.Len() == 0 {
		return Result{}, nil
	}
	if err := db.prepare(ctx); err != nil {
		return Result{}, err
	}
	// Everything that needs no database happens before the transaction,
	// so that concurrent batches do it in parallel, outside the one
	// writer: the dictionary lookups of strings already known, and
	// compressing the raw events (most of it done as they were added).
	r := &insertReq{ctx: ctx, b: b, done: make(chan error, 1), ids: map[string]int64{}}
	db.dict.mu.RLock()
	for _, v := range b.list {
		if id, ok := db.dict.ids[v]; ok {
			r.ids[v] = id
		} else {
			r.missing = append(r.missing, v)
		}
	}
	db.dict.mu.RUnlock()
	var err error
	if r.blob, err = b.finish(); err != nil {
		return Result{}, fmt.Errorf("store audit events: %w", err)
	}

	if db.reqs == nil { // PostgreSQL: many writers, no need to group
		// The transaction outlives ctx (bounded by its own minute) so that
		// ctx ending during COMMIT cannot leave a committed batch reported
		// as failed; its statements run under ctx, and a ctx that has
		// ended before COMMIT rolls the batch back.
		txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writerTimeout)
		defer cancel()
		err := db.commit(txCtx, ctx, []*insertReq{r})
		return r.res, err
	}
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("store audit events: %w", ctx.Err())
	case <-db.quit:
		return Result{}, errors.New("store audit events: the store is closed")
	}
	select {
	case err := <-r.done:
		return r.res, err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			// The writer has not taken it into a transaction and now
			// never will: nothing of it is stored.
			return Result{}, fmt.Errorf("store audit events: %w", ctx.Err())
		}
		// Its commit has begun: the outcome is the answer.
		err := <-r.done
		return r.res, err
	}
}

// insertReq is one batch waiting for the writer.
type insertReq struct {
	ctx     context.Context
	state   atomic.Int32 // reqQueued, then reqCommitting (the writer) or reqAbandoned (the caller)
	b       *Batch
	blob    []byte           // the events' raw JSON, concatenated and compressed
	ids     map[string]int64 // dictionary ids of the batch's strings
	missing []string         // strings not in the dictionary's cache
	res     Result
	done    chan error
}

// An insertReq's state: whoever moves it out of reqQueued first decides
// whether it is stored, so that a caller that gave up is never answered
// "not stored" for a batch the writer then commits.
const (
	reqQueued int32 = iota
	reqCommitting
	reqAbandoned
)

// writerTimeout bounds one commit.
const writerTimeout = time.Minute

// maxGroup bounds the batches committed together.
const maxGroup = 16

// writer commits queued batches, several per transaction when they queue
// up (group commit): SQLite has one writer, and a durable commit waits for
// an fsync, so batches that arrive together share it.
func (db *DB) writer() {
	defer close(db.writerDone)
	for {
		var group []*insertReq
		select {
		case r := <-db.reqs:
			group = append(group, r)
		case <-db.quit:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-db.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		live := group[:0]
		for _, r := range group {
			// A caller that has given up (its ctx ended) is not stored; one
			// that has not can no longer give up: it waits for the outcome.
			if r.ctx.Err() != nil || !r.state.CompareAndSwap(reqQueued, reqCommitting) {
				r.state.Store(reqAbandoned)
				r.done <- r.ctx.Err()
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), writerTimeout)
		err := db.commit(ctx, ctx, live)
		cancel()
		for _, r := range live {
			r.done <- err
		}
	}
}

// commit stores the batches in one transaction: all or none. The
// transaction lives in txCtx, its statements run in ctx; ctx having
// ended before COMMIT rolls it back.
func (db *DB) commit(txCtx, ctx context.Context, reqs []*insertReq) error {
	tx, err := db.w.BeginTx(txCtx, nil)
	if err != nil {
		return fmt.Errorf("store audit events: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	learned, err := db.resolve(ctx, tx, reqs)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		var batch int64
		nb := db.bucket(r.b.Len())
		if err := tx.QueryRowContext(ctx, db.rebind("INSERT INTO event_batches (nb, max_ts, data) VALUES (?, ?, ?) RETURNING id"), nb, r.b.maxTS, r.blob).Scan(&batch); err != nil {
			return fmt.Errorf("store audit event batch: %w", err)
		}
		ids := make([]int64, len(r.b.list)) // the dictionary id of each of the batch's strings
		for k, v := range r.b.list {
			ids[k] = r.ids[v]
		}
		n := int64(0)
		rows := r.b.rows
		args := make([]any, 0, min(len(rows), chunk)*nEventCols)
		for start := 0; start < len(rows); start += chunk {
			args = args[:0]
			for i := start; i < min(start+chunk, len(rows)); i++ {
				e := &rows[i]
				f := &e.f
				args = append(args, e.ts, e.auditID, ids[f[0]], ids[f[1]], ids[f[2]], ids[f[3]],
					ids[f[4]], ids[f[5]], ids[f[6]], e.name, nb, e.code, ids[f[7]], ids[f[8]], ids[f[9]], ids[f[10]],
					batch, e.off, e.n)
			}
			st, padded := db.bucketed(ctx, tx, "events", args, nEventCols)
			res, err := st.ExecContext(ctx, padded...)
			if err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
			c, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
			n += c
			args = padded
		}
		if n == 0 { // a batch sent again: its events are all stored already
			if _, err := tx.ExecContext(ctx, db.rebind("DELETE FROM event_batches WHERE id = ?"), batch); err != nil {
				return fmt.Errorf("store audit event batch: %w", err)
			}
		}
		r.res = Result{Inserted: int(n), Duplicates: r.b.Len() - int(n)}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store audit events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store audit events: commit: %w", err)
	}
	db.dict.learn(learned)
	return nil
}

// resolve gives every string of reqs its dictionary id (in r.ids),
// inserting new ones, and for each new group set records which groups it
// holds. It returns the ids it found, for the cache once committed.
func (db *DB) resolve(ctx context.Context, tx *sql.Tx, reqs []*insertReq) (map[string]int64, error) {
	var missing []string
	db.dict.mu.RLock()
	for _, r := range reqs {
		for _, v := range r.missing {
			if id, ok := db.dict.ids[v]; ok { // learned since Insert looked
				r.ids[v] = id
			} else {
				missing = append(missing, v)
			}
		}
	}
	db.dict.mu.RUnlock()
	if len(missing) == 0 {
		return nil, nil
	}
	// A new group set needs its groups' ids too.
	newSets := map[string][]string{}
	for _, r := range reqs {
		for g, groups := range r.b.sets {
			if _, ok := r.ids[g]; ok {
				continue
			}
			if _, ok := newSets[g]; !ok {
				newSets[g] = groups
				missing = append(missing, groups...)
			}
		}
	}
	learned, err := db.ensure(ctx, tx, missing)
	if err != nil {
		return nil, err
	}
	var args []any
	for set, groups := range newSets {
		for _, g := range groups {
			args = append(args, learned[g], learned[set])
		}
	}
	for start := 0; start < len(args); start += 2 * dictChunk {
		part := args[start:min(start+2*dictChunk, len(args))]
		q := "INSERT INTO group_sets (grp, gset) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?),", len(part)/2), ",") + " ON CONFLICT DO NOTHING"
		if _, err := tx.ExecContext(ctx, db.rebind(q), part...); err != nil {
			return nil, fmt.Errorf("store audit group sets: %w", err)
		}
	}
	for _, r := range reqs {
		for _, v := range r.missing {
			if _, ok := r.ids[v]; !ok {
				r.ids[v] = learned[v]
			}
		}
	}
	return learned, nil
}

// groupsJSON encodes a user's groups as a JSON array: the group set's
// dictionary string.
func groupsJSON(groups []string) string {
	if len(groups) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(groups) // strings always marshal
	return string(b)
}
