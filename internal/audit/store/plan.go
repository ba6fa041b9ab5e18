package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
)

// SQLite's planner knows only the average number of events per value of
// an indexed column (sqlite_stat1), so for a filter on several columns it
// may walk the wrong index: measured on 5 million events (schema 2), "a team's
// deletes" went through the verb index's whole range and sorted it
// (7.7 s with a cold page cache) instead of the group's index in time
// order (58 ms). So the store chooses: it counts, up to probeCap, the
// events each usable index holds for the filter (an index-only scan) and
// names the smallest with INDEXED BY. Every (column, ts) index returns
// its events in the page's order, and the one with the fewest events has
// the densest matches, so it reaches the page's end soonest. PostgreSQL
// keeps per-value statistics and combines indexes itself: it plans alone.

// probeCap bounds the events a probe counts in one index (an index-only
// count of 4,096 events takes about half a millisecond).
var probeCap = 4096 // a variable for tests

// candidate is an index that can drive a filter's query.
type candidate struct {
	index string
	cond  string // the filter's condition on the index's leading column
	args  []any
	// unordered: the index holds the events under several values (a
	// group's sets), so its events come out in time order per value
	// only and SQLite sorts them all: it drives a query only when the
	// probe counted them all (fewer than probeCap).
	unordered bool
}

// candidates lists the indexes usable for f, in the order that wins a tie
// (usually the most selective first). ids are the filter's dictionary
// ids, sets the group's sets.
func candidates(f query.Filter, ids map[string]int64, sets []any) []candidate {
	var out []candidate
	add := func(index, cond string, args ...any) {
		out = append(out, candidate{index: index, cond: cond, args: args})
	}
	if f.Code >= 400 {
		add("events_code", "e.code = ? AND e.code >= 400", f.Code)
	}
	if id, ok := ids[f.User]; ok && f.User != "" {
		add("events_user", "e.username = ?", id)
	}
	if len(sets) > 0 {
		add("events_gset", "e.gset IN ("+strings.TrimSuffix(strings.Repeat("?,", len(sets)), ",")+")", sets...)
		out[len(out)-1].unordered = len(sets) > 1
	}
	if id, ok := ids[f.Verb]; ok && id > maxReadVerb {
		add("events_verb", "e.verb = ? AND e.verb > "+strconv.Itoa(maxReadVerb), id)
	}
	if id, ok := ids[f.Resource]; ok && f.Resource != "" {
		add("events_resource", "e.resource = ?", id)
	}
	if id, ok := ids[f.Namespace]; ok && f.Namespace != "" {
		add("events_namespace", "e.namespace = ?", id)
	}
	if id, ok := ids[f.Source]; ok && f.Source != "" {
		add("events_source", "e.source = ?", id)
	}
	return out
}

// timeConds are f's conditions on the request time (and the cursor).
func timeConds(f query.Filter) (conds []string, args []any) {
	if !f.Since.IsZero() {
		conds, args = append(conds, "e.ts >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "e.ts < ?"), append(args, f.Until.UnixNano())
	}
	if f.Before != nil {
		conds, args = append(conds, "e.ts <= ?"), append(args, f.Before.Time)
	}
	return conds, args
}

// timeIndex names the time index: a query of no candidate's index scans
// it newest first.
const timeIndex = "events e INDEXED BY events_key"

// drivingIndex returns the FROM clause for f's query: on SQLite, the
// events table INDEXED BY the index with the fewest events for f when
// f filters on an indexed column, else by the time index ("" when f has
// no indexed filter, or on PostgreSQL). ids and sets are as where found
// them.
func (db *DB) drivingIndex(ctx context.Context, f query.Filter, ids map[string]int64, sets []any) (string, error) {
	if db.kind != "sqlite" || f.Name != "" {
		return "", nil
	}
	cands := candidates(f, ids, sets)
	switch {
	case len(cands) == 0:
		return "", nil
	case len(cands) == 1 && !cands[0].unordered:
		return "events e INDEXED BY " + cands[0].index, nil
	}
	tc, targs := timeConds(f)
	probe := func(c candidate, limit int) (int, error) {
		q := "SELECT COUNT(*) FROM (SELECT 1 FROM events e INDEXED BY " + c.index + " WHERE " + strings.Join(append([]string{c.cond}, tc...), " AND ") + " LIMIT ?)"
		var n int
		if err := db.r.QueryRowContext(ctx, q, append(append(append([]any{}, c.args...), targs...), limit)...).Scan(&n); err != nil {
			return 0, fmt.Errorf("query audit store: plan: %w", err)
		}
		return n, nil
	}
	best, bestN := -1, probeCap+1
	for i, c := range cands {
		limit := probeCap
		if bestN < probeCap {
			limit = bestN - 1
		}
		n, err := probe(c, limit)
		if err != nil {
			return "", err
		}
		// A count below its limit is exact and smaller than the best so
		// far; the first ordered index counts even at the cap. Between
		// indexes at the cap the order of candidates decides: with the
		// other filter columns in every index (schema 3) a larger index
		// costs only index entries, not rows (a second round of probes up
		// to 65,536 events cost more than it saved: 10 ms of CPU).
		if n < limit || (best < 0 && !c.unordered) {
			best, bestN = i, n
		}
		if bestN <= 1 {
			break
		}
	}
	if best < 0 {
		return timeIndex, nil
	}
	return "events e INDEXED BY " + cands[best].index, nil
}
