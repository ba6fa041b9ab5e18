package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// maxIdle is how long an idle connection is kept. Directories and
// firewalls drop idle connections (Active Directory after 15 minutes by
// default); a connection idle longer is closed instead of reused.
const maxIdle = 4 * time.Minute

// errBusy is returned when no connection became free in time.
var errBusy = errors.New("ldap: every connection to the directory is busy")

// pool keeps a few open connections to the directory, so that a login
// does not pay for a TCP connect, a TLS handshake and a bind per
// operation. go-ldap has no pool of its own. A service pool's
// connections are bound as bindDN once, when opened; an auth pool's are
// only transport: each use binds as the user logging in.
type pool struct {
	s           *settings
	serviceBind bool
	slots       chan struct{} // one token per connection that may be open
	idle        chan idleConn
}

type idleConn struct {
	c     *ldap.Conn
	since time.Time
}

func newPool(s *settings, serviceBind bool) *pool {
	return &pool{s: s, serviceBind: serviceBind, slots: make(chan struct{}, s.poolSize), idle: make(chan idleConn, s.poolSize)}
}

// do runs f on a connection. ctx and the timeout bound the wait for a
// connection, the dial and every request f makes (go-ldap's request
// timeout); when ctx ends, the connection is closed, which ends f. A
// connection that failed at the network level is dropped; if it was an
// idle one (the server may have closed it), f runs once more on a new one.
func (p *pool) do(ctx context.Context, f func(*ldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err = f(c)
		cancelled := !stop()
		broken := cancelled || c.IsClosing() || ldap.IsErrorWithCode(err, ldap.ErrorNetwork)
		p.put(c, !broken)
		switch {
		case cancelled:
			return fmt.Errorf("ldap: %w", context.Cause(ctx))
		case broken && reused && attempt == 0 && !isTimeout(err):
			continue
		}
		return err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (strings.Contains(err.Error(), "timed out") || (errors.As(err, &ne) && ne.Timeout()))
}

func (p *pool) get(ctx context.Context) (*ldap.Conn, bool, error) {
	wait, cancel := context.WithTimeout(ctx, p.s.timeout)
	defer cancel()
	select {
	case p.slots <- struct{}{}:
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("ldap: %w", context.Cause(ctx))
		}
		return nil, false, fmt.Errorf("%w (%d in use, none free within %s): %s is slow or not answering", errBusy, p.s.poolSize, p.s.timeout, p.s.hostport)
	}
	for {
		select {
		case ic := <-p.idle:
			if ic.c.IsClosing() || time.Since(ic.since) > maxIdle {
				ic.c.Close()
				continue
			}
			return ic.c, true, nil
		default:
		}
		break
	}
	c, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

func (p *pool) put(c *ldap.Conn, healthy bool) {
	if healthy && !c.IsClosing() {
		select {
		case p.idle <- idleConn{c: c, since: time.Now()}:
		default:
			c.Close()
		}
	} else {
		c.Close()
	}
	<-p.slots
}

// dial connects (LDAPS, plain LDAP, or plain then StartTLS) and, for the
// service pool, binds as bindDN. The whole set-up is bounded by the
// timeout: go-ldap's StartTLS handshake has no deadline of its own, so
// the deadline sits on the TCP connection until the set-up is done.
func (p *pool) dial(ctx context.Context) (*ldap.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.s.timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.s.hostport)
	if err != nil {
		return nil, fmt.Errorf("ldap: connect to %s: %w", p.s.hostport, err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	conn, isTLS := raw, false
	if !p.s.InsecureNoSSL && !p.s.StartTLS {
		tc := tls.Client(raw, p.s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("ldap: TLS handshake with %s: %w", p.s.hostport, err)
		}
		conn, isTLS = tc, true
	}
	lc := ldap.NewConn(conn, isTLS)
	lc.Start()
	lc.SetTimeout(p.s.timeout)
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	err = p.setUp(lc)
	if !stop() {
		lc.Close()
		if err == nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("ldap: set up a connection to %s: %w", p.s.hostport, err)
	}
	if err != nil {
		lc.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return lc, nil
}

func (p *pool) setUp(lc *ldap.Conn) error {
	if p.s.StartTLS {
		if err := lc.StartTLS(p.s.tls); err != nil {
			return fmt.Errorf("ldap: StartTLS with %s: %w", p.s.hostport, err)
		}
	}
	if p.serviceBind && p.s.BindDN != "" {
		if err := lc.Bind(p.s.BindDN, p.s.BindPW); err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				return fmt.Errorf("ldap: the service account bind as %q was refused: check bindDN and bindPW: %w", p.s.BindDN, err)
			}
			return fmt.Errorf("ldap: bind as %q: %w", p.s.BindDN, err)
		}
	}
	return nil
}

// close closes the idle connections; connections in use are closed when
// they come back.
func (p *pool) close() {
	for {
		select {
		case ic := <-p.idle:
			ic.c.Close()
		default:
			return
		}
	}
}
