package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

type serveFlags struct {
	config string
	dev    bool
	devDir string
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--config FILE | --dev]",
		Short: "Run the OpenID Connect issuer (reads Dex's config.yaml)",
		Long: `Run the OpenID Connect issuer.

With --config, gatehouse reads Dex's config.yaml format unchanged (plus a few
extension keys, see docs/configuration.md). With --dev it runs on embedded
defaults: SQLite in a data folder, a generated CA and serving certificate, a
client "kubernetes" and a local user, and prints how to point kube-apiserver
and kubectl at it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.dev == (f.config != "") {
				return errors.New("give either --config FILE or --dev")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var cfg *config.Config
			var dev *devSetup
			var err error
			if f.dev {
				dev, err = prepareDev(f.devDir)
				if err != nil {
					return err
				}
				cfg = dev.config
			} else {
				cfg, err = config.Load(f.config)
				if err != nil {
					return err
				}
			}
			return serve(ctx, cfg, cmd.ErrOrStderr(), func() {
				if dev != nil {
					dev.printInstructions(cmd.OutOrStdout())
				}
			})
		},
	}
	cmd.Flags().StringVar(&f.config, "config", "", "Dex-format configuration file")
	cmd.Flags().BoolVar(&f.dev, "dev", false, "run on embedded defaults (SQLite, local user, self-signed TLS) for a first try")
	cmd.Flags().StringVar(&f.devDir, "dev-dir", "gatehouse-data", "data folder of --dev (database, certificates, credentials)")
	return cmd
}

func newLogger(cfg config.Logger, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs the issuer until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, logOut io.Writer, ready func()) error {
	log := newLogger(cfg.Logger, logOut)
	slog.SetDefault(log)

	store, err := openStorage(ctx, cfg.Storage, log)
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	alg := keys.Algorithm(cfg.Signer.Local.Algorithm)
	rotation := cfg.Expiry.SigningKeys.D()
	if p := cfg.Signer.Local.KeysRotationPeriod.D(); p > 0 {
		rotation = p
	}
	km, err := keys.NewManager(keys.Options{Storage: store, Algorithm: alg, RotationPeriod: rotation, TokenLifetime: cfg.Expiry.IDTokens.D(), Logger: log})
	if err != nil {
		return err
	}
	if err := km.Start(ctx); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}

	conns, err := buildConnectors(cfg, store, log, reg)
	if err != nil {
		return err
	}
	if conns, err = addStoredConnectors(ctx, store, conns, log, reg); err != nil {
		return err
	}
	renderer, err := web.New(web.Options{
		Issuer: cfg.Frontend.Issuer, LogoURL: cfg.Frontend.LogoURL, Theme: cfg.Frontend.Theme,
		Dir: cfg.Frontend.Dir, Extra: cfg.Frontend.Extra,
	})
	if err != nil {
		return err
	}
	reuse := 3 * time.Second
	if cfg.Expiry.RefreshTokens.ReuseInterval != nil {
		reuse = cfg.Expiry.RefreshTokens.ReuseInterval.D()
	}
	var clients []issuer.Client
	for _, c := range cfg.StaticClients {
		clients = append(clients, issuer.Client{
			ID: c.ID, Secret: c.Secret, Name: c.Name, RedirectURIs: c.RedirectURIs, Public: c.Public,
			TrustedPeers: c.TrustedPeers, LogoURL: c.LogoURL, AllowedConnectors: c.AllowedConnectors,
			AllowedGrantTypes: c.AllowedGrantTypes,
		})
	}
	if clients, err = addStoredClients(ctx, store, clients, log); err != nil {
		return err
	}
	pages, err := newAuditPages(cfg)
	if err != nil {
		return err
	}
	if pages != nil {
		clients = append(clients, pages.client)
	}
	trusted, err := cfg.Web.ClientRemoteIP.TrustedPrefixes()
	if err != nil {
		return fmt.Errorf("web.clientRemoteIP.trustedProxies: %w", err)
	}
	srv, err := issuer.New(issuer.Options{
		Issuer: cfg.Issuer, Storage: store, Keys: km, Clients: clients, Connectors: conns,
		SkipApprovalScreen: cfg.OAuth2.SkipApprovalScreen, AlwaysShowLoginScreen: cfg.OAuth2.AlwaysShowLoginScreen,
		PasswordConnector: cfg.OAuth2.PasswordConnector, GrantTypes: cfg.OAuth2.GrantTypes,
		AllowPlainPKCE: cfg.OAuth2.PKCE.AllowPlain, AllowedOrigins: cfg.Web.AllowedOrigins,
		AllowedHeaders: cfg.Web.AllowedHeaders, Headers: cfg.Web.Headers.HTTPHeader(),
		ClientIPHeader: cfg.Web.ClientRemoteIP.Header, TrustedProxies: trusted,
		LoginLimits: issuer.LoginLimitsFromConfig(cfg.OAuth2.LoginLimits),
		Expiry: issuer.Expiry{
			IDTokens: cfg.Expiry.IDTokens.D(), AuthRequests: cfg.Expiry.AuthRequests.D(), DeviceRequests: cfg.Expiry.DeviceRequests.D(),
			RefreshReuseInterval: reuse, RefreshValidIfNotUsed: cfg.Expiry.RefreshTokens.ValidIfNotUsedFor.D(),
			RefreshAbsoluteLife: cfg.Expiry.RefreshTokens.AbsoluteLifetime.D(), RefreshDisableRotation: cfg.Expiry.RefreshTokens.DisableRotation,
		},
		Web: renderer, Logger: log, Metrics: issuer.NewMetrics(reg),
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/", srv)
	auditSvc, err := mountAudit(ctx, cfg, pages, mux, srv, km, store, reg, log)
	if err != nil {
		return err
	}
	if auditSvc != nil {
		defer auditSvc.Close()
	}
	go collectGarbage(ctx, store, cfg, log)

	var servers []*http.Server
	errc := make(chan error, 3)
	start := func(name, addr string, h http.Handler, tlsCfg *tls.Config) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		servers = append(servers, hs)
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		log.Info("listening", "server", name, "address", ln.Addr().String(), "tls", tlsCfg != nil)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
		return nil
	}
	if cfg.Web.HTTPS != "" {
		rl, err := tlsutil.NewReloader(cfg.Web.TLSCert, cfg.Web.TLSKey, log)
		if err != nil {
			return fmt.Errorf("web.tlsCert/web.tlsKey: %w", err)
		}
		if err := rl.Watch(ctx.Done()); err != nil {
			log.Warn("TLS certificate will not reload on change", "err", err)
		}
		tlsCfg := tlsutil.ServerConfig(rl, cfg.Web.TLSMinVersion.Uint16(), cfg.Web.TLSMaxVersion.Uint16())
		if cfg.Audit.Enabled && cfg.Audit.Webhook.ClientCAFile != "" {
			// kube-apiservers may authenticate to the audit sink with a
			// client certificate; the sink verifies it against
			// audit.webhook.clientCAFile. Browsers are not asked for one.
			tlsCfg.ClientAuth = tls.RequestClientCert
		}
		if err := start("https", cfg.Web.HTTPS, mux, tlsCfg); err != nil {
			return err
		}
	}
	if cfg.Web.HTTP != "" {
		if err := start("http", cfg.Web.HTTP, mux, nil); err != nil {
			return err
		}
	}
	if cfg.Telemetry.HTTP != "" {
		tm := http.NewServeMux()
		tm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		tm.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		tm.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		tm.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
			rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if !srv.Ready(rctx) {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		if cfg.Telemetry.EnableProfiling {
			tm.HandleFunc("/debug/pprof/", pprof.Index)
			tm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			tm.HandleFunc("/debug/pprof/profile", pprof.Profile)
			tm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			tm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		if err := start("telemetry", cfg.Telemetry.HTTP, tm, nil); err != nil {
			return err
		}
	}
	log.Info("gatehouse started", "issuer", cfg.Issuer, "storage", cfg.Storage.Type, "connectors", connectorIDs(conns), "signing_algorithm", km.Algorithm())
	if ready != nil {
		ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	return runErr
}

func connectorIDs(conns []issuer.Connector) string {
	ids := make([]string, len(conns))
	for i, c := range conns {
		ids[i] = c.ID
	}
	return strings.Join(ids, ",")
}

// collectGarbage removes expired requests, codes and sessions every five
// minutes (Dex's default frequency).
func collectGarbage(ctx context.Context, store storage.Storage, cfg *config.Config, log *slog.Logger) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var idle, created time.Time
		if d := cfg.Expiry.RefreshTokens.ValidIfNotUsedFor.D(); d > 0 {
			idle = now.Add(-d)
		}
		if d := cfg.Expiry.RefreshTokens.AbsoluteLifetime.D(); d > 0 {
			created = now.Add(-d)
		}
		res, err := store.GarbageCollect(ctx, now, idle, created)
		if err != nil {
			log.Error("garbage collection", "err", err)
			continue
		}
		if !res.IsEmpty() {
			log.Info("garbage collection", "auth_requests", res.AuthRequests, "auth_codes", res.AuthCodes, "device_requests", res.DeviceRequests, "refresh_tokens", res.RefreshTokens)
		}
	}
}
