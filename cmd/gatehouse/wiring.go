package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/github"
	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
	"github.com/gatehouse-dev/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/webauth"
)

// openStorage opens the configured backend; migrations run on open.
func openStorage(ctx context.Context, s config.Storage, log *slog.Logger) (storage.Storage, error) {
	switch s.Type {
	case config.StorageMemory:
		log.Warn("storage type memory: every session and key is lost on restart")
		return memory.New(), nil
	case config.StorageSQLite3:
		st, err := sqlite.Open(ctx, sqlite.Config{File: s.SQLite3.File})
		if err != nil {
			return nil, fmt.Errorf("storage (sqlite3): %w", err)
		}
		return st, nil
	case config.StoragePostgres:
		st, err := postgres.Open(ctx, postgresConfig(s.Postgres))
		if err != nil {
			return nil, fmt.Errorf("storage (postgres): %w", err)
		}
		return st, nil
	case config.StorageKubernetes:
		st, err := kubernetes.Open(ctx, kubernetesConfig(s.Kubernetes, log))
		if err != nil {
			return nil, fmt.Errorf("storage (kubernetes): %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("storage.type: %q is not available in this build yet", s.Type)
	}
}

// postgresConfig translates Dex's postgres keys (plus dsn) for the
// storage package, which alone builds the connection string from them.
func postgresConfig(p config.Postgres) postgres.Config {
	return postgres.Config{
		DSN: p.DSN, Host: p.Host, Port: p.Port, Database: p.Database, User: p.User, Password: p.Password,
		SSL:               postgres.SSL{Mode: p.SSL.Mode, CAFile: p.SSL.CAFile, KeyFile: p.SSL.KeyFile, CertFile: p.SSL.CertFile},
		ConnectionTimeout: p.ConnectionTimeout, MaxOpenConns: p.MaxOpenConns, MaxIdleConns: p.MaxIdleConns, ConnMaxLifetime: p.ConnMaxLifetime,
	}
}

// kubernetesConfig translates Dex's kubernetes storage keys.
func kubernetesConfig(k config.Kubernetes, log *slog.Logger) kubernetes.Config {
	return kubernetes.Config{InCluster: k.InCluster, KubeConfigFile: k.KubeConfigFile, CRDHandling: k.CRDHandling, Logger: log}
}

// prepareConnector decodes and checks a non-local connector's config
// (a mistake fails start-up, naming the key) and returns how to open it:
// the step that reaches the upstream, which may fail and be retried; and
// whether it serves the token exchange grant only (no login).
func prepareConnector(c config.Connector, log *slog.Logger, reg prometheus.Registerer) (open func(context.Context) (any, error), exchangeOnly bool, err error) {
	switch c.Type {
	case config.ConnectorGitHub:
		var cfg github.Config
		if err := c.DecodeConfig(&cfg); err != nil {
			return nil, false, err
		}
		// GitHub is reached only at login: the connector is ready now.
		conn, err := github.New(cfg, log, github.WithRegisterer(reg))
		if err != nil {
			return nil, false, err
		}
		return func(context.Context) (any, error) { return conn, nil }, false, nil
	case config.ConnectorOIDC:
		var cfg oidc.Config
		if err := c.DecodeConfig(&cfg); err != nil {
			return nil, false, err
		}
		p, err := oidc.Prepare(cfg, log, oidc.WithMetrics(oidc.NewMetrics(reg), c.ID))
		if err != nil {
			return nil, false, err
		}
		// Discovery of the upstream: retried while it cannot be reached.
		return func(ctx context.Context) (any, error) { return p.Open(ctx) }, p.ExchangeOnly(), nil
	default:
		return nil, false, fmt.Errorf("connector type %q is not supported (supported: github, oidc, local)", c.Type)
	}
}

// auditClientID is the internal client the /audit page logs in with.
const auditClientID = "gatehouse-audit"

// auditPages prepares the internal client of the /audit page login; it
// must be registered with the issuer before the issuer is built.
type auditPages struct {
	client issuer.Client
	prefix string
}

func newAuditPages(cfg *config.Config) (*auditPages, error) {
	if !cfg.Audit.Enabled {
		return nil, nil
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	prefix := "/audit"
	return &auditPages{prefix: prefix, client: issuer.Client{
		// Each replica has its own secret: the code is redeemed in-process
		// by the replica that receives the callback, against its own
		// client table.
		ID: auditClientID, Secret: base64.RawURLEncoding.EncodeToString(secret), Name: "gatehouse audit trail",
		RedirectURIs: []string{u.Scheme + "://" + u.Host + prefix + "/callback"},
	}}, nil
}

// mountAudit serves the audit sink, the /audit page and its login when
// the audit section is on.
func mountAudit(ctx context.Context, cfg *config.Config, pages *auditPages, mux *http.ServeMux, srv *issuer.Server, km *keys.Manager, st storage.Storage, reg prometheus.Registerer, log *slog.Logger) (*audit.Service, error) {
	if pages == nil {
		return nil, nil
	}
	auth, err := webauth.New(webauth.Options{
		Issuer: srv, IssuerURL: cfg.Issuer, Keys: km, ClientID: pages.client.ID, ClientSecret: pages.client.Secret,
		Prefix: pages.prefix, KeepGroups: cfg.Audit.ViewerGroups, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	svc, err := serveAudit(ctx, cfg, mux, st, reg, log, auditPage{
		Path: pages.prefix,
		Authenticate: func(r *http.Request) (audit.Viewer, bool) {
			v, ok := auth.Authenticate(r)
			return audit.Viewer{User: v.User, Groups: v.Groups}, ok
		},
		Unauthenticated: auth.LoginRedirect(),
	})
	if err != nil {
		return nil, err
	}
	auth.Mount(mux)
	log.Info("audit trail enabled", "webhook", cfg.Audit.Webhook.Path, "page", pages.prefix, "storage", cfg.Audit.Storage.Type)
	return svc, nil
}
