package retry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// upstream is a fake provider: down until up is set; each open returns a
// new inner connector (as a new discovery would).
type upstream struct {
	up      atomic.Bool
	opens   atomic.Int32
	block   chan struct{} // when set, Open waits for it
	failErr error         // what a login returns, when set
	mu      sync.Mutex
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errors.New("connection refused"))}

func (u *upstream) open(ctx context.Context) (any, error) {
	u.opens.Add(1)
	if u.block != nil {
		select {
		case <-u.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !u.up.Load() {
		return nil, fmt.Errorf("discovery: %w", &url.Error{Op: "Get", URL: "https://idp.example/.well-known/openid-configuration", Err: errRefused})
	}
	return &inner{u: u, n: u.opens.Load()}, nil
}

type inner struct {
	u *upstream
	n int32
}

func (i *inner) LoginURL(context.Context, connector.Scopes, string, string) (string, []byte, error) {
	i.u.mu.Lock()
	defer i.u.mu.Unlock()
	if i.u.failErr != nil {
		return "", nil, i.u.failErr
	}
	return fmt.Sprintf("https://idp.example/auth?open=%d", i.n), nil, nil
}

func (i *inner) HandleCallback(context.Context, connector.Scopes, []byte, *http.Request) (connector.Identity, error) {
	return connector.Identity{UserID: "u"}, nil
}

func (i *inner) Refresh(_ context.Context, _ connector.Scopes, id connector.Identity) (connector.Identity, error) {
	return id, nil
}

func newTest(t *testing.T, u *upstream, minBackoff time.Duration) (*Callback, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	c := NewCallback(Options{ID: "idp", Type: "oidc", Name: "IdP", Open: u.open, Metrics: m, MinBackoff: minBackoff, MaxBackoff: minBackoff})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c.Start(ctx)
	<-c.First()
	return c, m
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoginWhileUnreachable(t *testing.T) {
	u := &upstream{}
	// A long backoff: only the login's own attempt can open it.
	c, m := newTest(t, u, time.Hour)
	if c.Available() || connector.Available(c) {
		t.Fatal("available while the upstream is down")
	}
	st := c.Status()
	if st.Available || !strings.Contains(st.Error, "connection refused") || st.NextAttempt == nil || st.FailedAttempts != 1 {
		t.Fatalf("status %+v", st)
	}
	if v := testutil.ToFloat64(m.up.WithLabelValues("idp", "oidc")); v != 0 {
		t.Fatalf("gatehouse_connector_up = %v", v)
	}
	_, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "https://gh/callback", "st")
	ue, ok := connector.AsUserError(err)
	if !ok || ue.Status != http.StatusServiceUnavailable || ue.Reason != "connector_unavailable" || !strings.Contains(ue.Title, "IdP") || !strings.Contains(ue.Description, "IdP cannot be reached") || ue.RetryAfter <= 0 {
		t.Fatalf("login while down: %v", err)
	}
	if _, err := c.Refresh(context.Background(), connector.Scopes{}, connector.Identity{UserID: "u"}); err == nil {
		t.Fatal("refresh while never opened succeeded")
	}

	u.up.Store(true)
	loginURL, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "https://gh/callback", "st")
	if err != nil || !strings.HasPrefix(loginURL, "https://idp.example/auth") {
		t.Fatalf("login once the upstream is up: %q %v", loginURL, err)
	}
	if !c.Available() || c.Status().Error != "" || testutil.ToFloat64(m.up.WithLabelValues("idp", "oidc")) != 1 {
		t.Fatalf("not available after a successful attempt: %+v", c.Status())
	}
}

func TestBackgroundRetries(t *testing.T) {
	u := &upstream{}
	c, m := newTest(t, u, time.Millisecond)
	eventually(t, "three failed attempts", func() bool { return u.opens.Load() >= 3 })
	if c.Available() {
		t.Fatal("available while down")
	}
	u.up.Store(true)
	eventually(t, "available", c.Available)
	opens := u.opens.Load()
	if ok := testutil.ToFloat64(m.attempts.WithLabelValues("idp", "ok")); ok != 1 {
		t.Errorf("ok attempts = %v", ok)
	}
	if failed := testutil.ToFloat64(m.attempts.WithLabelValues("idp", "error")); int32(failed) != opens-1 {
		t.Errorf("failed attempts = %v, want %d", failed, opens-1)
	}
	// Open, it is not opened again.
	time.Sleep(20 * time.Millisecond)
	if n := u.opens.Load(); n != opens {
		t.Errorf("opened %d more times while available", n-opens)
	}
}

func TestUnreachableLaterReopens(t *testing.T) {
	u := &upstream{}
	u.up.Store(true)
	c, _ := newTest(t, u, time.Millisecond)
	if !c.Available() {
		t.Fatal("not available")
	}
	first, _, _ := c.LoginURL(context.Background(), connector.Scopes{}, "cb", "st")

	// An answer that refuses something is not an outage.
	u.mu.Lock()
	u.failErr = &connector.UserError{Status: 403, Title: "No", Message: "not in org"}
	u.mu.Unlock()
	if _, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "cb", "st"); err == nil || !c.Available() {
		t.Fatalf("a refusal marked the connector unavailable (%v)", err)
	}

	// The upstream stops answering: marked unavailable, opened anew.
	u.up.Store(false)
	u.mu.Lock()
	u.failErr = fmt.Errorf("token exchange: %w", &url.Error{Op: "Post", URL: "https://idp.example/token", Err: errRefused})
	u.mu.Unlock()
	if _, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "cb", "st"); err == nil {
		t.Fatal("no error")
	}
	if c.Available() {
		t.Fatal("still available after the upstream stopped answering")
	}
	u.mu.Lock()
	u.failErr = nil
	u.mu.Unlock()
	u.up.Store(true)
	eventually(t, "available again", c.Available)
	again, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "cb", "st")
	if err != nil || again == first {
		t.Fatalf("not reopened: %q then %q (%v)", first, again, err)
	}
}

// TestOneAttemptForManyLogins: logins arriving while an attempt runs wait
// for it instead of each starting one.
func TestOneAttemptForManyLogins(t *testing.T) {
	u := &upstream{}
	c, _ := newTest(t, u, time.Hour)
	before := u.opens.Load()
	u.block = make(chan struct{})
	u.up.Store(true)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	started := make(chan struct{}, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			_, _, err := c.LoginURL(context.Background(), connector.Scopes{}, "cb", "st")
			errs <- err
		}()
	}
	for range 20 {
		<-started
	}
	eventually(t, "an attempt running", func() bool { return u.opens.Load() > before })
	close(u.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Logins that came while it ran joined it; later ones found it open.
	if n := u.opens.Load() - before; n != 1 {
		t.Fatalf("%d attempts for 20 concurrent logins", n)
	}
}

func TestUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", fmt.Errorf("x: %w", errRefused), true},
		{"dns", &url.Error{Op: "Get", URL: "https://nx.example", Err: &net.DNSError{Err: "no such host", Name: "nx.example", IsNotFound: true}}, true},
		{"timeout", &url.Error{Op: "Get", URL: "https://slow.example", Err: os.ErrDeadlineExceeded}, true},
		{"user error wrapping an outage", &connector.UserError{Status: 502, Title: "GitHub", Err: errRefused}, true},
		{"refusal", &connector.UserError{Status: 403, Title: "No"}, false},
		{"canceled", context.Canceled, false},
		{"plain", errors.New("invalid_grant"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unreachable(tc.err); got != tc.want {
				t.Fatalf("Unreachable(%v) = %v", tc.err, got)
			}
		})
	}
}

// tokenInner is an opened connector that verifies subject tokens.
type tokenInner struct{ inner }

func (tokenInner) TokenIdentity(_ context.Context, typ, tok string) (connector.Identity, error) {
	if tok != "good" {
		return connector.Identity{}, errors.New("bad token")
	}
	return connector.Identity{UserID: "job", Expiry: time.Unix(1, 0)}, nil
}

// TestTokenIdentityForwarded: the wrapper passes token exchange to an
// opened connector that has it, says ErrTokenExchangeUnsupported for one
// that has not, and the unavailable error while it cannot open.
func TestTokenIdentityForwarded(t *testing.T) {
	ctx := context.Background()
	with := NewCallback(Options{ID: "gha", Type: "oidc", Name: "GitHub Actions", Metrics: NewMetrics(prometheus.NewRegistry()),
		Open: func(context.Context) (any, error) { return tokenInner{}, nil }})
	if id, err := with.TokenIdentity(ctx, connector.TokenTypeIDToken, "good"); err != nil || id.UserID != "job" {
		t.Fatalf("forwarded: %v %v", id, err)
	}
	if _, err := with.TokenIdentity(ctx, connector.TokenTypeIDToken, "forged"); err == nil {
		t.Fatal("a refused token passed through the wrapper")
	}
	u := &upstream{}
	u.up.Store(true)
	without := NewCallback(Options{ID: "idp", Type: "github", Name: "GitHub", Metrics: NewMetrics(prometheus.NewRegistry()), Open: u.open})
	if _, err := without.TokenIdentity(ctx, connector.TokenTypeIDToken, "good"); !errors.Is(err, connector.ErrTokenExchangeUnsupported) {
		t.Fatalf("connector without token exchange: %v", err)
	}
	down := NewCallback(Options{ID: "idp", Type: "oidc", Name: "IdP", Metrics: NewMetrics(prometheus.NewRegistry()), Open: (&upstream{}).open,
		MinBackoff: time.Hour, MaxBackoff: time.Hour})
	_, err := down.TokenIdentity(ctx, connector.TokenTypeIDToken, "good")
	if ue, ok := connector.AsUserError(err); !ok || ue.Status != http.StatusServiceUnavailable {
		t.Fatalf("unreachable connector: %v", err)
	}
}
