package retry

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

var (
	_ connector.CallbackConnector      = (*Callback)(nil)
	_ connector.RefreshConnector       = (*Callback)(nil)
	_ connector.Availability           = (*Callback)(nil)
	_ connector.TokenIdentityConnector = (*Callback)(nil)
	_ connector.PasswordConnector      = (*Password)(nil)
	_ connector.RefreshConnector       = (*Password)(nil)
	_ connector.Availability           = (*Password)(nil)
)

// errWrongKind: Open returned a connector of another kind than declared.
var errWrongKind = errors.New("the connector does not implement the login method it was declared with")

// Callback is a Connector for an upstream with a login page (GitHub,
// OpenID Connect).
type Callback struct{ *Connector }

// NewCallback returns a Connector whose Open returns a
// connector.CallbackConnector.
func NewCallback(o Options) *Callback { return &Callback{newCore(o)} }

func (c *Callback) callback(ctx context.Context) (connector.CallbackConnector, error) {
	impl, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	cc, ok := impl.(connector.CallbackConnector)
	if !ok {
		return nil, errWrongKind
	}
	return cc, nil
}

// LoginURL implements connector.CallbackConnector.
func (c *Callback) LoginURL(ctx context.Context, s connector.Scopes, callbackURL, state string) (string, []byte, error) {
	cc, err := c.callback(ctx)
	if err != nil {
		return "", nil, err
	}
	u, data, err := cc.LoginURL(ctx, s, callbackURL, state)
	return u, data, c.observe(err)
}

// HandleCallback implements connector.CallbackConnector.
func (c *Callback) HandleCallback(ctx context.Context, s connector.Scopes, connData []byte, r *http.Request) (connector.Identity, error) {
	cc, err := c.callback(ctx)
	if err != nil {
		return connector.Identity{}, err
	}
	id, err := cc.HandleCallback(ctx, s, connData, r)
	return id, c.observe(err)
}

// Refresh implements connector.RefreshConnector; an upstream without
// refresh keeps the identity as it is.
func (c *Callback) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	return c.refresh(ctx, s, id)
}

// TokenIdentity implements connector.TokenIdentityConnector when the
// opened connector does; otherwise it returns
// connector.ErrTokenExchangeUnsupported.
func (c *Callback) TokenIdentity(ctx context.Context, subjectTokenType, subjectToken string) (connector.Identity, error) {
	impl, err := c.current(ctx)
	if err != nil {
		return connector.Identity{}, err
	}
	tc, ok := impl.(connector.TokenIdentityConnector)
	if !ok {
		return connector.Identity{}, connector.ErrTokenExchangeUnsupported
	}
	id, err := tc.TokenIdentity(ctx, subjectTokenType, subjectToken)
	return id, c.observe(err)
}

// Password is a Connector for a source that checks passwords typed on
// gatehouse's page.
type Password struct {
	*Connector
	// Label is the username field's label while the source is unopened.
	Label string
}

// NewPassword returns a Connector whose Open returns a
// connector.PasswordConnector.
func NewPassword(o Options, label string) *Password { return &Password{newCore(o), label} }

// Prompt implements connector.PasswordConnector.
func (c *Password) Prompt() string {
	c.mu.Lock()
	impl := c.impl
	c.mu.Unlock()
	if pc, ok := impl.(connector.PasswordConnector); ok {
		return pc.Prompt()
	}
	return c.Label
}

// Login implements connector.PasswordConnector.
func (c *Password) Login(ctx context.Context, s connector.Scopes, username, password string) (connector.Identity, bool, error) {
	impl, err := c.current(ctx)
	if err != nil {
		return connector.Identity{}, false, err
	}
	pc, ok := impl.(connector.PasswordConnector)
	if !ok {
		return connector.Identity{}, false, errWrongKind
	}
	id, valid, err := pc.Login(ctx, s, username, password)
	return id, valid, c.observe(err)
}

// Refresh implements connector.RefreshConnector.
func (c *Password) Refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	return c.refresh(ctx, s, id)
}

func (c *Connector) refresh(ctx context.Context, s connector.Scopes, id connector.Identity) (connector.Identity, error) {
	impl, err := c.current(ctx)
	if err != nil {
		return connector.Identity{}, err
	}
	rc, ok := impl.(connector.RefreshConnector)
	if !ok {
		return id, nil
	}
	out, err := rc.Refresh(ctx, s, id)
	return out, c.observe(err)
}

// Metrics are the connectors' Prometheus metrics.
type Metrics struct {
	up       *prometheus.GaugeVec
	attempts *prometheus.CounterVec
}

// NewMetrics creates and registers the metrics on reg:
// gatehouse_connector_up{connector,type} (1 available, 0 not) and
// gatehouse_connector_open_attempts_total{connector,result}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_connector_up", Help: "Whether a connector is available (1) or its upstream cannot be reached (0).",
		}, []string{"connector", "type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_connector_open_attempts_total", Help: "Attempts to open a connector (reach its upstream), by result.",
		}, []string{"connector", "result"}),
	}
	reg.MustRegister(m.up, m.attempts)
	return m
}

// Set marks a connector that needs no upstream (local passwords) as
// available in the same metric.
func (m *Metrics) Set(id, typ string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(id, typ).Set(v)
}
