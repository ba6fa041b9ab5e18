package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmts caches prepared statements of one *sql.DB. SQLite parsing a
// 25-column statement costs as much as running it, so the hot path (the
// refresh grant's read and update) must not parse on every call:
// database/sql prepares a *sql.Stmt once per connection and keeps it.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
	// frozen: every statement was prepared up front and preparing another
	// is a bug (the writer's, see Open).
	frozen bool
}

func newStmts(db *sql.DB) *stmts { return &stmts{db: db, m: map[string]*sql.Stmt{}} }

// get returns the prepared statement for query, preparing it on first use.
func (c *stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	if c.frozen {
		return nil, fmt.Errorf("statement not prepared at Open: %s", query)
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// close closes every statement.
func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

// queryRow runs query on the pool with a cached statement.
func (c *stmts) queryRow(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	st, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// query runs query on the pool with a cached statement.
func (c *stmts) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// exec runs query on the pool, or in tx when not nil, with a cached
// statement.
func (c *stmts) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		st = tx.StmtContext(ctx, st)
	}
	return st.ExecContext(ctx, args...)
}

// txQueryRow runs query in tx with a cached statement.
func (c *stmts) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Row, error) {
	st, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...), nil
}
