package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
)

const listCols = "e.id, e.ts, e.audit_id, e.stage, e.level, e.verb, e.uri, e.username, e.groups, e.resource, e.subresource, e.namespace, e.name, e.api_group, e.code, e.source, e.user_agent, e.source_ip"

// where builds the FROM and WHERE clauses for f, and names the time and
// id columns to order by (the group index's own when filtering by group,
// so that the ordering comes from that index).
func (db *DB) where(f query.Filter) (from, where, tsCol, idCol string, args []any) {
	from, tsCol, idCol = "events e", "e.ts", "e.id"
	var conds []string
	if f.Group != "" {
		from = "event_groups g JOIN events e ON e.id = g.event_id"
		tsCol, idCol = "g.ts", "g.event_id"
		conds = append(conds, "g.grp = ?")
		args = append(args, f.Group)
	}
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	eq("e.username", f.User)
	eq("e.verb", f.Verb)
	switch f.Verb {
	case "", "get", "list", "watch":
	default:
		conds = append(conds, "e.verb NOT IN ('get', 'list', 'watch')") // matches events_verb's condition
	}
	eq("e.resource", f.Resource)
	eq("e.namespace", f.Namespace)
	eq("e.name", f.Name)
	eq("e.source", f.Source)
	eq("e.audit_id", f.AuditID)
	if f.Code != 0 {
		conds = append(conds, "e.code = ?")
		args = append(args, f.Code)
		if f.Code >= 400 {
			conds = append(conds, "e.code >= 400") // matches events_code's condition
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, tsCol+" >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, tsCol+" < ?")
		args = append(args, f.Until.UnixNano())
	}
	if c := f.Before; c != nil {
		// Written so that both engines use the (…, ts) index range.
		conds = append(conds, "("+tsCol+" < ? OR ("+tsCol+" = ? AND "+idCol+" < ?))", tsCol+" <= ?")
		args = append(args, c.Time, c.Time, c.ID, c.Time)
	}
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return from, where, tsCol, idCol, args
}

// Query returns one page of events matching f, newest first, and the
// cursor for the next page (nil on the last page).
func (db *DB) Query(ctx context.Context, f query.Filter) ([]event.Event, *query.Cursor, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	limit := f.EffectiveLimit()
	from, where, tsCol, idCol, args := db.where(f)
	cols := listCols
	if f.IncludeRaw {
		cols += ", e.raw"
	}
	q := "SELECT " + cols + " FROM " + from + where + " ORDER BY " + tsCol + " DESC, " + idCol + " DESC LIMIT ?"
	args = append(args, limit+1)
	events, err := db.list(ctx, q, f.IncludeRaw, args...)
	if err != nil {
		return nil, nil, err
	}
	var next *query.Cursor
	if len(events) > limit {
		events = events[:limit]
		last := events[limit-1]
		next = &query.Cursor{Time: last.Time.UnixNano(), ID: last.ID}
	}
	return events, next, nil
}

// After returns up to limit events stored after the event with id
// afterID, in the order they were stored (for following new events).
func (db *DB) After(ctx context.Context, f query.Filter, afterID int64, limit int) ([]event.Event, error) {
	f.Before = nil
	from, where, _, _, args := db.where(f)
	if where == "" {
		where = " WHERE e.id > ?"
	} else {
		where += " AND e.id > ?"
	}
	args = append(args, afterID, limit)
	cols := listCols
	if f.IncludeRaw {
		cols += ", e.raw"
	}
	return db.list(ctx, "SELECT "+cols+" FROM "+from+where+" ORDER BY e.id LIMIT ?", f.IncludeRaw, args...)
}

// LastID returns the highest stored id (0 when empty).
func (db *DB) LastID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := db.r.QueryRowContext(ctx, "SELECT MAX(id) FROM events").Scan(&id); err != nil {
		return 0, fmt.Errorf("read audit store: %w", err)
	}
	return id.Int64, nil
}

// Get returns one event with its full JSON.
func (db *DB) Get(ctx context.Context, id int64) (event.Event, error) {
	events, err := db.list(ctx, db.rebind("SELECT "+listCols+", e.raw FROM events e WHERE e.id = ?"), true, id)
	if err != nil {
		return event.Event{}, err
	}
	if len(events) == 0 {
		return event.Event{}, fmt.Errorf("event %d: %w", id, ErrNotFound)
	}
	return events[0], nil
}

// Count returns the number of stored events.
func (db *DB) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM events").Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// AuditIDs returns every stored (auditID, stage) as "auditID/stage" with
// how often it is stored (always 1 unless the unique key is broken); for
// loss and duplicate checks in tests and benchmarks.
func (db *DB) AuditIDs(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT audit_id, stage FROM events")
	if err != nil {
		return nil, fmt.Errorf("read audit store: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id, stage string
		if err := rows.Scan(&id, &stage); err != nil {
			return nil, fmt.Errorf("read audit store: %w", err)
		}
		out[id+"/"+stage]++
	}
	return out, rows.Err()
}

func (db *DB) list(ctx context.Context, q string, raw bool, args ...any) ([]event.Event, error) {
	rows, err := db.r.QueryContext(ctx, db.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var e event.Event
		var ts int64
		var groups string
		dest := []any{&e.ID, &ts, &e.AuditID, &e.Stage, &e.Level, &e.Verb, &e.URI, &e.User, &groups,
			&e.Resource, &e.Sub, &e.Namespace, &e.Name, &e.APIGroup, &e.Code, &e.Source, &e.UserAgent, &e.SourceIP}
		var rawCol []byte
		if raw {
			dest = append(dest, &rawCol)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		e.Time = time.Unix(0, ts).UTC()
		if raw {
			if e.Raw, err = decompress(rawCol); err != nil {
				return nil, fmt.Errorf("query audit store: event %d: %w", e.ID, err)
			}
		}
		if strings.HasPrefix(groups, "[") {
			if err := json.Unmarshal([]byte(groups), &e.Groups); err != nil {
				return nil, fmt.Errorf("query audit store: event %d groups: %w", e.ID, err)
			}
		} else if groups != "" { // newline-separated, as bulk loads may write them
			e.Groups = strings.Split(groups, "\n")
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	return out, nil
}

// Timeline counts events matching f per time bucket and per value of by
// ("user" or "verb"). It reads at most maxEvents of the newest matching
// events (Sampled reports when it stopped there), so a page over millions
// of events stays fast.
type Timeline struct {
	Start, End time.Time
	Bucket     time.Duration
	// Series are the top values by count, the rest summed as "other".
	Series  []Series
	Total   int
	Sampled bool
}

// Series is the counts of one value per bucket.
type Series struct {
	Name   string
	Counts []int
	Total  int
}

// ErrBadTimeline marks an unknown "by".
var ErrBadTimeline = errors.New("timeline: by must be user or verb")

// Timeline computes a Timeline with about buckets buckets.
func (db *DB) Timeline(ctx context.Context, f query.Filter, by string, buckets, maxEvents, maxSeries int) (Timeline, error) {
	col := map[string]string{"user": "e.username", "verb": "e.verb"}[by]
	if col == "" {
		return Timeline{}, ErrBadTimeline
	}
	f.Before = nil
	from, where, tsCol, idCol, args := db.where(f)
	q := "SELECT " + tsCol + ", " + col + " FROM " + from + where + " ORDER BY " + tsCol + " DESC, " + idCol + " DESC LIMIT ?"
	args = append(args, maxEvents+1)
	rows, err := db.r.QueryContext(ctx, db.rebind(q), args...)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline: %w", err)
	}
	defer rows.Close()
	type pt struct {
		ts int64
		v  string
	}
	var pts []pt
	for rows.Next() {
		var p pt
		if err := rows.Scan(&p.ts, &p.v); err != nil {
			return Timeline{}, fmt.Errorf("timeline: %w", err)
		}
		pts = append(pts, p)
	}
	if err := rows.Err(); err != nil {
		return Timeline{}, fmt.Errorf("timeline: %w", err)
	}
	var tl Timeline
	if len(pts) > maxEvents {
		pts, tl.Sampled = pts[:maxEvents], true
	}
	tl.Total = len(pts)
	if len(pts) == 0 {
		return tl, nil
	}
	lo, hi := pts[len(pts)-1].ts, pts[0].ts
	if !f.Since.IsZero() && !tl.Sampled {
		lo = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		hi = f.Until.UnixNano()
	}
	span := time.Duration(hi - lo + 1)
	tl.Bucket = niceBucket(span / time.Duration(max(buckets, 1)))
	start := time.Unix(0, lo).UTC().Truncate(tl.Bucket)
	n := int(time.Unix(0, hi).Sub(start)/tl.Bucket) + 1
	tl.Start, tl.End = start, start.Add(time.Duration(n)*tl.Bucket)
	totals := map[string]int{}
	for _, p := range pts {
		totals[p.v]++
	}
	names := make([]string, 0, len(totals))
	for k := range totals {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if totals[names[i]] != totals[names[j]] {
			return totals[names[i]] > totals[names[j]]
		}
		return names[i] < names[j]
	})
	idx := map[string]int{}
	for i, name := range names {
		if i == maxSeries-1 && len(names) > maxSeries {
			tl.Series = append(tl.Series, Series{Name: "other", Counts: make([]int, n)})
			break
		}
		idx[name] = i
		tl.Series = append(tl.Series, Series{Name: name, Counts: make([]int, n)})
	}
	other := len(tl.Series) - 1
	for _, p := range pts {
		i, ok := idx[p.v]
		if !ok {
			i = other
		}
		b := int(time.Unix(0, p.ts).Sub(start) / tl.Bucket)
		if b >= 0 && b < n {
			tl.Series[i].Counts[b]++
			tl.Series[i].Total++
		}
	}
	return tl, nil
}

func niceBucket(d time.Duration) time.Duration {
	for _, b := range []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute,
		5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if d <= b {
			return b
		}
	}
	return 7 * 24 * time.Hour
}
