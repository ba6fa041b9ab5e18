package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
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
	log, reg := newProcess(cfg, logOut)
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

	// The sink bounds each body's read itself (sink.Options.BodyTimeout);
	// the servers' ReadTimeout is the backstop.
	ls := newListeners(log, 90*time.Second)
	if err := ls.startWeb(ctx, cfg, mux); err != nil {
		return err
	}
	if cfg.Telemetry.HTTP != "" {
		tm := telemetryMux(reg)
		ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
		for _, p := range []string{"GET /healthz", "GET /healthz/live", "GET /healthz/ready"} {
			tm.HandleFunc(p, ok)
		}
		if err := ls.start("telemetry", cfg.Telemetry.HTTP, tm, nil); err != nil {
			return err
		}
	}
	log.Info("gatehouse audit sink started", "webhook", cfg.Audit.Webhook.Path, "storage", cfg.Audit.Storage.Type,
		"max_inflight_bytes", cfg.Audit.Webhook.MaxInFlightBytes, "max_body_bytes", cfg.Audit.Webhook.MaxBodyBytes)
	if ready != nil {
		ready(ls.addrs)
	}

	runErr := ls.wait(ctx)
	log.Info("shutting down")
	ls.shutdown()
	return runErr
}
