package issuer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitWaiting polls the waiting gauge until it reads n.
func waitWaiting(t *testing.T, s *Server, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(s.opts.Metrics.tokenWaiting) != n {
		if time.Now().After(deadline) {
			t.Fatalf("token requests waiting = %v, want %v", testutil.ToFloat64(s.opts.Metrics.tokenWaiting), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAdmit checks the token endpoint's gate: no more than its slots at
// once, waiters served in arrival order, and a waiter whose client goes
// away leaves the queue without taking a slot.
func TestAdmit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slots   int
		waiters int
	}{
		{"one slot", 1, 4},
		{"two slots", 2, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{opts: Options{Metrics: NewMetrics(prometheus.NewRegistry())}, tokenSlots: make(chan struct{}, tc.slots)}
			ctx := context.Background()
			var held []func()
			for range tc.slots {
				release, err := s.admit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, release)
			}

			// A waiter that gives up leaves no trace.
			cctx, cancel := context.WithCancel(ctx)
			gaveUp := make(chan error, 1)
			go func() {
				_, err := s.admit(cctx)
				gaveUp <- err
			}()
			waitWaiting(t, s, 1)
			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled waiter: err = %v, want context.Canceled", err)
			}
			waitWaiting(t, s, 0)

			// Waiters queue one after the other...
			order := make(chan int, tc.waiters)
			releases := make(chan func(), tc.waiters)
			for i := range tc.waiters {
				go func() {
					release, err := s.admit(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					order <- i
					releases <- release
				}()
				waitWaiting(t, s, float64(i+1))
				// The gauge rises just before the goroutine blocks on
				// the channel; let it reach the queue before the next.
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case i := <-order:
				t.Fatalf("waiter %d admitted while every slot was held", i)
			case <-time.After(50 * time.Millisecond):
			}
			// ...and are admitted in that order as slots come free.
			for want := range tc.waiters {
				if len(held) > 0 {
					held[0]()
					held = held[1:]
				} else {
					(<-releases)()
				}
				if got := <-order; got != want {
					t.Fatalf("admitted waiter %d, want %d (arrival order)", got, want)
				}
			}
		})
	}
}
