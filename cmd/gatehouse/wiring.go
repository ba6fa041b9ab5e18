package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/github"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// openStorage opens the configured backend; migrations run on open.
func openStorage(ctx context.Context, s config.Storage, log *slog.Logger) (storage.Storage, error) {
	switch s.Type {
	case config.StorageMemory:
		log.Warn("storage type memory: every session and key is lost on restart")
		return memory.New(), nil
	default:
		return nil, fmt.Errorf("storage.type: %q is not available in this build yet", s.Type)
	}
}

// openConnector opens a non-local connector from its Dex config block.
func openConnector(c config.Connector, log *slog.Logger, reg prometheus.Registerer) (any, error) {
	switch c.Type {
	case config.ConnectorGitHub:
		var cfg github.Config
		if err := c.DecodeConfig(&cfg); err != nil {
			return nil, err
		}
		return github.New(cfg, log.With("connector", c.ID), github.WithRegisterer(reg))
	default:
		return nil, fmt.Errorf("connector type %q is not supported (supported: github, oidc, local)", c.Type)
	}
}

// mountAudit serves the audit sink and page when the audit section is on.
func mountAudit(ctx context.Context, cfg *config.Config, mux *http.ServeMux, store storage.Storage, reg prometheus.Registerer, log *slog.Logger) error {
	if !cfg.Audit.Enabled {
		return nil
	}
	return errors.New("audit.enabled: the audit trail is not wired into serve in this build yet")
}
