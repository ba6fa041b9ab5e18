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
