package issuer

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testutil/fakeclock"
)

func newFakeClock() *fakeclock.Clock { return fakeclock.New(fixedTime) }

// step is one login attempt in a limiter scenario: keys, whether it is
// expected to start, its outcome, and how far the clock moves between the
// check and the outcome (a bcrypt check, an LDAP round trip).
type step struct {
	user, ip string
	device   bool
	times    int
	want     bool // allowed to start
	fail     bool
	between  time.Duration
	after    time.Duration // clock moves after the attempt ends
}

func (st step) keys() []string {
	if st.device {
		return []string{deviceKey(st.ip)}
	}
	return []string{userKey("local", st.user), ipKey(st.ip)}
}

// TestLoginLimiterChargesFailuresOnly runs scenarios on a fake clock that
// moves between the check and the outcome, the case where reserving and
// refunding (rate.Reservation.CancelAt) gave nothing back.
func TestLoginLimiterChargesFailuresOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits LoginLimits
		steps  []step
	}{
		{
			name: "100 successes of one user within a minute, then the failure budget is intact",
			steps: []step{
				{user: "robot", ip: "10.0.0.1", times: 100, want: true, between: 300 * time.Millisecond, after: 200 * time.Millisecond},
				{user: "robot", ip: "10.0.0.1", times: 10, want: true, fail: true},
				{user: "robot", ip: "10.0.0.1", want: false},
			},
		},
		{
			name: "300 successes from one IP within a minute (many users)",
			steps: []step{
				{user: "alice", ip: "192.0.2.1", times: 100, want: true, between: 100 * time.Millisecond, after: 50 * time.Millisecond},
				{user: "bob", ip: "192.0.2.1", times: 100, want: true, between: 100 * time.Millisecond, after: 50 * time.Millisecond},
				{user: "carol", ip: "192.0.2.1", times: 100, want: true, between: 100 * time.Millisecond, after: 50 * time.Millisecond},
			},
		},
		{
			name: "11 wrong passwords for one user: the 11th is refused, from any address, in any case",
			steps: []step{
				{user: "alice", ip: "10.0.0.1", times: 5, want: true, fail: true, between: time.Millisecond},
				{user: "Alice", ip: "10.0.0.2", times: 5, want: true, fail: true, between: time.Millisecond},
				{user: "ALICE", ip: "10.0.0.3", want: false},
				{user: "alice", ip: "10.0.0.3", want: false}, // the right password too: checked before the outcome
				{user: "bob", ip: "10.0.0.1", want: true},    // others are not affected
			},
		},
		{
			name: "wrong passwords spread over many users from one IP: limited per IP",
			steps: []step{
				{user: "u1", ip: "198.51.100.7", times: 9, want: true, fail: true},
				{user: "u2", ip: "198.51.100.7", times: 9, want: true, fail: true},
				{user: "u3", ip: "198.51.100.7", times: 9, want: true, fail: true},
				{user: "u4", ip: "198.51.100.7", times: 3, want: true, fail: true},
				{user: "u5", ip: "198.51.100.7", want: false},
				{user: "u5", ip: "198.51.100.8", want: true}, // another address
			},
		},
		{
			name: "a bucket refills at failures/window",
			steps: []step{
				{user: "alice", ip: "10.0.0.1", times: 10, want: true, fail: true},
				{user: "alice", ip: "10.0.0.1", want: false, after: 7 * time.Second},
				{user: "alice", ip: "10.0.0.1", want: true, fail: true},
				{user: "alice", ip: "10.0.0.1", want: false, after: time.Minute},
				{user: "alice", ip: "10.0.0.1", times: 10, want: true, fail: true},
				{user: "alice", ip: "10.0.0.1", want: false},
			},
		},
		{
			name:   "configured lockout: 3 failures per hour",
			limits: LoginLimits{PerUser: FailureLimit{Failures: 3, Window: time.Hour}},
			steps: []step{
				{user: "alice", ip: "10.0.0.1", times: 3, want: true, fail: true},
				{user: "alice", ip: "10.0.0.1", want: false, after: 19 * time.Minute},
				{user: "alice", ip: "10.0.0.1", want: false, after: time.Minute},
				{user: "alice", ip: "10.0.0.1", want: true},
			},
		},
		{
			name:   "configured per-IP limit",
			limits: LoginLimits{PerIP: FailureLimit{Failures: 2, Window: time.Minute}},
			steps: []step{
				{user: "a", ip: "10.0.0.1", want: true, fail: true},
				{user: "b", ip: "10.0.0.1", want: true, fail: true},
				{user: "c", ip: "10.0.0.1", want: false},
			},
		},
		{
			name: "wrong device codes have their own per-IP bucket",
			steps: []step{
				{device: true, ip: "10.0.0.1", times: 30, want: true, fail: true},
				{device: true, ip: "10.0.0.1", want: false},
				{user: "alice", ip: "10.0.0.1", want: true},
				{device: true, ip: "10.0.0.2", want: true},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			start := clk.Now()
			l := newLoginLimiter(tc.limits, clk.Now)
			for i, st := range tc.steps {
				for n := 0; n < max(st.times, 1); n++ {
					a, wait, err := l.begin(context.Background(), st.keys()...)
					if err != nil {
						t.Fatal(err)
					}
					if got := a != nil; got != st.want {
						t.Fatalf("step %d (%+v), attempt %d: allowed=%v, want %v", i, st, n, got, st.want)
					}
					if a == nil {
						if wait <= 0 {
							t.Fatalf("step %d: refused without a time to wait", i)
						}
					} else {
						clk.Advance(st.between)
						a.end(st.fail)
						a.end(true) // a second end changes nothing
					}
					clk.Advance(st.after)
				}
			}
			if d := clk.Now().Sub(start); tc.limits == (LoginLimits{}) && d > time.Hour {
				t.Fatalf("scenario took %s of fake time", d)
			}
		})
	}
}

// TestLoginLimiterRetryAfter: a refusal says when the bucket has a token
// again.
func TestLoginLimiterRetryAfter(t *testing.T) {
	clk := newFakeClock()
	l := newLoginLimiter(LoginLimits{}, clk.Now)
	for i := 0; i < 10; i++ {
		a, _, _ := l.begin(context.Background(), userKey("local", "alice"), ipKey("10.0.0.1"))
		a.end(true)
	}
	_, wait, _ := l.begin(context.Background(), userKey("local", "alice"), ipKey("10.0.0.1"))
	if wait.Round(time.Millisecond) != 6*time.Second {
		t.Fatalf("wait %s, want 6s (10 per minute)", wait)
	}
	clk.Advance(wait)
	if a, _, _ := l.begin(context.Background(), userKey("local", "alice"), ipKey("10.0.0.1")); a == nil {
		t.Fatal("refused after the announced wait")
	}
}

// TestLoginLimiterParallelGuesses: many wrong guesses racing the check
// get exactly the bucket's tokens, however they interleave; the others
// wait for the ones in flight and are then refused.
func TestLoginLimiterParallelGuesses(t *testing.T) {
	clk := newFakeClock()
	l := newLoginLimiter(LoginLimits{}, clk.Now)
	const guesses = 200
	var mu sync.Mutex
	started := 0
	var wg sync.WaitGroup
	for i := 0; i < guesses; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _, err := l.begin(context.Background(), userKey("local", "alice"), ipKey("10.0.0.1"))
			if err != nil || a == nil {
				return
			}
			mu.Lock()
			started++
			mu.Unlock()
			a.end(true)
		}()
	}
	wg.Wait()
	if started != 10 {
		t.Fatalf("%d of %d parallel wrong guesses were checked, want exactly the bucket's 10", started, guesses)
	}
}

// TestLoginLimiterWaitsForAttemptsInFlight: when the last tokens are
// claimed by attempts in flight, a new attempt waits: it goes on if they
// succeed and is refused if they fail.
func TestLoginLimiterWaitsForAttemptsInFlight(t *testing.T) {
	for _, fail := range []bool{false, true} {
		clk := newFakeClock()
		l := newLoginLimiter(LoginLimits{PerUser: FailureLimit{Failures: 2, Window: time.Minute}}, clk.Now)
		keys := []string{userKey("local", "alice"), ipKey("10.0.0.1")}
		a1, _, _ := l.begin(context.Background(), keys...)
		a2, _, _ := l.begin(context.Background(), keys...)
		if a1 == nil || a2 == nil {
			t.Fatal("the bucket's two tokens were not available")
		}
		if wait, busy := l.tryBegin(keys); wait != 0 || busy == nil {
			t.Fatalf("a third attempt while two hold the last tokens: wait %s, busy %v; want to wait for them", wait, busy != nil)
		}
		type result struct {
			a    *attempt
			wait time.Duration
		}
		got := make(chan result, 1)
		go func() {
			a, wait, _ := l.begin(context.Background(), keys...)
			got <- result{a, wait}
		}()
		clk.Advance(2 * time.Second)
		a1.end(fail)
		a2.end(fail)
		r := <-got
		if fail && (r.a != nil || r.wait <= 0) {
			t.Errorf("after two failures: allowed=%v, want refused", r.a != nil)
		}
		if !fail && r.a == nil {
			t.Errorf("after two successes: refused (wait %s), want allowed", r.wait)
		}
	}
	// A waiter whose client goes away stops waiting.
	clk := newFakeClock()
	l := newLoginLimiter(LoginLimits{PerUser: FailureLimit{Failures: 1, Window: time.Minute}}, clk.Now)
	a, _, _ := l.begin(context.Background(), userKey("local", "bob"))
	defer a.end(false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.begin(ctx, userKey("local", "bob")); err == nil {
		t.Fatal("a cancelled waiter did not stop waiting")
	}
}

// TestLoginLimiterForgetsFullBuckets: idle full buckets are dropped, and
// a bucket that is not full is kept until it is.
func TestLoginLimiterForgetsFullBuckets(t *testing.T) {
	clk := newFakeClock()
	l := newLoginLimiter(LoginLimits{PerUser: FailureLimit{Failures: 2, Window: time.Hour}}, clk.Now)
	a, _, _ := l.begin(context.Background(), userKey("local", "alice"), ipKey("10.0.0.1"))
	a.end(true)
	b, _, _ := l.begin(context.Background(), userKey("local", "bob"), ipKey("10.0.0.2"))
	b.end(false)
	clk.Advance(2 * time.Minute)
	c, _, _ := l.begin(context.Background(), ipKey("10.0.0.9")) // collects
	c.end(false)
	l.mu.Lock()
	_, alice := l.buckets[userKey("local", "alice")]
	_, bob := l.buckets[userKey("local", "bob")]
	n := len(l.buckets)
	l.mu.Unlock()
	if !alice || bob {
		t.Fatalf("alice's bucket (one failure, 1h window) kept=%v, bob's (full) kept=%v; want true, false", alice, bob)
	}
	if n != 2 { // alice and the new 10.0.0.9
		t.Fatalf("%d buckets left, want 2", n)
	}
}

// BenchmarkLoginLimiter is the limiter's cost per login (check and
// outcome), next to the bcrypt check it guards (tens of milliseconds).
func BenchmarkLoginLimiter(b *testing.B) {
	l := newLoginLimiter(LoginLimits{}, time.Now)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			a, _, _ := l.begin(context.Background(), userKey("local", "user"+strconv.Itoa(i%1000)), ipKey("10.0.0."+strconv.Itoa(i%250)))
			if a != nil {
				a.end(false)
			}
		}
	})
}
