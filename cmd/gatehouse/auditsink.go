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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// newAuditSinkCommand runs the audit sink alone. It is a command of its
// own rather than a mode of serve because the two share nothing at run
// time: the sink opens neither gatehouse's storage nor its signing keys
// nor its connectors (GitHub), so a sink process starts, runs and fails
// without them, and the issuer process without it. `ps`, the pod's
// command and its logs say which one is which.
func newAuditSinkCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "sink --config FILE",
		Short: "Run only the audit sink: kube-apiserver's webhook, the store, retention and forwarding",
		Long: `Run the audit sink in its own process, so that an audit flood or a full
audit disk never reaches logins.

It reads the same configuration file as gatehouse serve and uses its audit
section (webhook, storage, retention, forward), web.http/web.https (and the
TLS files) to listen for kube-apiserver, telemetry.http for /metrics and
/healthz, and logger. Set audit.webhook.separate: true so that gatehouse serve
leaves the webhook to this process and serves only the /audit page (which
needs the audit store in PostgreSQL to show it; see docs/audit.md).

Its memory is bounded by audit.webhook.maxInFlightBytes; docs/audit.md gives
the arithmetic for a container's memory limit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--config FILE is required (gatehouse's configuration, with the audit section)")
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			if !cfg.Audit.Enabled {
				return fmt.Errorf("%s: audit.enabled is not true: the sink has nothing to do (set audit.enabled and audit.webhook)", file)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAuditSink(ctx, cfg, cmd.ErrOrStderr(), nil)
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "gatehouse's configuration file (Dex format with the audit section)")
	return cmd
}

// runAuditSink serves the audit sink until ctx ends; ready, when set, is
// called once it listens.
func runAuditSink(ctx context.Context, cfg *config.Config, logOut io.Writer, ready func(addrs map[string]string)) error {
	log := newLogger(cfg.Logger, logOut)
	slog.SetDefault(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	o, err := auditOptions(cfg)
	if err != nil {
		return err
	}
	o.NoSink = false // this is the sink's own process
	o.Registry, o.Logger = reg, log.With("component", "audit")
	svc, err := audit.New(ctx, o)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer svc.Close()
	mux := http.NewServeMux()
	svc.Mount(mux)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go svc.Run(runCtx)

	var servers []*http.Server
	addrs := map[string]string{}
	errc := make(chan error, 3)
	listen := func(name, addr string, h http.Handler, tlsCfg *tls.Config) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
		}
		// The sink bounds each body's read itself (sink.Options.BodyTimeout);
		// ReadTimeout is the backstop.
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 90 * time.Second,
			IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		servers = append(servers, hs)
		addrs[name] = ln.Addr().String()
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
		if cfg.Audit.Webhook.ClientCAFile != "" {
			tlsCfg.ClientAuth = tls.RequestClientCert // the sink verifies the chain itself
		}
		if err := listen("https", cfg.Web.HTTPS, mux, tlsCfg); err != nil {
			return err
		}
	}
	if cfg.Web.HTTP != "" {
		if err := listen("http", cfg.Web.HTTP, mux, nil); err != nil {
			return err
		}
	}
	if cfg.Telemetry.HTTP != "" {
		tm := http.NewServeMux()
		tm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
		for _, p := range []string{"GET /healthz", "GET /healthz/live", "GET /healthz/ready"} {
			tm.HandleFunc(p, ok)
		}
		if err := listen("telemetry", cfg.Telemetry.HTTP, tm, nil); err != nil {
			return err
		}
	}
	log.Info("gatehouse audit sink started", "webhook", cfg.Audit.Webhook.Path, "storage", cfg.Audit.Storage.Type,
		"max_inflight_bytes", cfg.Audit.Webhook.MaxInFlightBytes, "max_body_bytes", cfg.Audit.Webhook.MaxBodyBytes)
	if ready != nil {
		ready(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	shutdownCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	return runErr
}
