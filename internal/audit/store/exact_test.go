package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// stall holds the store's write lock from another connection until the
// returned function is called: a stalled store, as a stuck disk or a
// long transaction elsewhere makes one.
func stall(t *testing.T, driver, dsn, lock string) func() {
	t.Helper()
	c, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"BEGIN", lock} {
		if q == "" {
			continue
		}
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		c.Close()
	}
}

// TestInsertAnswerIsExactWhenStalled: with the store stalled, a batch
// whose caller gives up is either not stored and reported as an error, or
// reported stored: never reported as an error and stored afterwards. A
// resend shows it: a failed batch is stored by the resend, a stored one
// comes back as duplicates.
func TestInsertAnswerIsExactWhenStalled(t *testing.T) {
	type backend struct {
		name string
		open func(t *testing.T) (db *store.DB, driver, dsn, lock string)
	}
	backends := []backend{
		{"sqlite", func(t *testing.T) (*store.DB, string, string, string) {
			f := filepath.Join(t.TempDir(), "audit.db")
			// The other connection takes SQLite's write lock; the writer's
			// BEGIN IMMEDIATE waits for it (busy_timeout).
			return mustOpen(t, "sqlite3", f), "sqlite", "file:" + f + "?_pragma=busy_timeout(10000)", "INSERT INTO audit_schema (version) VALUES (-1)"
		}},
		{"postgres", func(t *testing.T) (*store.DB, string, string, string) {
			dsn := pgtest.DSN(t)
			return mustOpen(t, "postgres", dsn), "pgx", dsn, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, driver, dsn, lock := b.open(t)
			g := auditgen.New(71, time.Now(), time.Millisecond)
			a, err := event.DecodeList(event.EncodeList(g.Batch(50)), "cp-1")
			if err != nil {
				t.Fatal(err)
			}
			c, err := event.DecodeList(event.EncodeList(g.Batch(50)), "cp-1")
			if err != nil {
				t.Fatal(err)
			}
			// The statements are prepared before the stall, so that it is the
			// commit that waits.
			if _, err := db.Insert(context.Background(), decode(t, [][]byte{g.JSON()}, "cp-1")); err != nil {
				t.Fatal(err)
			}
			release := stall(t, driver, dsn, lock)
			type answer struct {
				res store.Result
				err error
			}
			insert := func(events []event.Event, timeout time.Duration) (<-chan answer, context.Context) {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				ch := make(chan answer, 1)
				go func() {
					defer cancel()
					res, err := db.Insert(ctx, events)
					ch <- answer{res, err}
				}()
				return ch, ctx
			}
			// a reaches the stalled commit; c queues behind it. Both give up
			// while the store is stalled.
			aCh, aCtx := insert(a, 100*time.Millisecond)
			time.Sleep(20 * time.Millisecond)
			cCh, cCtx := insert(c, 100*time.Millisecond)
			<-aCtx.Done()
			<-cCtx.Done()
			time.Sleep(200 * time.Millisecond) // the old writer answered here and committed later
			release()
			answers := []answer{<-aCh, <-cCh}
			for i, events := range [][]event.Event{a, c} {
				stored := 0
				for _, e := range events {
					evs, _, err := db.Query(context.Background(), query.Filter{AuditID: e.AuditID})
					if err != nil {
						t.Fatal(err)
					}
					stored += len(evs)
				}
				ans := answers[i]
				t.Logf("batch %d: answer %+v %v, %d of %d stored", i, ans.res, ans.err, stored, len(events))
				switch {
				case ans.err == nil && (stored != len(events) || ans.res.Inserted != len(events)):
					t.Errorf("batch %d reported stored (%+v) but %d of %d events are", i, ans.res, stored, len(events))
				case ans.err != nil && stored != 0:
					t.Errorf("batch %d reported failed (%v) but %d of its events were stored", i, ans.err, stored)
				}
				res, err := db.Insert(context.Background(), events)
				if err != nil {
					t.Fatal(err)
				}
				if ans.err == nil && res.Duplicates != len(events) || ans.err != nil && res.Inserted != len(events) {
					t.Errorf("batch %d resent after answer %v: %+v", i, ans.err, res)
				}
			}
		})
	}
}

// TestBatchCompressesInFrames: a batch larger than one frame is
// compressed frame by frame as events are added, and every event reads
// back byte for byte.
func TestBatchCompressesInFrames(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			g := auditgen.New(72, t0, time.Millisecond)
			items := g.Batch(3000) // about 3 MB: three frames
			batch := store.NewBatch()
			size := 0
			for _, it := range items {
				e, err := event.Decode(it, "cp-1")
				if err != nil {
					t.Fatal(err)
				}
				size += len(it)
				if err := batch.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			if batch.Len() != len(items) || batch.RawBytes() != size {
				t.Fatalf("batch of %d events, %d bytes; want %d, %d", batch.Len(), batch.RawBytes(), len(items), size)
			}
			back, err := batch.Events() // what a fake of the store sees
			if err != nil || len(back) != len(items) {
				t.Fatalf("Events: %d, %v", len(back), err)
			}
			for i, e := range back {
				if !bytes.Equal(e.Raw, items[i]) || e.Source != "cp-1" {
					t.Fatalf("event %d back from the batch: source %q, raw %q", i, e.Source, e.Raw)
				}
			}
			res, err := db.InsertBatch(context.Background(), batch)
			if err != nil || res.Inserted != len(items) {
				t.Fatalf("insert: %+v %v", res, err)
			}
			want := map[string][]byte{}
			for _, it := range items {
				e, _ := event.Decode(it, "")
				want[e.AuditID] = it
			}
			seen := 0
			var cur *query.Cursor
			for {
				evs, next, err := db.Query(context.Background(), query.Filter{Limit: 1000, Before: cur, IncludeRaw: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range evs {
					if !bytes.Equal(e.Raw, want[e.AuditID]) {
						t.Fatalf("event %s reads back as %q", e.AuditID, e.Raw)
					}
					seen++
				}
				if next == nil {
					break
				}
				cur = next
			}
			if seen != len(items) {
				t.Fatalf("read %d events back, want %d", seen, len(items))
			}
		})
	}
}
