// Command gatehouse-proxy is the impersonating proxy for clusters whose
// API server cannot be configured for OIDC or an audit webhook (managed
// control planes): it authenticates gatehouse's tokens as kube-apiserver
// would, forwards with its own credentials and Impersonate-* headers, and
// sends the audit trail to gatehouse (docs/proxy.md). It is a binary of
// its own because it links k8s.io/apiserver's authentication and filters,
// which `gatehouse serve` keeps out for its memory; `gatehouse proxy`
// runs it.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/proxy"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-proxy:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := proxy.Options{}
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:           "gatehouse-proxy",
		Short:         "Authenticate gatehouse tokens in front of a cluster's API server and forward with impersonation",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			o.Log = log
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Listen, "listen", "0.0.0.0:8443", "HTTPS listen address")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", "", "serving certificate (PEM), reloaded when it changes; without it a self-signed development certificate")
	fs.StringVar(&o.TLSKeyFile, "tls-key-file", "", "serving key (PEM)")
	fs.StringVar(&o.AuthenticationConfig, "authentication-config", "", "AuthenticationConfiguration (apiserver.config.k8s.io/v1) whose jwt authenticators authenticate tokens, as `gatehouse cluster render` writes it (required)")
	fs.StringVar(&o.UpstreamKubeconfig, "upstream-kubeconfig", "", "kubeconfig with the proxy's own credentials for the API server (default: the in-cluster ServiceAccount)")
	fs.BoolVar(&o.UpstreamHTTP2, "upstream-http2", false, "send plain requests to the API server over one HTTP/2 connection (default: HTTP/1.1 connections, measured faster; upgrades always use HTTP/1.1)")
	fs.StringVar(&o.AuditPolicy, "audit-policy", "", "audit policy file (audit.k8s.io/v1 Policy); default: Metadata level for every request")
	fs.StringVar(&o.AuditWebhookConfig, "audit-webhook-config", "", "kubeconfig-format audit webhook configuration for gatehouse's audit sink (audit-webhook.kubeconfig); absent: no audit trail")
	fs.DurationVar(&o.AuditBatchMaxWait, "audit-webhook-batch-max-wait", 5*time.Second, "longest an audit event waits before its batch is sent")
	fs.StringVar(&o.ClusterName, "cluster-name", "", "this cluster's name: the audit events' source in gatehouse")
	fs.StringVar(&o.TelemetryAddr, "telemetry-addr", "0.0.0.0:5558", "address of /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, fail /readyz for this long before closing the listener (let load balancers notice)")
	fs.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func newLogger(format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use json or text", format)
}
