package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// TestDrivingIndexIsTheSmallest: on SQLite the query of a filter on
// several indexed columns is driven by the index that holds the fewest
// of its events, whichever order the filter names them in; a group whose
// events lie under several group sets drives only when it is small.
func TestDrivingIndexIsTheSmallest(t *testing.T) {
	defer store.SetProbeCap(100)() // so that a group of every set is "big"
	ctx := context.Background()
	db := mustOpen(t, "sqlite3", filepath.Join(t.TempDir(), "audit.db"))
	events := genEvents(t, 61, 1200)
	for i := range events {
		switch {
		case i%100 == 0: // a rare user: 12 events
			events[i].User = "oidc:rare"
		case i%4 == 0: // a common namespace: about 300 events
			events[i].Namespace = "busy"
		}
	}
	if _, err := db.Insert(ctx, events); err != nil {
		t.Fatal(err)
	}
	count := func(match func(e event.Event) bool) int {
		n := 0
		for _, e := range events {
			if match(e) {
				n++
			}
		}
		return n
	}
	n403 := count(func(e event.Event) bool { return e.Code == 403 })
	if n403 <= 12 || n403 >= 100 || count(func(e event.Event) bool { return e.Namespace == "busy" }) <= 100 {
		t.Fatalf("test data: %d events of 403", n403)
	}
	for _, tt := range []struct {
		name string
		f    query.Filter
		want string
	}{
		{"rare user beside 403", query.Filter{Code: 403, User: "oidc:rare"}, "events_user"},
		{"403 beside a busy namespace", query.Filter{Namespace: "busy", Code: 403}, "events_code"},
		{"one indexed filter", query.Filter{Namespace: "busy"}, "events_namespace"},
		{"a group of every set, with a user", query.Filter{Group: "system:authenticated", User: "oidc:rare"}, "events_user"},
		{"a group of every set alone", query.Filter{Group: "system:authenticated"}, "events_key"},
		{"no indexed filter", query.Filter{Verb: "get"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from, err := store.DrivingIndex(ctx, db, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			want := "events e"
			if tt.want != "" {
				want += " INDEXED BY " + tt.want
			}
			if from != want {
				t.Errorf("FROM %q, want %q", from, want)
			}
		})
	}
}
