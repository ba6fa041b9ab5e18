package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Retention bounds what the store keeps. Zero fields do not bound.
type Retention struct {
	MaxAge    time.Duration
	MaxEvents int64
}

// deleteChunk bounds the rows one DELETE removes, so ingest is never held
// up for long behind retention.
const deleteChunk = 5000

// Retain deletes events older than r.MaxAge and, beyond r.MaxEvents, the
// oldest events. It returns how many events it deleted.
func (db *DB) Retain(ctx context.Context, r Retention, now time.Time) (int64, error) {
	if db.readOnly {
		return 0, fmt.Errorf("audit retention: %w", ErrReadOnly)
	}
	var cutoff int64 // delete events with ts < cutoff
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge).UnixNano()
	}
	if r.MaxEvents > 0 {
		// max(id)-min(id)+1 bounds the count from above and is cheap;
		// only when it is over do we look for the exact boundary.
		var lo, hi sql.NullInt64
		if err := db.r.QueryRowContext(ctx, "SELECT MIN(id), MAX(id) FROM events").Scan(&lo, &hi); err != nil {
			return 0, fmt.Errorf("audit retention: %w", err)
		}
		if hi.Valid && hi.Int64-lo.Int64+1 > r.MaxEvents {
			var ts int64
			err := db.r.QueryRowContext(ctx, db.rebind("SELECT ts FROM events ORDER BY ts DESC LIMIT 1 OFFSET ?"), r.MaxEvents).Scan(&ts)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return 0, fmt.Errorf("audit retention: %w", err)
			case ts+1 > cutoff:
				cutoff = ts + 1
			}
		}
	}
	if cutoff == 0 {
		return 0, nil
	}
	// Batches stored from here on keep their raw events this round: a
	// batch of old events may land after its events' DELETE has passed,
	// and its events must not lose their JSON.
	var lastBatch sql.NullInt64
	if err := db.r.QueryRowContext(ctx, "SELECT MAX(id) FROM event_batches").Scan(&lastBatch); err != nil {
		return 0, fmt.Errorf("audit retention: %w", err)
	}
	var total int64
	for {
		n, err := db.deleteChunk(ctx, "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? LIMIT ?)", cutoff, deleteChunk)
		if err != nil {
			return total, err
		}
		total += n
		if n < deleteChunk {
			break
		}
	}
	// A batch whose newest event is older than the cutoff has no event
	// left. Batches are about 50 KB each: fewer per statement.
	for lastBatch.Valid {
		n, err := db.deleteChunk(ctx, "DELETE FROM event_batches WHERE id IN (SELECT id FROM event_batches WHERE max_ts < ? AND id <= ? LIMIT ?)", cutoff, lastBatch.Int64, deleteChunk/50)
		if err != nil {
			return total, err
		}
		if n < deleteChunk/50 {
			break
		}
	}
	return total, nil
}

func (db *DB) deleteChunk(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := db.w.ExecContext(ctx, db.rebind(q), args...)
	if err != nil {
		return 0, fmt.Errorf("audit retention: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("audit retention: %w", err)
	}
	return n, nil
}

// RunRetention applies r every interval until ctx ends.
func (db *DB) RunRetention(ctx context.Context, r Retention, interval time.Duration, log *slog.Logger) {
	if r.MaxAge <= 0 && r.MaxEvents <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := db.Retain(ctx, r, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("audit retention failed", "err", err)
		case n > 0:
			log.Info("audit retention deleted events", "events", n)
		}
		if err := db.Optimize(ctx); err != nil && ctx.Err() == nil {
			log.Warn("audit store: optimize failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Optimize refreshes the query planner's statistics (SQLite's PRAGMA
// optimize, PostgreSQL's ANALYZE); the retention loop runs it.
func (db *DB) Optimize(ctx context.Context) error {
	if db.readOnly {
		return fmt.Errorf("optimize audit store: %w", ErrReadOnly)
	}
	q := "PRAGMA optimize=0x10002"
	if db.kind == "postgres" {
		q = "ANALYZE events, event_batches, group_sets"
	}
	if _, err := db.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("optimize audit store: %w", err)
	}
	return nil
}
