package conformance

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// BenchmarkRotation measures the storage side of the refresh grant, its
// hot path: GetRefreshFamily, then UpdateRefreshFamily with a rotating
// updater, each parallel worker on a family of its own (a client with its
// own chain, as in bench/). It reports rotations/s and the 50th and 99th
// percentile latency of one rotation (read and update).
func BenchmarkRotation(b *testing.B, s storage.Storage) {
	ctx := b.Context()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), next.Add(1))
		now := time.Now()
		f := family(id, "github", "bench-user", "kubernetes", now)
		f.CurrentHash = make([]byte, 32)
		f.RotationKey = make([]byte, 32)
		_, _ = rand.Read(f.RotationKey)
		if err := s.CreateRefreshFamily(ctx, f); err != nil {
			b.Error(err)
			return
		}
		current := f.CurrentHash
		mine := make([]time.Duration, 0, 1024)
		defer func() {
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			t0 := time.Now()
			got, err := s.GetRefreshFamily(ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			if got.Revoked || string(got.CurrentHash) != string(current) {
				b.Errorf("family %s: not the current token", id)
				return
			}
			err = s.UpdateRefreshFamily(ctx, id, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
				if string(f.CurrentHash) != string(current) {
					return f, fmt.Errorf("family %s rotated under us", id)
				}
				sum := sha256.Sum256(append(f.RotationKey, f.CurrentHash...))
				f.PreviousHash, f.CurrentHash = f.CurrentHash, sum[:]
				now := time.Now()
				f.RotatedAt, f.LastUsed = now, now
				f.Generation++
				return f, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
			sum := sha256.Sum256(append(got.RotationKey, current...))
			current = sum[:]
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rotations/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
