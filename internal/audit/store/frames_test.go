package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// readAllRaw reads every event of f with its JSON, by auditID, through
// pages of limit.
func readAllRaw(t *testing.T, db *store.DB, f query.Filter, limit int) map[string][]byte {
	t.Helper()
	f.IncludeRaw, f.Limit = true, limit
	got := map[string][]byte{}
	for {
		evs, next, err := db.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got[e.AuditID] = e.Raw
		}
		if next == nil {
			return got
		}
		f.Before = next
	}
}

// TestFramedBatchesReadOneEvent: a batch is stored as small frames, and
// a selective filter reads its events back byte for byte whichever frame
// they lie in, alone or with others of the same batch.
func TestFramedBatchesReadOneEvent(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		events := genEvents(t, 21, 400) // about 13 frames
		if _, err := db.Insert(ctx, events); err != nil {
			t.Fatal(err)
		}
		if n, err := store.Rows(ctx, db, "event_batches"); err != nil || n != 1 {
			t.Fatalf("event_batches: %d rows, %v; want 1", n, err)
		}
		want := map[string][]byte{}
		for _, e := range events {
			want[e.AuditID] = e.Raw
		}
		// Each event alone (its frame only), then pages of every size.
		for _, e := range []event.Event{events[0], events[37], events[199], events[399]} {
			got := readAllRaw(t, db, query.Filter{AuditID: e.AuditID}, 10)
			if len(got) != 1 || !bytes.Equal(got[e.AuditID], e.Raw) {
				t.Fatalf("event %s alone reads back as %q", e.AuditID, got[e.AuditID])
			}
		}
		for _, limit := range []int{1, 7, 400} {
			got := readAllRaw(t, db, query.Filter{}, limit)
			if len(got) != len(want) {
				t.Fatalf("pages of %d: %d events, want %d", limit, len(got), len(want))
			}
			for id, raw := range want {
				if !bytes.Equal(got[id], raw) {
					t.Fatalf("pages of %d: event %s reads back as %q", limit, id, got[id])
				}
			}
		}
	})
}

// TestLegacyBatchesStillRead: batches stored before the frames had an
// index (one zstd stream for the whole batch) are read as before, beside
// new ones.
func TestLegacyBatchesStillRead(t *testing.T) {
	forEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		old, newer := genEvents(t, 22, 300), genEvents(t, 23, 50)
		if _, err := db.Insert(ctx, old); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		for _, e := range old { // the offsets Insert recorded: the events in order
			raw = append(raw, e.Raw...)
		}
		if err := store.Exec(ctx, db, "UPDATE event_batches SET data = ?", store.LegacyBlob(raw)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Insert(ctx, newer); err != nil {
			t.Fatal(err)
		}
		got := readAllRaw(t, db, query.Filter{}, 64)
		for _, e := range append(old, newer...) {
			if !bytes.Equal(got[e.AuditID], e.Raw) {
				t.Fatalf("event %s reads back as %q", e.AuditID, got[e.AuditID])
			}
		}
		if err := store.Exec(ctx, db, "UPDATE event_batches SET data = ?", []byte{9, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.Query(ctx, query.Filter{IncludeRaw: true}); err == nil {
			t.Fatal("a batch of an unknown format reads without an error")
		}
	})
}
