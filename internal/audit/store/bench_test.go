package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/auditgen"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// BenchmarkInsertSQLite stores batches of 400 realistic events (about 1 KB
// each), as kube-apiserver's webhook backend sends them.
func BenchmarkInsertSQLite(b *testing.B) {
	db, err := store.Open(context.Background(), "sqlite3", filepath.Join(b.TempDir(), "audit.db")+os.Getenv("BENCH_PRAGMAS"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := auditgen.New(1, time.Now(), time.Millisecond)
	const pool = 50 // distinct batches, regenerated so every insert is new
	batches := make([][]event.Event, pool)
	for i := range batches {
		batches[i], err = event.DecodeList(event.EncodeList(g.Batch(400)), "cp-1")
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		batch := batches[i%pool]
		if i >= pool {
			for j := range batch { // a new key for each event, same size
				batch[j].AuditID = batch[j].AuditID[:24] + time.Now().Format("150405.000000")[:12]
				batch[j].Stage = "S" + string(rune('a'+i%26)) + string(rune('a'+(i/26)%26)) + string(rune('a'+(i/676)%26))
			}
		}
		res, err := db.Insert(context.Background(), batch)
		if err != nil {
			b.Fatal(err)
		}
		n += res.Inserted
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
