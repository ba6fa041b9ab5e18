package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/ldap"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// buildConnectors opens every configured connector. A connector's config
// is decoded strictly: a mistake fails start-up naming the key.
func buildConnectors(cfg *config.Config, store storage.Storage, log *slog.Logger, reg prometheus.Registerer) ([]issuer.Connector, error) {
	var out []issuer.Connector
	for _, c := range cfg.AllConnectors() {
		var impl any
		var err error
		switch c.Type {
		case config.ConnectorLocal:
			impl, err = localConnector(cfg, store)
		case config.ConnectorLDAP:
			impl, err = ldapConnector(c, log)
		default:
			impl, err = openConnector(c, log, reg)
		}
		if err != nil {
			return nil, fmt.Errorf("connector %q: %w", c.ID, err)
		}
		name := c.Name
		if name == "" {
			name = c.ID
		}
		out = append(out, issuer.Connector{ID: c.ID, Type: c.Type, Name: name, Impl: impl})
	}
	return out, nil
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
