// Package retry opens connectors whose upstream may be unreachable (an
// OpenID Connect provider's discovery, GitHub) without letting the outage
// stop the issuer or the other connectors: Dex's
// continue_on_connector_failure behaviour, plus retries.
//
// A Connector wraps one upstream connector. Start makes the first attempt
// to open it; while it fails, the attempts go on in the background with
// exponential backoff, and a login that picks the connector makes one
// more attempt on the spot (as Dex opens a connector again when a user
// picks it). Until it opens, Available is false (the login page marks
// it), logins through it get a 503 page that says so, and Status reports
// the last error for /healthz. A connector that opened and later fails a
// login because its upstream cannot be reached is marked unavailable
// again and opened anew in the background (for OIDC: discovery again).
package retry

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// Defaults of Options.
const (
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultAttemptTimeout = 30 * time.Second
)

// Options configure one Connector.
type Options struct {
	// ID, Type and Name are the configured connector's (for logs, metrics
	// and the error page).
	ID, Type, Name string
	// Open reaches the upstream and returns the connector: a
	// connector.CallbackConnector or connector.PasswordConnector, usually
	// also a connector.RefreshConnector.
	Open func(ctx context.Context) (any, error)
	// Logger names the connector already (with "connector", ID).
	Logger  *slog.Logger
	Metrics *Metrics
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure (with up to 20% jitter).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt.
	AttemptTimeout time.Duration
}

// Status is what /healthz reports of a connector.
type Status struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Available bool   `json:"available"`
	// Error is the last failure while unavailable.
	Error string `json:"error,omitempty"`
	// Since is when the connector became available or unavailable.
	Since time.Time `json:"since"`
	// FailedAttempts since it was last available.
	FailedAttempts int `json:"failedAttempts,omitempty"`
	// NextAttempt is when the background retry runs next.
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
}

// Connector is a connector opened in the background. Use NewCallback or
// NewPassword, then Start.
type Connector struct {
	o Options

	mu          sync.Mutex
	impl        any
	up          bool
	lastErr     error
	since       time.Time
	failures    int
	nextAttempt time.Time
	attempt     chan struct{} // non-nil while an attempt runs; closed at its end

	base  context.Context // Start's context: attempts outlive the request that asked
	kick  chan struct{}
	first chan struct{}
	once  sync.Once
}

func newCore(o Options) *Connector {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	c := &Connector{o: o, since: time.Now(), kick: make(chan struct{}, 1), first: make(chan struct{})}
	c.o.Metrics.up.WithLabelValues(o.ID, o.Type).Set(0)
	return c
}

// Start runs the attempts until ctx ends: the first one at once, then,
// while they fail or after the connector is marked unavailable, with
// backoff. It returns immediately; First is closed after the first
// attempt.
func (c *Connector) Start(ctx context.Context) {
	c.mu.Lock()
	c.base = ctx
	c.mu.Unlock()
	go c.loop(ctx)
}

// First is closed when the first attempt has ended.
func (c *Connector) First() <-chan struct{} { return c.first }

// ID returns the connector's id.
func (c *Connector) ID() string { return c.o.ID }

func (c *Connector) loop(ctx context.Context) {
	for {
		if c.Available() {
			select {
			case <-ctx.Done():
				return
			case <-c.kick:
				continue
			}
		}
		if err := c.tryOpen(ctx); err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		wait := time.Until(c.nextAttempt)
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.kick:
			t.Stop()
		}
	}
}

// backoff returns the wait after n failures: MinBackoff doubled n-1
// times, at most MaxBackoff, less up to 20% so that replicas spread out.
func (c *Connector) backoff(n int) time.Duration {
	d := c.o.MinBackoff
	for i := 1; i < n && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// tryOpen makes one attempt, or waits for the one already running (so a
// crowd of logins makes one attempt, not one each).
func (c *Connector) tryOpen(ctx context.Context) error {
	c.mu.Lock()
	if ch := c.attempt; ch != nil {
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.up {
			return nil
		}
		return c.lastErr
	}
	ch := make(chan struct{})
	c.attempt = ch
	base := c.base
	c.mu.Unlock()
	if base == nil {
		base = context.Background()
	}
	actx, cancel := context.WithTimeout(base, c.o.AttemptTimeout)
	impl, err := c.o.Open(actx)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if err == nil {
		if !c.up {
			c.since = now
		}
		if c.failures > 0 || c.lastErr != nil {
			c.o.Logger.Info("connector available again", "failed_attempts", c.failures)
		}
		c.impl, c.up, c.lastErr, c.failures, c.nextAttempt = impl, true, nil, 0, time.Time{}
		c.o.Metrics.up.WithLabelValues(c.o.ID, c.o.Type).Set(1)
		c.o.Metrics.attempts.WithLabelValues(c.o.ID, "ok").Inc()
	} else {
		if c.up || c.failures == 0 {
			c.since = now
		}
		c.up = false
		c.failures++
		c.lastErr = err
		wait := c.backoff(c.failures)
		c.nextAttempt = now.Add(wait)
		c.o.Metrics.up.WithLabelValues(c.o.ID, c.o.Type).Set(0)
		c.o.Metrics.attempts.WithLabelValues(c.o.ID, "error").Inc()
		c.o.Logger.Error("connector unavailable: its upstream cannot be reached; logins through it fail until it can, the other connectors work", "err", err, "failed_attempts", c.failures, "retry_in", wait.Round(time.Millisecond).String())
	}
	c.attempt = nil
	close(ch)
	c.once.Do(func() { close(c.first) })
	if err == nil {
		return nil
	}
	return err
}

// Available reports whether the connector is open and its upstream was
// reachable at the last attempt or login.
func (c *Connector) Available() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// Status reports the connector's state for /healthz.
func (c *Connector) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{ID: c.o.ID, Type: c.o.Type, Available: c.up, Since: c.since.UTC(), FailedAttempts: c.failures}
	if !c.up && c.lastErr != nil {
		s.Error = c.lastErr.Error()
	}
	if !c.up && !c.nextAttempt.IsZero() {
		t := c.nextAttempt.UTC()
		s.NextAttempt = &t
	}
	return s
}

// Err returns the last failure while unavailable, or nil.
func (c *Connector) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return nil
	}
	return c.lastErr
}

// current returns the opened connector, making one attempt first when it
// never opened. A connector that opened once is returned even while it is
// marked unavailable: its upstream may be back, and the login says so if
// not.
func (c *Connector) current(ctx context.Context) (any, error) {
	c.mu.Lock()
	impl := c.impl
	c.mu.Unlock()
	if impl != nil {
		return impl, nil
	}
	if err := c.tryOpen(ctx); err != nil && !errors.Is(err, context.Canceled) {
		c.o.Logger.Debug("connector still unavailable at login", "err", err)
	}
	c.mu.Lock()
	impl = c.impl
	c.mu.Unlock()
	if impl != nil {
		return impl, nil
	}
	return nil, c.unavailable()
}

// unavailable is the error a login gets while the connector cannot open:
// the issuer ends the login with temporarily_unavailable (RFC 6749
// 4.1.2.1) and Description, or shows Title and Message when it cannot
// redirect.
func (c *Connector) unavailable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	retry := time.Until(c.nextAttempt)
	if retry < time.Second {
		retry = time.Second
	}
	return &connector.UserError{
		Status:      http.StatusServiceUnavailable,
		Title:       c.o.Name + " is unavailable",
		Message:     "gatehouse cannot reach " + c.o.Name + " at the moment, so logging in with it is not possible. Try again in a few minutes, or choose another login method.",
		Description: c.o.Name + " cannot be reached at the moment; try again in a few minutes, or log in another way",
		Reason:      "connector_unavailable",
		RetryAfter:  retry,
		Err:         c.lastErr,
	}
}

// observe marks the connector unavailable when a login or refresh failed
// because its upstream could not be reached, and wakes the background
// attempts; it returns err unchanged.
func (c *Connector) observe(err error) error {
	if err == nil || !Unreachable(err) {
		return err
	}
	c.mu.Lock()
	if c.up {
		c.up = false
		c.since = time.Now()
		c.lastErr = err
		c.nextAttempt = time.Now()
		c.o.Metrics.up.WithLabelValues(c.o.ID, c.o.Type).Set(0)
		c.o.Logger.Warn("connector marked unavailable: its upstream cannot be reached", "err", err)
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return err
}

// Unreachable reports whether err says that a server could not be
// reached or did not answer in time (DNS, refused or reset connections,
// timeouts), as opposed to an answer that refused something.
func Unreachable(err error) bool {
	var dns *net.DNSError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &dns), errors.As(err, &op):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return false
}
