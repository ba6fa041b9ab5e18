package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// BenchmarkInsertSQLite stores batches of 400 realistic events (about 1 KB
// each), as kube-apiserver's webhook backend sends them, one batch at a
// time (no group commit). BENCH_PRAGMAS adds SQLite pragmas, e.g.
// "?_pragma=synchronous(NORMAL)".
func BenchmarkInsertSQLite(b *testing.B) {
	db, err := store.Open(context.Background(), "sqlite3", filepath.Join(b.TempDir(), "audit.db")+os.Getenv("BENCH_PRAGMAS"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := auditgen.New(1, time.Now(), time.Millisecond)
	const pool = 50
	batches := make([][]event.Event, pool)
	for i := range batches {
		if batches[i], err = event.DecodeList(event.EncodeList(g.Batch(400)), "cp-1"); err != nil {
			b.Fatal(err)
		}
	}
	t0 := time.Now()
	n, seq := 0, 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		batch := batches[i%pool]
		for j := range batch { // a new event each time, later than the last
			seq++
			batch[j].AuditID = fmt.Sprintf("bench-%030d", seq)
			batch[j].Time = t0.Add(time.Duration(seq) * time.Microsecond)
		}
		res, err := db.Insert(context.Background(), batch)
		if err != nil {
			b.Fatal(err)
		}
		n += res.Inserted
	}
	if n != seq {
		b.Fatalf("stored %d of %d events", n, seq)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSelectiveQuery reads selective filters from a SQLite store of
// 200,000 auditgen events in batches of 400: a table page (50 events, no
// JSON) of two filters whose intersection is small, and 1,000 events
// with their JSON (what `-o jsonl` reads) of a filter that matches one
// event in twenty, so that each batch gives a few events.
func BenchmarkSelectiveQuery(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite3", filepath.Join(b.TempDir(), "audit.db")+"?_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := auditgen.New(5, time.Now().Add(-time.Hour), 10*time.Millisecond)
	var sample event.Event
	for range 500 {
		evs, err := event.DecodeList(event.EncodeList(g.Batch(400)), "cp-1")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Insert(ctx, evs); err != nil {
			b.Fatal(err)
		}
		sample = evs[0]
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    query.Filter
	}{
		{"table/user+namespace+verb", query.Filter{User: sample.User, Namespace: sample.Namespace, Verb: "delete", Limit: 50}},
		{"table/code403+resource", query.Filter{Code: 403, Resource: sample.Resource, Limit: 50}},
		{"jsonl/code403", query.Filter{Code: 403, Limit: 1000, IncludeRaw: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				evs, _, err := db.Query(ctx, bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(evs) == 0 {
					b.Fatal("no events match")
				}
				rows += len(evs)
			}
			b.ReportMetric(float64(rows)/float64(b.N), "events/op")
		})
	}
}
