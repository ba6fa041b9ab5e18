package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// filterDims are the documented filters (`gatehouse audit query` flags),
// each set from an anchor event.
var filterDims = []struct {
	name string
	set  func(f *query.Filter, e event.Event)
}{
	{"user", func(f *query.Filter, e event.Event) { f.User = e.User }},
	{"group", func(f *query.Filter, e event.Event) { f.Group = e.Groups[len(e.Groups)-1] }},
	{"verb", func(f *query.Filter, e event.Event) { f.Verb = e.Verb }},
	{"resource", func(f *query.Filter, e event.Event) { f.Resource = e.Resource }},
	{"namespace", func(f *query.Filter, e event.Event) { f.Namespace = e.Namespace }},
	{"name", func(f *query.Filter, e event.Event) { f.Name = e.Name }},
	{"source", func(f *query.Filter, e event.Event) { f.Source = e.Source }},
	{"code", func(f *query.Filter, e event.Event) { f.Code = e.Code }},
	{"since", func(f *query.Filter, e event.Event) { f.Since = e.Time.Add(-200 * time.Second) }},
	{"until", func(f *query.Filter, e event.Event) { f.Until = e.Time.Add(time.Second) }},
}

// TestEveryFilterCombination runs every combination of the filters (each
// from an event that matches it, so that no combination is trivially
// empty) against a brute-force scan of the same events, newest first,
// read whole and in pages, with the planner's probes capped low (so that
// they hit the cap and break ties) and at their default.
func TestEveryFilterCombination(t *testing.T) {
	defer store.SetBucketEvents(128)()
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 41, 1500)
		r := rand.New(rand.NewPCG(41, 1))
		for i := range events {
			events[i].Source = fmt.Sprintf("cp-%d", r.IntN(3))
			if i > 0 && r.IntN(10) == 0 { // ties on the request time
				events[i].Time = events[i-1].Time
			}
			if r.IntN(50) == 0 {
				events[i].Code = 500
			}
		}
		for start := 0; start < len(events); start += 250 {
			if _, err := db.Insert(ctx, events[start:start+250]); err != nil {
				t.Fatal(err)
			}
		}
		// Newest first: by time, then by store id (the insertion order).
		order := make([]int, len(events))
		for i := range order {
			order[i] = len(events) - 1 - i
		}
		slices.SortStableFunc(order, func(a, b int) int { return events[b].Time.Compare(events[a].Time) })
		want := func(f query.Filter) []string {
			var out []string
			for _, i := range order {
				e := events[i]
				if matches(f, e) && (f.Since.IsZero() || !e.Time.Before(f.Since)) && (f.Until.IsZero() || e.Time.Before(f.Until)) {
					out = append(out, e.AuditID)
				}
			}
			return out
		}
		read := func(f query.Filter, limit int) ([]string, error) {
			f.Limit = limit
			var out []string
			for range 2000 {
				evs, next, err := db.Query(ctx, f)
				if err != nil {
					return nil, err
				}
				for _, e := range evs {
					out = append(out, e.AuditID)
				}
				if next == nil {
					return out, nil
				}
				f.Before = next
			}
			return nil, fmt.Errorf("pagination does not end")
		}
		for _, cap := range []int{3, 0} {
			restore := func() {}
			if cap > 0 {
				restore = store.SetProbeCap(cap)
			}
			for mask := 1; mask < 1<<len(filterDims); mask++ {
				anchor := events[r.IntN(len(events))]
				var f query.Filter
				var name string
				for i, d := range filterDims {
					if mask&(1<<i) != 0 {
						d.set(&f, anchor)
						name += d.name + ","
					}
				}
				exp := want(f)
				if len(exp) == 0 {
					t.Fatalf("%s: the anchor does not match its own filter", name)
				}
				limit := 1000
				if mask%7 == 0 { // small pages for some, crossing ties and batches
					limit = 3
				}
				got, err := read(f, limit)
				if err != nil {
					t.Fatalf("cap %d, %s: %v", cap, name, err)
				}
				if !slices.Equal(got, exp) {
					t.Fatalf("cap %d, %s (%+v): got %d events, want %d\ngot  %.200v\nwant %.200v", cap, name, f, len(got), len(exp), got, exp)
				}
			}
			restore()
		}
	})
}
