package issuer

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// LoginLimits bound failed logins: wrong passwords (login page and
// password grant) per user and per client IP, and wrong device user codes
// per client IP. Successful logins are never limited.
type LoginLimits struct {
	// PerUser: failures for one username of one connector (default 10
	// per minute).
	PerUser FailureLimit
	// PerIP: failures from one client address (default 30 per 30
	// seconds); wrong device codes have their own bucket of this size.
	PerIP FailureLimit
}

// FailureLimit is a token bucket of Failures that refills completely in
// Window: up to Failures failures at once, then one every
// Window/Failures. Zero values take the defaults.
type FailureLimit struct {
	Failures int
	Window   time.Duration
}

// Defaults of LoginLimits: oauth2.loginLimits' defaults (10 per minute
// per user, 30 per 30 seconds per address).
var (
	DefaultFailuresPerUser = failureLimit(config.DefaultFailuresPerUser)
	DefaultFailuresPerIP   = failureLimit(config.DefaultFailuresPerIP)
)

func failureLimit(c config.FailureLimit) FailureLimit {
	return FailureLimit{Failures: c.Failures, Window: c.Window.D()}
}

// LoginLimitsFromConfig converts oauth2.loginLimits.
func LoginLimitsFromConfig(c config.LoginLimits) LoginLimits {
	return LoginLimits{PerUser: failureLimit(c.PerUser), PerIP: failureLimit(c.PerIP)}
}

func (f FailureLimit) withDefaults(def FailureLimit) FailureLimit {
	if f.Failures <= 0 {
		f.Failures = def.Failures
	}
	if f.Window <= 0 {
		f.Window = def.Window
	}
	return f
}

// maxQueueWait bounds how long an attempt waits for attempts in flight
// on its buckets (see begin).
const maxQueueWait = 10 * time.Second

// loginLimiter keeps one bucket per key in memory: check, then charge
// failures only. begin checks that every bucket of an attempt has a
// token left for it; the attempt's end charges one token to each bucket
// if it failed and nothing if it succeeded, whatever the time in between
// (a bcrypt check, an LDAP round trip).
//
// Concurrency: an attempt counts as in flight on its buckets from begin
// to end, and begin lets it start only when a bucket's tokens exceed the
// attempts already in flight on it. So parallel guesses racing the check
// cannot overrun a bucket: with k tokens left, k guesses are checked and
// the rest wait (up to maxQueueWait) for those to end, then either go on
// (the k succeeded, so charged nothing) or are refused (they failed and
// emptied the bucket). The number of failures a bucket ever lets through
// is exactly its Failures plus what refills.
//
// Each replica limits on its own, which bounds the total to replicas ×
// limit: a second replica does not need this state to serve correctly.
type loginLimiter struct {
	user, ip bucketSpec
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	lastGC  time.Time
}

type bucketSpec struct {
	every rate.Limit
	burst int
}

func specOf(f FailureLimit) bucketSpec {
	return bucketSpec{every: rate.Limit(float64(f.Failures) / f.Window.Seconds()), burst: f.Failures}
}

type bucket struct {
	lim      *rate.Limiter
	inFlight int
	// ended is closed (and replaced) when an attempt in flight ends, to
	// wake attempts waiting for one.
	ended chan struct{}
}

func newLoginLimiter(l LoginLimits, now func() time.Time) *loginLimiter {
	return &loginLimiter{
		user:    specOf(l.PerUser.withDefaults(DefaultFailuresPerUser)),
		ip:      specOf(l.PerIP.withDefaults(DefaultFailuresPerIP)),
		now:     now,
		buckets: map[string]*bucket{},
	}
}

// Bucket keys. A username is cut to 320 bytes (an email address has at
// most 254): a guesser's megabyte-long names share a bucket instead of
// filling memory.
func userKey(connID, username string) string {
	if len(username) > 320 {
		username = username[:320]
	}
	return "u:" + connID + "/" + strings.ToLower(username)
}
func ipKey(ip string) string     { return "i:" + ip }
func deviceKey(ip string) string { return "d:" + ip }

// attempt is one login attempt in flight; end it exactly once.
type attempt struct {
	l    *loginLimiter
	keys []string
	once sync.Once
}

// begin checks the buckets of keys (user keys start "u:", the others use
// the per-IP figures). It returns the attempt when every bucket has a
// token left for it, or, when one is empty, how long until it has one.
// While other attempts in flight hold a bucket's last tokens, it waits
// for them to end, up to maxQueueWait or until ctx ends (then it returns
// ctx's error).
func (l *loginLimiter) begin(ctx context.Context, keys ...string) (*attempt, time.Duration, error) {
	deadline := time.NewTimer(maxQueueWait)
	defer deadline.Stop()
	for {
		wait, busy := l.tryBegin(keys)
		switch {
		case wait > 0:
			return nil, wait, nil
		case busy == nil:
			return &attempt{l: l, keys: keys}, 0, nil
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-deadline.C:
			return nil, time.Second, nil
		}
	}
}

// tryBegin starts the attempt (both results zero), or says how long the
// emptiest bucket needs to refill one token, or returns the channel that
// announces the end of an attempt in flight on a bucket whose remaining
// tokens are all claimed.
func (l *loginLimiter) tryBegin(keys []string) (time.Duration, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.collect(now)
	var wait time.Duration
	var busy <-chan struct{}
	for _, k := range keys {
		b, spec := l.bucket(k)
		tokens := b.lim.TokensAt(now)
		switch {
		case tokens < 1:
			// Rounded up to the millisecond: at now+d the token is there.
			d := time.Duration(math.Ceil((1-tokens)/float64(spec.every)*1000)) * time.Millisecond
			wait = max(wait, d, time.Millisecond)
		case tokens-float64(b.inFlight) < 1 && busy == nil:
			busy = b.ended
		}
	}
	if wait > 0 || busy != nil {
		return wait, busy
	}
	for _, k := range keys {
		l.buckets[k].inFlight++
	}
	return 0, nil
}

// bucket returns the bucket of key, created full. l.mu is held.
func (l *loginLimiter) bucket(key string) (*bucket, bucketSpec) {
	spec := l.ip
	if strings.HasPrefix(key, "u:") {
		spec = l.user
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(spec.every, spec.burst), ended: make(chan struct{})}
		l.buckets[key] = b
	}
	return b, spec
}

// collect drops, once a minute, buckets that are full and idle: a new
// bucket would be the same. l.mu is held.
func (l *loginLimiter) collect(now time.Time) {
	if now.Sub(l.lastGC) < time.Minute {
		return
	}
	l.lastGC = now
	for k, b := range l.buckets {
		if b.inFlight == 0 && b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(l.buckets, k)
		}
	}
}

// end finishes the attempt: a failed one takes a token from each of its
// buckets, a successful one takes nothing. Later calls do nothing.
func (a *attempt) end(failed bool) {
	a.once.Do(func() {
		l := a.l
		l.mu.Lock()
		defer l.mu.Unlock()
		now := l.now()
		for _, k := range a.keys {
			b := l.buckets[k] // never collected while in flight
			b.inFlight--
			if failed {
				// Always granted: begin saw a token beyond those claimed
				// by attempts in flight, and only they take tokens.
				b.lim.ReserveN(now, 1)
			}
			close(b.ended)
			b.ended = make(chan struct{})
		}
	})
}
