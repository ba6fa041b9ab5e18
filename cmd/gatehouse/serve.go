package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/retry"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/keys"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

type serveFlags struct {
	config string
	dev    bool
	devDir string
	// Dex's `serve` flags.
	dex      config.Overrides
	grpcAddr string
	// shutdownDelay keeps serving after SIGTERM, readiness failing, so
	// that load balancers stop sending before the listeners close.
	shutdownDelay time.Duration
}

// newServeCommand builds `serve`. dexImage is set when the binary runs as
// Dex's image entrypoint does (`dex serve ...`, see main): the config
// file is then rendered as that entrypoint renders it (gomplate).
func newServeCommand(dexImage bool) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags] [config file]",
		Short: "Run the OpenID Connect issuer (reads Dex's config.yaml; takes dex serve's command line)",
		Long: `Run the OpenID Connect issuer.

gatehouse reads Dex's config.yaml format unchanged (plus a few extension
keys, see docs/configuration.md) and takes dex serve's command line: the
config file as the argument (or --config FILE), and --web-http-addr,
--web-https-addr and --telemetry-addr, which replace web.http, web.https
and telemetry.http when given (so a file without a web section works, as
with Dex's Helm chart). With --dev it runs on embedded defaults: SQLite in
a data folder, a generated CA and serving certificate, a client
"kubernetes" and a local user, and prints how to point kube-apiserver and
kubectl at it.

On SIGTERM or Ctrl-C, /healthz/ready fails at once; after --shutdown-delay
the listeners close and requests in flight finish (up to 15s).`,
		Example: `  gatehouse serve config.yaml
  gatehouse serve --web-http-addr 0.0.0.0:5556 --telemetry-addr 0.0.0.0:5558 /etc/dex/config.yaml
  gatehouse serve --dev`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := f.configPath(args)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var cfg *config.Config
			var dev *devSetup
			if f.dev {
				dev, err = prepareDev(f.devDir)
				if err != nil {
					return err
				}
				cfg = dev.config
			} else {
				cfg, err = config.LoadWith(path, config.LoadOptions{Overrides: f.dex, Template: dexImage && config.IsTemplateName(path)})
				if err != nil {
					return err
				}
			}
			return serveWith(ctx, cfg, runOptions{
				LogOut: cmd.ErrOrStderr(), ShutdownDelay: f.shutdownDelay,
				Ready: func() {
					if dev != nil {
						dev.printInstructions(cmd.OutOrStdout())
					}
				},
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.config, "config", "", "Dex-format configuration file (or give it as the argument, as dex serve takes it)")
	fs.BoolVar(&f.dev, "dev", false, "run on embedded defaults (SQLite, local user, self-signed TLS) for a first try")
	fs.StringVar(&f.devDir, "dev-dir", "gatehouse-data", "data folder of --dev (database, certificates, credentials)")
	fs.StringVar(&f.dex.WebHTTP, "web-http-addr", "", "Web HTTP address (dex serve's flag: replaces web.http)")
	fs.StringVar(&f.dex.WebHTTPS, "web-https-addr", "", "Web HTTPS address (dex serve's flag: replaces web.https; needs web.tlsCert and web.tlsKey)")
	fs.StringVar(&f.dex.Telemetry, "telemetry-addr", "", "Telemetry address (dex serve's flag: replaces telemetry.http)")
	fs.StringVar(&f.grpcAddr, "grpc-addr", "", "gRPC API address (dex serve's flag; gatehouse has no gRPC API and refuses it)")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep serving this long with /healthz/ready failing before closing the listeners (e.g. 5s behind a Kubernetes Service)")
	return cmd
}

// configPath returns the config file given as the argument or --config,
// and refuses what cannot be served.
func (f *serveFlags) configPath(args []string) (string, error) {
	path := f.config
	if len(args) == 1 {
		if path != "" && path != args[0] {
			return "", fmt.Errorf("the config file is given twice (--config %s and %s); give it once", path, args[0])
		}
		path = args[0]
	}
	if f.grpcAddr != "" {
		return "", fmt.Errorf("--grpc-addr %s: gatehouse has no gRPC API (clients, users and connectors are configured in the config file: staticClients, staticPasswords, connectors); leave --grpc-addr out (in Dex's Helm chart: grpc.enabled: false)", f.grpcAddr)
	}
	if f.dev {
		if path != "" {
			return "", errors.New("give either a config file or --dev, not both")
		}
		for name, v := range map[string]string{"--web-http-addr": f.dex.WebHTTP, "--web-https-addr": f.dex.WebHTTPS, "--telemetry-addr": f.dex.Telemetry} {
			if v != "" {
				return "", fmt.Errorf("%s cannot be combined with --dev, which listens on %s (telemetry %s)", name, devListen, devTelemetry)
			}
		}
		return "", nil
	}
	if path == "" {
		return "", errors.New("give the config file (gatehouse serve config.yaml, as dex serve takes it, or --config config.yaml), or --dev for a first try")
	}
	return path, nil
}

// runOptions are how serveWith runs, besides the config.
type runOptions struct {
	// LogOut receives the logs.
	LogOut io.Writer
	// Ready is called once every listener is up.
	Ready func()
	// ShutdownDelay: see --shutdown-delay.
	ShutdownDelay time.Duration
	// Draining, when set, is called once /healthz/ready has started to
	// fail after ctx ended (tests use it).
	Draining func()
}

// serve runs the issuer until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, logOut io.Writer, ready func()) error {
	return serveWith(ctx, cfg, runOptions{LogOut: logOut, Ready: ready})
}

// serveWith runs the issuer until ctx ends. Then /healthz/ready fails at
// once, the listeners stay open for ShutdownDelay (so that endpoints and
// load balancers drop this process first), close, and requests in flight
// finish (at most drainTimeout).
func serveWith(ctx context.Context, cfg *config.Config, o runOptions) error {
	log, reg := newProcess(cfg, o.LogOut)
	store, err := openStorage(ctx, cfg.Storage, log)
	if err != nil {
		return err
	}
	defer store.Close()

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
	logWarnings(log, cfg)
	if err != nil {
		return err
	}
	if err := addStoredConnectors(ctx, store, conns, cfg, log, reg); err != nil {
		return err
	}
	if err := conns.start(ctx, config.ContinueOnConnectorFailure(), connectorStartWait); err != nil {
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
		Issuer: cfg.Issuer, Storage: store, Keys: km, Clients: clients, Connectors: conns.list,
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

	ls := newListeners(log, 60*time.Second)
	if err := ls.startWeb(ctx, cfg, mux); err != nil {
		return err
	}
	var draining atomic.Bool
	if cfg.Telemetry.HTTP != "" {
		tm := telemetryMux(reg)
		tm.Handle("GET /healthz", healthHandler(conns, &draining))
		tm.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		tm.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			}
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
		if err := ls.start("telemetry", cfg.Telemetry.HTTP, tm, nil); err != nil {
			return err
		}
	}
	log.Info("gatehouse started", "issuer", cfg.Issuer, "storage", cfg.Storage.Type, "connectors", connectorIDs(conns.list), "signing_algorithm", km.Algorithm())
	if o.Ready != nil {
		o.Ready()
	}

	runErr := ls.wait(ctx)
	draining.Store(true)
	if o.Draining != nil {
		o.Draining()
	}
	if runErr == nil && o.ShutdownDelay > 0 {
		log.Info("shutting down: readiness fails, still serving", "delay", o.ShutdownDelay.String())
		time.Sleep(o.ShutdownDelay)
	}
	log.Info("shutting down: listeners closed, finishing requests in flight", "timeout", drainTimeout.String())
	ls.shutdown()
	log.Info("stopped")
	return runErr
}

// logWarnings logs what the config asks to log rather than refuse: the
// unknown keys of the file and of the connectors' configs, with
// DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=false.
func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("config key ignored", "problem", w.Error())
	}
}

// healthHandler answers /healthz with Dex's shape of details: one entry
// per check, here the storage-independent process state and every
// connector (available or not, with the last error). It answers 200 while
// the process runs: an unreachable upstream is not a reason for a
// liveness probe to restart it.
func healthHandler(conns *connectorSet, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := "ok"
		if draining.Load() {
			status = "shutting down"
		}
		body := struct {
			Status     string         `json:"status"`
			Connectors []retry.Status `json:"connectors"`
		}{status, conns.statuses()}
		for _, c := range body.Connectors {
			if !c.Available && status == "ok" {
				status = "degraded"
			}
		}
		body.Status = status
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
	})
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
