package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/ldap"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// connectorStartWait is how long start-up waits for the connectors'
// first attempts to reach their upstreams before serving anyway (the
// attempts go on in the background).
const connectorStartWait = 10 * time.Second

// connectorSet is the configured connectors: those that reach an upstream
// are opened in the background (retry.Connector), the others at once.
type connectorSet struct {
	list     []issuer.Connector
	upstream []*retry.Callback
	static   []retry.Status
	metrics  *retry.Metrics
}

// buildConnectors checks every configured connector. A connector's
// config is decoded strictly: a mistake fails start-up naming the key. No
// upstream is contacted yet (see start).
func buildConnectors(cfg *config.Config, store storage.Storage, log *slog.Logger, reg prometheus.Registerer) (*connectorSet, error) {
	set := &connectorSet{metrics: retry.NewMetrics(reg)}
	for _, c := range cfg.AllConnectors() {
		if err := set.add(c, cfg, store, log, reg); err != nil {
			return nil, fmt.Errorf("connector %q: %w", c.ID, err)
		}
	}
	return set, nil
}

// has reports whether a connector with this id is in the set.
func (s *connectorSet) has(id string) bool {
	return slices.ContainsFunc(s.list, func(c issuer.Connector) bool { return c.ID == id })
}

// add checks one connector and adds it: local passwords and LDAP at
// once, the others to be opened by start.
func (s *connectorSet) add(c config.Connector, cfg *config.Config, store storage.Storage, log *slog.Logger, reg prometheus.Registerer) error {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	var impl any
	exchangeOnly := false
	switch c.Type {
	case config.ConnectorLocal:
		l, err := localConnector(cfg, store)
		if err != nil {
			return err
		}
		impl = l
		s.addStatic(c)
	case config.ConnectorLDAP:
		// The directory is reached at each login (a pool of
		// connections), not at start-up: nothing to open here.
		l, err := ldapConnector(c, log)
		if err != nil {
			return err
		}
		impl = l
		s.addStatic(c)
	default:
		clog := log.With("connector", c.ID)
		open, only, err := prepareConnector(c, clog, reg)
		exchangeOnly = only
		if err != nil {
			return err
		}
		r := retry.NewCallback(retry.Options{ID: c.ID, Type: c.Type, Name: name, Open: open, Logger: clog, Metrics: s.metrics})
		s.upstream = append(s.upstream, r)
		impl = r
	}
	s.list = append(s.list, issuer.Connector{ID: c.ID, Type: c.Type, Name: name, Impl: impl, ExchangeOnly: exchangeOnly})
	return nil
}

// start opens the upstream connectors, all at once, and waits for their
// first attempts, at most wait. With Dex's continue_on_connector_failure
// on (the default, DEX_CONTINUE_ON_CONNECTOR_FAILURE), a connector that
// cannot reach its upstream is logged, marked unavailable and retried
// while the issuer serves the others; off, start-up fails as Dex's does.
func (s *connectorSet) start(ctx context.Context, continueOnFailure bool, wait time.Duration) error {
	for _, r := range s.upstream {
		r.Start(ctx)
	}
	var timeout <-chan time.Time
	if continueOnFailure {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var errs []error
	for _, r := range s.upstream {
		select {
		case <-r.First():
		case <-timeout:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := r.Err(); err != nil && !continueOnFailure {
			errs = append(errs, fmt.Errorf("connector %q: %w", r.ID(), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\n(%s=false: a connector that cannot be opened stops start-up; unset it to start without it and retry)", errors.Join(errs...), config.ContinueOnConnectorFailureEnvVar)
	}
	return nil
}

// addStatic records a connector that needs no opening as available.
func (s *connectorSet) addStatic(c config.Connector) {
	s.metrics.Set(c.ID, c.Type, true)
	s.static = append(s.static, retry.Status{ID: c.ID, Type: c.Type, Available: true, Since: time.Now().UTC()})
}

// statuses reports every connector for /healthz.
func (s *connectorSet) statuses() []retry.Status {
	out := append([]retry.Status(nil), s.static...)
	for _, r := range s.upstream {
		out = append(out, r.Status())
	}
	return out
}

// localConnector checks staticPasswords and, with enablePasswordDB, the
// passwords in storage.
func localConnector(cfg *config.Config, store storage.Storage) (*local.Connector, error) {
	users := make([]local.User, 0, len(cfg.StaticPasswords))
	for _, p := range cfg.StaticPasswords {
		users = append(users, local.User{
			Email: p.Email, Hash: []byte(p.Hash), Username: p.Username, Name: p.Name,
			PreferredUsername: p.PreferredUsername, EmailVerified: p.EmailVerified, UserID: p.UserID, Groups: p.Groups,
		})
	}
	var db storage.Storage
	if cfg.EnablePasswordDB {
		db = store
	}
	return local.New(users, db)
}

// ldapConnector opens an LDAP or Active Directory connector. It does not
// connect yet: a directory that is down at start-up fails logins, not
// start-up.
func ldapConnector(c config.Connector, log *slog.Logger) (*ldap.Connector, error) {
	var lc ldap.Config
	if err := c.DecodeConfig(&lc); err != nil {
		return nil, err
	}
	return ldap.New(lc, c.KeyPath(), log.With("connector", c.ID))
}
