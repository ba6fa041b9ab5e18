package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// backends opens each engine for t; PostgreSQL is skipped without a server.
var backends = []struct {
	name string
	open func(t *testing.T) *store.DB
}{
	{"sqlite", func(t *testing.T) *store.DB {
		return mustOpen(t, "sqlite3", filepath.Join(t.TempDir(), "audit.db"))
	}},
	{"postgres", func(t *testing.T) *store.DB {
		return mustOpen(t, "postgres", pgtest.DSN(t))
	}},
}

func mustOpen(t *testing.T, typ, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), typ, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func decode(t testing.TB, items [][]byte, source string) []event.Event {
	t.Helper()
	var out []event.Event
	for _, it := range items {
		e, err := event.Decode(it, source)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func genEvents(t testing.TB, seed uint64, n int) []event.Event {
	g := auditgen.New(seed, t0, time.Second)
	var items [][]byte
	for range n {
		items = append(items, g.JSON())
	}
	return decode(t, items, "cp-1")
}

func forEach(t *testing.T, f func(t *testing.T, db *store.DB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func TestInsertDeduplicates(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 1, 700) // more than one statement's chunk
		res, err := db.Insert(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 700 || res.Duplicates != 0 {
			t.Fatalf("first insert: %+v, want 700 inserted", res)
		}
		// A retried batch overlapping the first, plus a key repeated
		// inside the batch.
		retry := append(append([]event.Event{}, events[600:]...), genEvents(t, 2, 50)...)
		retry = append(retry, retry[len(retry)-1])
		res, err = db.Insert(ctx, retry)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 50 || res.Duplicates != 101 {
			t.Fatalf("retry: %+v, want 50 inserted, 101 duplicates", res)
		}
		ids, err := db.AuditIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 750 {
			t.Fatalf("stored %d distinct keys, want 750", len(ids))
		}
		for k, n := range ids {
			if n != 1 {
				t.Errorf("%s stored %d times", k, n)
			}
		}
		// The same auditID at another stage is a different event.
		other := events[0]
		other.Stage = "ResponseStarted"
		if res, err := db.Insert(ctx, []event.Event{other}); err != nil || res.Inserted != 1 {
			t.Fatalf("other stage: %+v, %v", res, err)
		}
	})
}

func TestQueryFilters(t *testing.T) {
	// Small name index buckets, so that a name filter crosses many.
	defer store.SetBucketEvents(64)()
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 3, 1000)
		for start := 0; start < len(events); start += 100 {
			if _, err := db.Insert(ctx, events[start:start+100]); err != nil {
				t.Fatal(err)
			}
		}
		match := func(f query.Filter, e event.Event) bool {
			has := func(gs []string, g string) bool {
				for _, x := range gs {
					if x == g {
						return true
					}
				}
				return false
			}
			return (f.User == "" || e.User == f.User) && (f.Group == "" || has(e.Groups, f.Group)) &&
				(f.Verb == "" || e.Verb == f.Verb) && (f.Resource == "" || e.Resource == f.Resource) &&
				(f.Namespace == "" || e.Namespace == f.Namespace) && (f.Name == "" || e.Name == f.Name) &&
				(f.Code == 0 || e.Code == f.Code) && (f.Source == "" || e.Source == f.Source) && (f.Since.IsZero() || !e.Time.Before(f.Since)) &&
				(f.Until.IsZero() || e.Time.Before(f.Until))
		}
		tests := []struct {
			name string
			f    query.Filter
		}{
			{"all", query.Filter{}},
			{"user", query.Filter{User: "oidc:alice"}},
			{"group", query.Filter{Group: "oidc:exampleorg:dev"}},
			{"group and verb", query.Filter{Group: "system:nodes", Verb: "get"}},
			{"verb", query.Filter{Verb: "delete"}},
			{"resource and namespace", query.Filter{Resource: "secrets", Namespace: "payments"}},
			{"name", query.Filter{Name: events[10].Name}},
			{"name, namespace and resource", query.Filter{Name: events[10].Name, Namespace: events[10].Namespace, Resource: events[10].Resource}},
			{"name since", query.Filter{Name: events[900].Name, Since: t0.Add(500 * time.Second)}},
			{"name until", query.Filter{Name: events[100].Name, Until: t0.Add(500 * time.Second)}},
			{"name and user", query.Filter{Name: events[20].Name, User: events[20].User}},
			{"unknown name", query.Filter{Name: "no-such-object"}},
			{"source", query.Filter{Source: "cp-1", Verb: "delete"}},
			{"code", query.Filter{Code: 403}},
			{"since until", query.Filter{Since: t0.Add(100 * time.Second), Until: t0.Add(400 * time.Second)}},
			{"user since", query.Filter{User: "oidc:bob", Since: t0.Add(500 * time.Second)}},
			{"nothing", query.Filter{User: "nobody"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var want []string
				for i := len(events) - 1; i >= 0; i-- { // events are one second apart: newest last
					if match(tt.f, events[i]) {
						want = append(want, events[i].AuditID)
					}
				}
				// Read it all through small pages.
				f := tt.f
				f.Limit = 37
				var got []string
				for page := 0; ; page++ {
					evs, next, err := db.Query(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range evs {
						if !match(tt.f, e) {
							t.Errorf("event %s does not match the filter", e.AuditID)
						}
						got = append(got, e.AuditID)
					}
					if next == nil {
						break
					}
					f.Before = next
					if page > 100 {
						t.Fatal("pagination does not end")
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("got %d events, want %d (first got %.80v, want %.80v)", len(got), len(want), got, want)
				}
				if tl, err := db.Timeline(ctx, tt.f, "user", 10, 100000, 100); err != nil || tl.Total != len(want) {
					t.Errorf("timeline: %d events, %v; want %d", tl.Total, err, len(want))
				}
				if tt.name != "nothing" && tt.name != "unknown name" && len(want) == 0 {
					t.Error("the test data has no match: the case tests nothing")
				}
			})
		}
	})
}

func TestGetKeepsRawEvent(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 4, 3)
		if _, err := db.Insert(ctx, events); err != nil {
			t.Fatal(err)
		}
		page, _, err := db.Query(ctx, query.Filter{AuditID: events[1].AuditID})
		if err != nil || len(page) != 1 {
			t.Fatalf("query by auditID: %v, %v", page, err)
		}
		e, err := db.Get(ctx, page[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Raw) != string(events[1].Raw) {
			t.Errorf("raw event changed in the store")
		}
		if _, err := db.Get(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestRetention(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 5, 100)             // t0 .. t0+99s
		for start := 0; start < 100; start += 10 { // ten batches
			if _, err := db.Insert(ctx, events[start:start+10]); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(100 * time.Second)
		n, err := db.Retain(ctx, store.Retention{MaxAge: 60 * time.Second}, now)
		if err != nil {
			t.Fatal(err)
		}
		if n != 40 {
			t.Errorf("age retention deleted %d, want 40", n)
		}
		n, err = db.Retain(ctx, store.Retention{MaxEvents: 25}, now)
		if err != nil {
			t.Fatal(err)
		}
		if n != 35 {
			t.Errorf("count retention deleted %d, want 35", n)
		}
		left, _, err := db.Query(ctx, query.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 25 || !left[24].Time.Equal(t0.Add(75*time.Second)) {
			t.Errorf("kept %d events, oldest %v; want the newest 25", len(left), left[len(left)-1].Time)
		}
		// The group index was trimmed too: a group query sees only kept events.
		byGroup, _, err := db.Query(ctx, query.Filter{Group: "system:authenticated", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range byGroup {
			if e.Time.Before(t0.Add(75 * time.Second)) {
				t.Errorf("group query returned deleted event at %v", e.Time)
			}
		}
		if n, err := db.Retain(ctx, store.Retention{}, now); err != nil || n != 0 {
			t.Errorf("no retention: deleted %d, %v", n, err)
		}
		// The batches of the deleted events are gone; those of the kept
		// events (t0+75s .. t0+99s: the batches from t0+70s on) are not.
		if n, err := store.Rows(ctx, db, "event_batches"); err != nil || n != 3 {
			t.Errorf("%d batches left, %v; want 3", n, err)
		}
		for _, e := range left {
			got, err := db.Get(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := events[got.Time.Sub(t0)/time.Second]; string(got.Raw) != string(want.Raw) {
				t.Errorf("event at %v: raw JSON changed", got.Time)
			}
		}
	})
}

func TestTimeline(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 6, 600) // ten minutes
		if _, err := db.Insert(ctx, events); err != nil {
			t.Fatal(err)
		}
		tl, err := db.Timeline(ctx, query.Filter{}, "verb", 10, 100000, 4)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, s := range tl.Series {
			for _, c := range s.Counts {
				sum += c
			}
		}
		if sum != 600 || tl.Total != 600 || len(tl.Series) != 4 || tl.Series[3].Name != "other" || tl.Sampled {
			t.Errorf("timeline: sum %d total %d series %d sampled %v", sum, tl.Total, len(tl.Series), tl.Sampled)
		}
		tl, err = db.Timeline(ctx, query.Filter{}, "user", 10, 100, 4)
		if err != nil || !tl.Sampled || tl.Total != 100 {
			t.Errorf("capped timeline: total %d sampled %v err %v", tl.Total, tl.Sampled, err)
		}
		if _, err := db.Timeline(ctx, query.Filter{}, "raw", 10, 100, 4); !errors.Is(err, store.ErrBadTimeline) {
			t.Errorf("bad by: %v", err)
		}
	})
}

func TestOpenRejectsUnknownType(t *testing.T) {
	if _, err := store.Open(context.Background(), "mysql", "x"); err == nil {
		t.Fatal("want an error for mysql")
	}
}

func TestReopenKeepsData(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.db")
	db := mustOpen(t, "sqlite3", file)
	if _, err := db.Insert(context.Background(), genEvents(t, 7, 10)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, "sqlite3", file) // migrations are not applied twice
	if n, err := db.Count(context.Background()); err != nil || n != 10 {
		t.Fatalf("after reopen: %d events, %v", n, err)
	}
}
