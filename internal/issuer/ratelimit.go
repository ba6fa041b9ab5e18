package issuer

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginLimits bound password attempts (login page and password grant) per
// user and per client IP, as token buckets.
type LoginLimits struct {
	// PerUser: attempts per minute for one username (default 10, burst 10).
	PerUser int
	// PerIP: attempts per minute from one IP (default 60, burst 30).
	PerIP int
}

// loginLimiter keeps one bucket per key in memory. Each replica limits on
// its own, which bounds the total to replicas × limit: a second replica
// does not need this state to serve correctly.
type loginLimiter struct {
	mu      sync.Mutex
	perUser rate.Limit
	userB   int
	perIP   rate.Limit
	ipB     int
	buckets map[string]*bucket
	now     func() time.Time
	lastGC  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLoginLimiter(l LoginLimits, now func() time.Time) *loginLimiter {
	if l.PerUser <= 0 {
		l.PerUser = 10
	}
	if l.PerIP <= 0 {
		l.PerIP = 60
	}
	return &loginLimiter{
		perUser: rate.Limit(float64(l.PerUser) / 60), userB: l.PerUser,
		perIP: rate.Limit(float64(l.PerIP) / 60), ipB: max(l.PerIP/2, 1),
		buckets: map[string]*bucket{}, now: now,
	}
}

// allow takes one token from the user's and the IP's bucket. It returns
// how long to wait when either is empty.
func (l *loginLimiter) allow(user, ip string) (bool, time.Duration) {
	ok, wait, _ := l.attempt(user, ip)
	return ok, wait
}

// attempt is allow that also returns a refund: calling it gives the
// user's token back, for a login that succeeded. Only failed attempts
// then count against a user (guessing passwords), while every attempt
// counts against the IP.
func (l *loginLimiter) attempt(user, ip string) (bool, time.Duration, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastGC) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.lastGC = now
	}
	get := func(key string, r rate.Limit, burst int) *rate.Limiter {
		b, ok := l.buckets[key]
		if !ok {
			b = &bucket{lim: rate.NewLimiter(r, burst)}
			l.buckets[key] = b
		}
		b.seen = now
		return b.lim
	}
	var lims []*rate.Limiter
	var userLim *rate.Limiter
	if user != "" {
		userLim = get("u:"+strings.ToLower(user), l.perUser, l.userB)
		lims = append(lims, userLim)
	}
	if ip != "" {
		lims = append(lims, get("i:"+ip, l.perIP, l.ipB))
	}
	var wait time.Duration
	var reservations []*rate.Reservation
	for _, lim := range lims {
		res := lim.ReserveN(now, 1)
		reservations = append(reservations, res)
		if d := res.DelayFrom(now); d > wait {
			wait = d
		}
	}
	if wait > 0 {
		for _, res := range reservations {
			res.CancelAt(now)
		}
		return false, wait, func() {}
	}
	refund := func() {}
	if userLim != nil {
		res := reservations[0]
		refund = func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			res.CancelAt(l.now())
		}
	}
	return true, 0, refund
}

// peerIP is the TCP peer's address: the default client address.
// X-Forwarded-For is not trusted unless the operator configures trusted
// proxies (web.clientRemoteIP): a client could otherwise pick its own
// rate-limit bucket.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func levelForStatus(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// TrustedProxyIP returns a ClientIP function for deployments behind a
// proxy (Dex's web.clientRemoteIP): when the TCP peer is one of the
// trusted proxies, the client is the right-most address in header that is
// not itself a trusted proxy; otherwise the peer. A client that is not a
// trusted proxy cannot choose its own address.
func TrustedProxyIP(header string, trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer := peerIP(r)
		addr, err := netip.ParseAddr(peer)
		if header == "" || err != nil || !isTrusted(addr) {
			return peer
		}
		var hops []string
		for _, v := range r.Header.Values(header) {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				return peer
			}
			if !isTrusted(a) {
				return a.String()
			}
		}
		return peer
	}
}
