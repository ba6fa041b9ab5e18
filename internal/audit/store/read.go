package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
)

const listCols = "e.id, e.ts, e.audit_id, e.stage, e.verb, e.username, e.gset, e.resource, e.subresource, e.namespace, e.name, e.code, e.source, e.level, e.api_group, e.user_agent"

// rawCols locate an event's JSON: in its batch, or (schema 1) in the row.
const rawCols = ", e.batch, e.raw_off, e.raw_len, e.raw"

// readVerbs are the dictionary ids of get, list and watch (fixed by the
// migration): the partial verb index leaves them out.
const maxReadVerb = 3

// where builds the FROM and WHERE clauses for f. none reports that a
// filter names a string no stored event has, so nothing matches. With
// newestFirst (the query is ordered by time, newest first) FROM names the
// index that drives the query on SQLite (plan.go).
func (db *DB) where(ctx context.Context, f query.Filter, newestFirst bool) (from, where string, args []any, none bool, err error) {
	from = "events e"
	var conds []string
	var want []string
	var sets []any
	for _, v := range []string{f.User, f.Group, f.Verb, f.Resource, f.Namespace, f.Source} {
		if v != "" {
			want = append(want, v)
		}
	}
	ids, err := db.lookup(ctx, want...)
	if err != nil {
		return "", "", nil, false, err
	}
	eq := func(col, v string) {
		if v == "" {
			return
		}
		id, ok := ids[v]
		if !ok {
			none = true
			return
		}
		conds = append(conds, col+" = ?")
		args = append(args, id)
	}
	if f.Group != "" {
		// The group sets that hold the group, then the events of those
		// sets (index events_gset), or the events by time checked against
		// the sets, whichever the planner finds cheaper.
		gid, ok := ids[f.Group]
		if !ok {
			return "", "", nil, true, nil
		}
		sets, err = db.groupSets(ctx, gid)
		if err != nil {
			return "", "", nil, false, err
		}
		if len(sets) == 0 {
			return "", "", nil, true, nil
		}
		conds = append(conds, "e.gset IN ("+strings.TrimSuffix(strings.Repeat("?,", len(sets)), ",")+")")
		args = append(args, sets...)
	}
	eq("e.username", f.User)
	eq("e.verb", f.Verb)
	switch f.Verb {
	case "", "get", "list", "watch":
	default:
		conds = append(conds, "e.verb > "+strconv.Itoa(maxReadVerb)) // matches events_verb's condition
	}
	eq("e.resource", f.Resource)
	eq("e.namespace", f.Namespace)
	eq("e.source", f.Source)
	if f.Name != "" {
		conds = append(conds, "e.name = ?")
		args = append(args, f.Name)
	}
	if f.AuditID != "" {
		conds = append(conds, "e.audit_id = ?")
		args = append(args, f.AuditID)
	}
	if f.Code != 0 {
		conds = append(conds, "e.code = ?")
		args = append(args, f.Code)
		if f.Code >= 400 {
			conds = append(conds, "e.code >= 400") // matches events_code's condition
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "e.ts >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "e.ts < ?")
		args = append(args, f.Until.UnixNano())
	}
	if c := f.Before; c != nil {
		// Written so that both engines use the (…, ts) index range.
		conds = append(conds, "(e.ts < ? OR (e.ts = ? AND e.id < ?))", "e.ts <= ?")
		args = append(args, c.Time, c.Time, c.ID, c.Time)
	}
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	if newestFirst && !none {
		idx, err := db.drivingIndex(ctx, f, ids, sets)
		if err != nil {
			return "", "", nil, false, err
		}
		if idx != "" {
			from = idx
		}
	}
	return from, where, args, none, nil
}

// since is f's lower time bound in Unix nanoseconds, 0 for none.
func since(f query.Filter) int64 {
	if f.Since.IsZero() {
		return 0
	}
	return f.Since.UnixNano()
}

// groupSets returns the ids of the group sets that hold group gid.
func (db *DB) groupSets(ctx context.Context, gid int64) ([]any, error) {
	rows, err := db.r.QueryContext(ctx, db.rebind("SELECT gset FROM group_sets WHERE grp = ? ORDER BY gset"), gid)
	if err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	defer rows.Close()
	var sets []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		sets = append(sets, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	return sets, nil
}

// Query returns one page of events matching f, newest first, and the
// cursor for the next page (nil on the last page). URI and SourceIP are
// read from the event's JSON, so they are set only with f.IncludeRaw.
func (db *DB) Query(ctx context.Context, f query.Filter) ([]event.Event, *query.Cursor, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	limit := f.EffectiveLimit()
	from, where, args, none, err := db.where(ctx, f, true)
	if err != nil || none {
		return nil, nil, err
	}
	cols := listCols
	if f.IncludeRaw {
		cols += rawCols
	}
	if f.Name != "" {
		// Find the page through the name index's buckets, then read it.
		hits, err := db.newestByName(ctx, from, where, args, "", since(f), limit+1)
		if err != nil || len(hits) == 0 {
			return nil, nil, err
		}
		args = args[:0]
		for _, h := range hits {
			args = append(args, h.id)
		}
		from = "events e"
		where = " WHERE e.id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(hits)), ",") + ")"
	} else if (from == "events e" || from == timeIndex) && db.kind == "sqlite" {
		// Driven by the time index (events_key: ts, audit_id, stage),
		// SQLite sorts on id every event of the time range before the
		// LIMIT (70 ms for an hour of 5 million events over a week). The
		// page's oldest request time, found in the index alone, bounds
		// the range to the page.
		var oldest int64
		err := db.r.QueryRowContext(ctx, "SELECT e.ts FROM "+from+where+" ORDER BY e.ts DESC LIMIT 1 OFFSET ?", append(args[:len(args):len(args)], limit)...).Scan(&oldest)
		switch {
		case errors.Is(err, sql.ErrNoRows): // the whole range fits in the page
		case err != nil:
			return nil, nil, fmt.Errorf("query audit store: %w", err)
		default:
			if where == "" {
				where = " WHERE e.ts >= ?"
			} else {
				where += " AND e.ts >= ?"
			}
			args = append(args, oldest)
		}
	}
	q := "SELECT " + cols + " FROM " + from + where + " ORDER BY e.ts DESC, e.id DESC LIMIT ?"
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
	from, where, args, none, err := db.where(ctx, f, false)
	if err != nil || none {
		return nil, err
	}
	if where == "" {
		where = " WHERE e.id > ?"
	} else {
		where += " AND e.id > ?"
	}
	args = append(args, afterID, limit)
	cols := listCols
	if f.IncludeRaw {
		cols += rawCols
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
	events, err := db.list(ctx, db.rebind("SELECT "+listCols+rawCols+" FROM events e WHERE e.id = ?"), true, id)
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
	rows, err := db.r.QueryContext(ctx, "SELECT e.audit_id, s.value FROM events e JOIN audit_strings s ON s.id = e.stage")
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

// row is an events row as read, before its strings are looked up.
type row struct {
	e             event.Event
	ts            int64
	str           [10]int64 // stage, verb, username, gset, resource, subresource, namespace, source, level, api_group
	agent         int64
	batch, off, n sql.NullInt64
	raw           []byte
}

func (db *DB) list(ctx context.Context, q string, raw bool, args ...any) ([]event.Event, error) {
	rows, err := db.r.QueryContext(ctx, db.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	defer rows.Close()
	var rs []row
	for rows.Next() {
		var r row
		dest := []any{&r.e.ID, &r.ts, &r.e.AuditID, &r.str[0], &r.str[1], &r.str[2], &r.str[3], &r.str[4], &r.str[5], &r.str[6],
			&r.e.Name, &r.e.Code, &r.str[7], &r.str[8], &r.str[9], &r.agent}
		if raw {
			dest = append(dest, &r.batch, &r.off, &r.n, &r.raw)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	rows.Close()
	strs := map[int64]string{}
	need := map[int64][]int{} // the events' offsets in each batch
	for i := range rs {
		for _, id := range rs[i].str {
			strs[id] = ""
		}
		strs[rs[i].agent] = ""
		if raw && rs[i].batch.Valid {
			need[rs[i].batch.Int64] = append(need[rs[i].batch.Int64], int(rs[i].off.Int64))
		}
	}
	if err := db.names(ctx, strs); err != nil {
		return nil, err
	}
	batches, err := db.batches(ctx, need)
	if err != nil {
		return nil, err
	}
	if raw {
		// The frames the page needs, each once, decoded together.
		var frames []blobFrame
		seen := map[blobFrame]bool{}
		for i := range rs {
			b := batches[rs[i].batch.Int64]
			if !rs[i].batch.Valid || b == nil {
				continue
			}
			k, err := b.frameOf(int(rs[i].off.Int64))
			if err != nil {
				return nil, fmt.Errorf("query audit store: event %d: %w", rs[i].e.ID, err)
			}
			if f := (blobFrame{b, k}); !seen[f] {
				seen[f] = true
				frames = append(frames, f)
			}
		}
		if err := decodeAll(frames); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
	}
	out := make([]event.Event, len(rs))
	for i := range rs {
		r := &rs[i]
		e := r.e
		e.Time = time.Unix(0, r.ts).UTC()
		e.Stage, e.Verb, e.User = strs[r.str[0]], strs[r.str[1]], strs[r.str[2]]
		e.Resource, e.Sub, e.Namespace = strs[r.str[4]], strs[r.str[5]], strs[r.str[6]]
		e.Source, e.Level, e.APIGroup, e.UserAgent = strs[r.str[7]], strs[r.str[8]], strs[r.str[9]], strs[r.agent]
		if groups := strs[r.str[3]]; strings.HasPrefix(groups, "[") {
			if err := json.Unmarshal([]byte(groups), &e.Groups); err != nil {
				return nil, fmt.Errorf("query audit store: event %d groups: %w", e.ID, err)
			}
			if len(e.Groups) == 0 {
				e.Groups = nil
			}
		} else if groups != "" { // newline-separated, as bulk loads may have written them
			e.Groups = strings.Split(groups, "\n")
		}
		if raw {
			switch {
			case r.batch.Valid:
				b := batches[r.batch.Int64]
				if b == nil {
					// Retention removed the batch between reading the row
					// and the batch: the event is being deleted too.
					break
				}
				if e.Raw, err = b.event(int(r.off.Int64), int(r.n.Int64)); err != nil {
					return nil, fmt.Errorf("query audit store: event %d: %w", e.ID, err)
				}
			default:
				if e.Raw, err = decompress(r.raw); err != nil {
					return nil, fmt.Errorf("query audit store: event %d: %w", e.ID, err)
				}
			}
			if e.Raw != nil {
				var d displayOnly
				if err := json.Unmarshal(e.Raw, &d); err == nil {
					e.URI = d.RequestURI
					if len(d.SourceIPs) > 0 {
						e.SourceIP = d.SourceIPs[0]
					}
				}
			}
		}
		out[i] = e
	}
	return out, nil
}

// displayOnly are the event's fields kept only in its JSON.
type displayOnly struct {
	RequestURI string   `json:"requestURI"`
	SourceIPs  []string `json:"sourceIPs"`
}

// batches reads the batches named by the keys of need, keeping of each
// only the compressed frames that hold need's offsets (decompressed when
// an event is read from them).
func (db *DB) batches(ctx context.Context, need map[int64][]int) (map[int64]*batchBlob, error) {
	bs := make(map[int64]*batchBlob, len(need))
	if len(need) == 0 {
		return bs, nil
	}
	ids := make([]any, 0, len(need))
	for id := range need {
		ids = append(ids, id)
	}
	rows, err := db.r.QueryContext(ctx, db.rebind("SELECT id, data FROM event_batches WHERE id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")+")"), ids...)
	if err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var data sql.RawBytes // valid until Next: keep copies of the frames needed
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("query audit store: %w", err)
		}
		b, err := openBatch(data)
		if err == nil {
			err = b.keep(need[id])
		}
		if err != nil {
			return nil, fmt.Errorf("query audit store: batch %d: %w", id, err)
		}
		bs[id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit store: %w", err)
	}
	return bs, nil
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
	from, where, args, none, err := db.where(ctx, f, true)
	if err != nil || none {
		return Timeline{}, err
	}
	type pt struct {
		ts int64
		id int64 // the user's or verb's string id
		v  string
	}
	var pts []pt
	strs := map[int64]string{}
	if f.Name != "" {
		hits, err := db.newestByName(ctx, from, where, args, col, since(f), maxEvents+1)
		if err != nil {
			return Timeline{}, fmt.Errorf("timeline: %w", err)
		}
		for _, h := range hits {
			strs[h.v] = ""
			pts = append(pts, pt{ts: h.ts, id: h.v})
		}
	} else {
		q := "SELECT e.ts, " + col + " FROM " + from + where + " ORDER BY e.ts DESC, e.id DESC LIMIT ?"
		args = append(args, maxEvents+1)
		rows, err := db.r.QueryContext(ctx, db.rebind(q), args...)
		if err != nil {
			return Timeline{}, fmt.Errorf("timeline: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p pt
			if err := rows.Scan(&p.ts, &p.id); err != nil {
				return Timeline{}, fmt.Errorf("timeline: %w", err)
			}
			strs[p.id] = ""
			pts = append(pts, p)
		}
		if err := rows.Err(); err != nil {
			return Timeline{}, fmt.Errorf("timeline: %w", err)
		}
		rows.Close()
	}
	if err := db.names(ctx, strs); err != nil {
		return Timeline{}, fmt.Errorf("timeline: %w", err)
	}
	for i := range pts {
		pts[i].v = strs[pts[i].id]
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
