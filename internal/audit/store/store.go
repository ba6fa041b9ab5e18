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
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

//go:embed migrations
var migrations embed.FS

// ErrNotFound is returned by Get for an unknown id.
var ErrNotFound = errors.New("audit event not found")

// Result counts what an Insert did.
type Result struct {
	Inserted   int
	Duplicates int
}

// DB is an audit event store.
type DB struct {
	kind string // "sqlite" or "postgres"
	w    *sql.DB
	r    *sql.DB

	mu   sync.Mutex
	seen map[string]bool // groups known to be in groups_seen

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
		for _, kind := range []string{"events", "groups"} {
			st, err := db.w.PrepareContext(ctx, db.rebind(db.insertSQL(kind, n)))
			if err != nil {
				for _, st := range stmts {
					st.Close()
				}
				return fmt.Errorf("prepare audit insert: %w", err)
			}
			stmts[kind+strconv.Itoa(n)] = st
		}
	}
	db.stmts = stmts
	return nil
}

func (db *DB) insertSQL(kind string, n int) string {
	if kind == "events" && db.kind == "sqlite" {
		// The trigger events_group_index fills event_groups.
		return "INSERT INTO events (" + eventCols + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),", n), ",") +
			" ON CONFLICT (ts, audit_id, stage) DO NOTHING"
	}
	if kind == "events" {
		return "INSERT INTO events (" + eventCols + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),", n), ",") +
			" ON CONFLICT (ts, audit_id, stage) DO NOTHING RETURNING id, audit_id, stage"
	}
	return "INSERT INTO event_groups (grp, ts, event_id) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?),", n), ",") + " ON CONFLICT DO NOTHING"
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

func openSQLite(ctx context.Context, file string) (*DB, error) {
	if file == "" {
		return nil, errors.New("audit storage: sqlite3 needs a file")
	}
	file = strings.TrimPrefix(file, "file:")
	var extra []string // _pragma parameters given in the DSN
	if i := strings.IndexByte(file, '?'); i >= 0 {
		v, err := url.ParseQuery(file[i+1:])
		if err != nil {
			return nil, fmt.Errorf("audit storage: sqlite3 file %q: %w", file, err)
		}
		extra = v["_pragma"]
		file = file[:i]
	}
	q := url.Values{}
	// WAL lets readers run beside the writer; synchronous=FULL makes a
	// commit durable (the WAL is synced) before the sink answers 2xx.
	// Checkpoints stay in the writer's commits (SQLite's default, every
	// 1000 pages), which keeps the WAL bounded: a checkpointer on another
	// connection was measured and saved nothing, and with the writer's own
	// checkpoints off the WAL grew by 100 MB a second.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(OFF)", "cache_size(-65536)"} {
		q.Add("_pragma", p)
	}
	for _, p := range extra {
		q.Add("_pragma", p)
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
	db := &DB{kind: "sqlite", w: w, seen: map[string]bool{}}
	if err := db.migrate(ctx); err != nil {
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
	db := &DB{kind: "postgres", w: c, r: c, seen: map[string]bool{}}
	if err := db.migrate(ctx); err != nil {
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
		if v <= have {
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

const eventCols = "ts, audit_id, stage, level, verb, uri, username, groups, resource, subresource, namespace, name, api_group, code, source, user_agent, source_ip, raw"
const nEventCols = 18

// chunk bounds rows per statement (SQLite allows 32766 parameters); it is
// the largest bucket.
const chunk = 512

// Insert stores events in one transaction. Events whose (auditID, stage)
// is already stored are skipped and counted as duplicates. On error
// nothing of the batch is stored.
func (db *DB) Insert(ctx context.Context, events []event.Event) (Result, error) {
	if len(events) == 0 {
		return Result{}, nil
	}
	if err := db.prepare(ctx); err != nil {
		return Result{}, err
	}
	// Everything that needs no database happens before the transaction,
	// so that concurrent batches do it in parallel, outside the one writer.
	var chunks [][]any
	for start := 0; start < len(events); start += chunk {
		part := events[start:min(start+chunk, len(events))]
		args := make([]any, 0, len(part)*nEventCols)
		for _, e := range part {
			args = append(args, e.Time.UnixNano(), e.AuditID, e.Stage, e.Level, e.Verb, e.URI, e.User,
				groupsJSON(e.Groups), e.Resource, e.Sub, e.Namespace, e.Name, e.APIGroup, e.Code,
				e.Source, e.UserAgent, e.SourceIP, compress(e.Raw))
		}
		chunks = append(chunks, args)
	}

	r := &insertReq{ctx: ctx, events: events, chunks: chunks, done: make(chan error, 1)}
	if db.reqs == nil { // PostgreSQL: many writers, no need to group
		err := db.commit(ctx, []*insertReq{r})
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
		// The batch may still be committed; the sender retries and the
		// unique key makes that harmless.
		return Result{}, fmt.Errorf("store audit events: %w", ctx.Err())
	}
}

// insertReq is one batch waiting for the writer.
type insertReq struct {
	ctx    context.Context
	events []event.Event
	chunks [][]any
	res    Result
	done   chan error
}

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
			if r.ctx.Err() != nil {
				r.done <- r.ctx.Err() // its caller has given up: do not store it
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := db.commit(ctx, live)
		cancel()
		for _, r := range live {
			r.done <- err
		}
	}
}

// commit stores the batches in one transaction: all or none.
func (db *DB) commit(ctx context.Context, reqs []*insertReq) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store audit events: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	type key struct{ id, stage string }
	var newGroups []string
	var args []any
	rowsInStmt := 0
	flush := func() error {
		if rowsInStmt == 0 {
			return nil
		}
		st, padded := db.bucketed(ctx, tx, "groups", args, 3)
		if _, err := st.ExecContext(ctx, padded...); err != nil {
			return fmt.Errorf("store audit event groups: %w", err)
		}
		args, rowsInStmt = padded[:0], 0
		return nil
	}
	for _, r := range reqs {
		db.mu.Lock()
		for _, e := range r.events {
			for _, g := range e.Groups {
				if !db.seen[g] && !contains(newGroups, g) {
					newGroups = append(newGroups, g)
				}
			}
		}
		db.mu.Unlock()
		if db.kind == "sqlite" {
			// A trigger indexes the groups of the rows actually inserted;
			// RowsAffected counts those rows only.
			n := int64(0)
			for _, cargs := range r.chunks {
				st, cargs := db.bucketed(ctx, tx, "events", cargs, nEventCols)
				res, err := st.ExecContext(ctx, cargs...)
				if err != nil {
					return fmt.Errorf("store audit events: %w", err)
				}
				c, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("store audit events: %w", err)
				}
				n += c
			}
			r.res = Result{Inserted: int(n), Duplicates: len(r.events) - int(n)}
			continue
		}
		inserted := make(map[key]int64, len(r.events))
		for _, cargs := range r.chunks {
			st, cargs := db.bucketed(ctx, tx, "events", cargs, nEventCols)
			rows, err := st.QueryContext(ctx, cargs...)
			if err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
			for rows.Next() {
				var id int64
				var k key
				if err := rows.Scan(&id, &k.id, &k.stage); err != nil {
					rows.Close()
					return fmt.Errorf("store audit events: %w", err)
				}
				inserted[k] = id
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
		}
		r.res = Result{Inserted: len(inserted), Duplicates: len(r.events) - len(inserted)}

		// The group index, for inserted events only.
		for _, e := range r.events {
			id, ok := inserted[key{e.AuditID, e.Stage}]
			if !ok {
				continue
			}
			delete(inserted, key{e.AuditID, e.Stage}) // a key repeated inside the batch was stored once
			for _, g := range e.Groups {
				args = append(args, g, e.Time.UnixNano(), id)
				if rowsInStmt++; rowsInStmt == chunk {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if len(newGroups) > 0 {
		q := "INSERT INTO groups_seen (grp) VALUES " + strings.TrimSuffix(strings.Repeat("(?),", len(newGroups)), ",") + " ON CONFLICT DO NOTHING"
		gargs := make([]any, len(newGroups))
		for i, g := range newGroups {
			gargs[i] = g
		}
		if _, err := tx.ExecContext(ctx, db.rebind(q), gargs...); err != nil {
			return fmt.Errorf("store audit groups: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store audit events: commit: %w", err)
	}
	db.mu.Lock()
	for _, g := range newGroups {
		db.seen[g] = true
	}
	db.mu.Unlock()
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// groupsJSON encodes a user's groups as a JSON array, the events.groups
// column.
func groupsJSON(groups []string) string {
	if len(groups) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(groups) // strings always marshal
	return string(b)
}
