package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// dict caches the string dictionary (table audit_strings): value to id
// and back. Only committed strings enter it, so a rolled-back insert
// never leaves an id behind that the database does not have. Ids are
// never reused, so a cached entry stays true; with several PostgreSQL
// writers, strings another writer added are looked up on a miss.
type dict struct {
	mu    sync.RWMutex
	ids   map[string]int64
	names map[int64]string
}

func newDict() *dict {
	return &dict{ids: map[string]int64{}, names: map[int64]string{}}
}

func (d *dict) learn(m map[string]int64) {
	d.mu.Lock()
	for v, id := range m {
		d.ids[v] = id
		d.names[id] = v
	}
	d.mu.Unlock()
}

// dictChunk bounds the values in one IN (...) or VALUES list.
const dictChunk = 500

// ensure returns the ids of values, inserting the ones the dictionary does
// not have yet, inside tx (so that they are committed with the events that
// use them).
func (db *DB) ensure(ctx context.Context, tx *sql.Tx, values []string) (map[string]int64, error) {
	values = slices.Clone(values)
	slices.Sort(values) // a fixed order: concurrent PostgreSQL writers never deadlock on the unique index
	values = slices.Compact(values)
	out := make(map[string]int64, len(values))
	for start := 0; start < len(values); start += dictChunk {
		part := values[start:min(start+dictChunk, len(values))]
		args := make([]any, len(part))
		for i, v := range part {
			args[i] = v
		}
		ph := strings.TrimSuffix(strings.Repeat("(?),", len(part)), ",")
		if _, err := tx.ExecContext(ctx, db.rebind("INSERT INTO audit_strings (value) VALUES "+ph+" ON CONFLICT (value) DO NOTHING"), args...); err != nil {
			return nil, fmt.Errorf("store audit strings: %w", err)
		}
		if err := scanIDs(ctx, tx, db.rebind("SELECT id, value FROM audit_strings WHERE value IN ("+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+")"), args, out); err != nil {
			return nil, err
		}
	}
	for _, v := range values {
		if _, ok := out[v]; !ok {
			return nil, fmt.Errorf("store audit strings: %q has no id after insert", v)
		}
	}
	return out, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func scanIDs(ctx context.Context, q querier, query string, args []any, out map[string]int64) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read audit strings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("read audit strings: %w", err)
		}
		out[v] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit strings: %w", err)
	}
	return nil
}

// lookup returns the ids of the values that are in the dictionary (a value
// missing from the result is in no stored event), for filters.
func (db *DB) lookup(ctx context.Context, values ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(values))
	var miss []any
	db.dict.mu.RLock()
	for _, v := range values {
		if id, ok := db.dict.ids[v]; ok {
			out[v] = id
		} else {
			miss = append(miss, v)
		}
	}
	db.dict.mu.RUnlock()
	if len(miss) == 0 {
		return out, nil
	}
	found := map[string]int64{}
	q := "SELECT id, value FROM audit_strings WHERE value IN (" + strings.TrimSuffix(strings.Repeat("?,", len(miss)), ",") + ")"
	if err := scanIDs(ctx, db.r, db.rebind(q), miss, found); err != nil {
		return nil, err
	}
	db.dict.learn(found)
	for v, id := range found {
		out[v] = id
	}
	return out, nil
}

// names returns the strings of ids, reading the ones not cached.
func (db *DB) names(ctx context.Context, ids map[int64]string) error {
	var miss []any
	db.dict.mu.RLock()
	for id := range ids {
		if v, ok := db.dict.names[id]; ok {
			ids[id] = v
		} else {
			miss = append(miss, id)
		}
	}
	db.dict.mu.RUnlock()
	got := 0
	for start := 0; start < len(miss); start += dictChunk {
		part := miss[start:min(start+dictChunk, len(miss))]
		found := map[string]int64{}
		q := "SELECT id, value FROM audit_strings WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(part)), ",") + ")"
		if err := scanIDs(ctx, db.r, db.rebind(q), part, found); err != nil {
			return err
		}
		db.dict.learn(found)
		for v, id := range found {
			ids[id] = v
		}
		got += len(found)
	}
	if got != len(miss) {
		return fmt.Errorf("read audit store: %d string ids are not in the dictionary", len(miss)-got)
	}
	return nil
}
