package store

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// A filter on the object name goes through the name index, which is led
// by a bucket of consecutive events (see migration 0002): the newest
// matching events are found bucket by bucket, newest bucket first.

// nameBucket is one bucket of the name index and the newest request time
// it may hold.
type nameBucket struct {
	nb    int64
	maxTS int64
}

// nameBuckets lists the buckets, the one that may hold the newest event
// first. Bucket 0 (events stored under schema 1, without a batch) comes
// first when it has events.
func (db *DB) nameBuckets(ctx context.Context) ([]nameBucket, error) {
	var out []nameBucket
	var legacy int
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE nb = 0 LIMIT 1) x").Scan(&legacy); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	if legacy > 0 {
		out = append(out, nameBucket{0, math.MaxInt64})
	}
	rows, err := db.r.QueryContext(ctx, "SELECT nb, MAX(max_ts) FROM event_batches GROUP BY nb ORDER BY 2 DESC")
	if err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b nameBucket
		if err := rows.Scan(&b.nb, &b.maxTS); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	return out, nil
}

// hit is an event found through the name index: its time, id, and the
// value of one more column (Timeline's series).
type hit struct{ ts, id, v int64 }

// newestByName returns the newest n events (by time, then id) that match
// where, which must filter on the name. extra names one more column to
// read into hit.v (or is empty). since is the filter's lower time bound
// (0 for none).
func (db *DB) newestByName(ctx context.Context, from, where string, args []any, extra string, since int64, n int) ([]hit, error) {
	buckets, err := db.nameBuckets(ctx)
	if err != nil {
		return nil, err
	}
	cols := "e.ts, e.id"
	if extra != "" {
		cols += ", " + extra
	}
	q := db.rebind("SELECT " + cols + " FROM " + from + where + " AND e.nb = ? ORDER BY e.ts DESC, e.id DESC LIMIT ?")
	var hits []hit
	for _, b := range buckets {
		if b.maxTS < since || (len(hits) >= n && hits[n-1].ts > b.maxTS) {
			break // the older buckets hold only older events
		}
		rows, err := db.r.QueryContext(ctx, q, append(slices.Clip(args), b.nb, n)...)
		if err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		for rows.Next() {
			var h hit
			dest := []any{&h.ts, &h.id}
			if extra != "" {
				dest = append(dest, &h.v)
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("query audit store: %w", err)
			}
			hits = append(hits, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		slices.SortFunc(hits, func(a, b hit) int {
			if a.ts != b.ts {
				return cmpDesc(a.ts, b.ts)
			}
			return cmpDesc(a.id, b.id)
		})
		hits = hits[:min(len(hits), n)]
	}
	return hits, nil
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
