package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/golang/snappy"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// storeDSNs name a new store of each engine, before it is opened.
var storeDSNs = []struct {
	name string
	dsn  func(t *testing.T) (typ, dsn string)
}{
	{"sqlite", func(t *testing.T) (string, string) { return "sqlite3", filepath.Join(t.TempDir(), "audit.db") }},
	{"postgres", func(t *testing.T) (string, string) { return "postgres", pgtest.DSN(t) }},
}

// TestUpgradeFromSchema1 fills a store that has only migration 0001 with
// events as that schema stored them, upgrades it, and checks that every
// event is still there, found by every filter, with its raw JSON; and
// that new events and retention work beside them.
func TestUpgradeFromSchema1(t *testing.T) {
	for _, b := range storeDSNs {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			typ, dsn := b.dsn(t)
			restore := store.MigrateUpTo(1)
			old, err := store.Open(ctx, typ, dsn)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			events := genEvents(t, 8, 300)
			for i, e := range events {
				groups, _ := json.Marshal(e.Groups)
				raw := []byte(e.Raw)
				if i%2 == 0 { // schema 1 stored Snappy behind a zero byte, or plain JSON
					raw = append([]byte{0}, snappy.Encode(nil, e.Raw)...)
				}
				err := store.Exec(ctx, old, `INSERT INTO events (ts, audit_id, stage, level, verb, uri, username, groups, resource, subresource, namespace, name, api_group, code, source, user_agent, source_ip, raw)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					e.Time.UnixNano(), e.AuditID, e.Stage, e.Level, e.Verb, e.URI, e.User, string(groups), e.Resource, e.Sub,
					e.Namespace, e.Name, e.APIGroup, e.Code, e.Source, e.UserAgent, e.SourceIP, raw)
				if err != nil {
					t.Fatal(err)
				}
				if typ == "postgres" { // SQLite's trigger fills the group index
					for _, g := range e.Groups {
						if err := store.Exec(ctx, old, "INSERT INTO event_groups (grp, ts, event_id) VALUES (?, ?, ?)", g, e.Time.UnixNano(), i+1); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			old.Close()

			db := mustOpen(t, typ, dsn)
			if n, err := db.Count(ctx); err != nil || n != 300 {
				t.Fatalf("after the upgrade: %d events, %v; want 300", n, err)
			}
			// New events beside the old ones; a retry of old ones is a duplicate.
			newer := genEvents(t, 9, 200)
			for i := range newer {
				newer[i].Time = newer[i].Time.Add(300e9) // after the old ones
			}
			res, err := db.Insert(ctx, append(append([]event.Event{}, events[:10]...), newer...))
			if err != nil || res.Inserted != 200 || res.Duplicates != 10 {
				t.Fatalf("insert after the upgrade: %+v, %v", res, err)
			}
			all := append(append([]event.Event{}, events...), newer...)
			ids, err := db.AuditIDs(ctx)
			if err != nil || len(ids) != 500 {
				t.Fatalf("AuditIDs: %d, %v", len(ids), err)
			}
			for _, e := range all {
				if ids[e.AuditID+"/"+e.Stage] != 1 {
					t.Errorf("%s stored %d times", e.AuditID, ids[e.AuditID+"/"+e.Stage])
				}
			}
			for _, f := range []query.Filter{
				{User: events[3].User}, {Group: events[3].Groups[0]}, {Verb: events[3].Verb}, {Resource: events[3].Resource},
				{Namespace: events[3].Namespace}, {Name: events[3].Name}, {Code: events[3].Code}, {Source: "cp-1"},
			} {
				want := 0
				for _, e := range all {
					if matches(f, e) {
						want++
					}
				}
				f.Limit = 1000
				f.IncludeRaw = true
				got, _, err := db.Query(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != want || want == 0 {
					t.Errorf("filter %+v: %d events, want %d", f, len(got), want)
				}
				byID := map[string]event.Event{}
				for _, e := range all {
					byID[e.AuditID] = e
				}
				for _, g := range got {
					w := byID[g.AuditID]
					if string(g.Raw) != string(w.Raw) || g.User != w.User || g.Name != w.Name || fmt.Sprint(g.Groups) != fmt.Sprint(w.Groups) ||
						g.URI != w.URI || g.SourceIP != w.SourceIP || g.UserAgent != w.UserAgent || g.Level != w.Level || !g.Time.Equal(w.Time) {
						t.Errorf("event %s changed in the upgrade:\n got %+v\nwant %+v", g.AuditID, g, w)
						break
					}
				}
			}
			// Retention reaches the old events too.
			n, err := db.Retain(ctx, store.Retention{MaxEvents: 100}, t0.Add(1e12))
			if err != nil || n != 400 {
				t.Fatalf("retention after the upgrade: deleted %d, %v; want 400", n, err)
			}
		})
	}
}

// matches reports whether e passes f's equality filters.
func matches(f query.Filter, e event.Event) bool {
	hasGroup := f.Group == ""
	for _, g := range e.Groups {
		hasGroup = hasGroup || g == f.Group
	}
	return (f.User == "" || e.User == f.User) && hasGroup && (f.Verb == "" || e.Verb == f.Verb) &&
		(f.Resource == "" || e.Resource == f.Resource) && (f.Namespace == "" || e.Namespace == f.Namespace) &&
		(f.Name == "" || e.Name == f.Name) && (f.Code == 0 || e.Code == f.Code) && (f.Source == "" || e.Source == f.Source)
}

// TestUpgradeFromSchema2: a store of schema 2 (single-stream batches,
// filter indexes without the other filter columns) keeps every event
// through the upgrade; old and new events answer every filter as a
// brute-force scan does, a re-sent old event is a duplicate, and
// retention reaches both.
func TestUpgradeFromSchema2(t *testing.T) {
	for _, b := range storeDSNs {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			typ, dsn := b.dsn(t)
			restore := store.MigrateUpTo(2)
			old, err := store.Open(ctx, typ, dsn)
			if err != nil {
				restore()
				t.Fatal(err)
			}
			events := genEvents(t, 51, 400)
			if _, err := old.Insert(ctx, events); err != nil {
				restore()
				t.Fatal(err)
			}
			var raw []byte // schema 2 kept the batch as one zstd stream
			for _, e := range events {
				raw = append(raw, e.Raw...)
			}
			err = store.Exec(ctx, old, "UPDATE event_batches SET data = ?", store.LegacyBlob(raw))
			old.Close()
			restore()
			if err != nil {
				t.Fatal(err)
			}

			db := mustOpen(t, typ, dsn)
			if n, err := store.Rows(ctx, db, "audit_schema"); err != nil || n != 3 {
				t.Fatalf("audit_schema: %d versions, %v; want 3", n, err)
			}
			if typ == "sqlite3" {
				cols, err := store.IndexColumns(ctx, db, "events_user")
				if err != nil || len(cols) != 8 || cols[0] != "username" || cols[1] != "ts" {
					t.Fatalf("events_user after the upgrade: %v, %v", cols, err)
				}
			}
			newer := genEvents(t, 52, 300)
			for i := range newer {
				newer[i].Time = newer[i].Time.Add(400e9) // after the old ones
			}
			res, err := db.Insert(ctx, append(append([]event.Event{}, events[:10]...), newer...))
			if err != nil || res.Inserted != 300 || res.Duplicates != 10 {
				t.Fatalf("insert after the upgrade: %+v, %v", res, err)
			}
			all := append(append([]event.Event{}, events...), newer...)
			byID := map[string]event.Event{}
			for _, e := range all {
				byID[e.AuditID] = e
			}
			for i, d := range filterDims {
				for _, anchor := range []event.Event{events[i*7], newer[i*5]} {
					var f query.Filter
					d.set(&f, anchor)
					if i > 0 { // and the user, for a combination
						filterDims[0].set(&f, anchor)
					}
					want := 0
					for _, e := range all {
						if matches(f, e) && (f.Since.IsZero() || !e.Time.Before(f.Since)) && (f.Until.IsZero() || e.Time.Before(f.Until)) {
							want++
						}
					}
					f.Limit, f.IncludeRaw = 1000, true
					got, _, err := db.Query(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != want || want == 0 {
						t.Errorf("filter %+v: %d events, want %d", f, len(got), want)
					}
					for _, g := range got {
						if w := byID[g.AuditID]; string(g.Raw) != string(w.Raw) || g.User != w.User || !g.Time.Equal(w.Time) {
							t.Errorf("event %s changed in the upgrade", g.AuditID)
						}
					}
				}
			}
			n, err := db.Retain(ctx, store.Retention{MaxEvents: 100}, t0.Add(1e12))
			if err != nil || n != 600 {
				t.Fatalf("retention after the upgrade: deleted %d, %v; want 600", n, err)
			}
		})
	}
}
