package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"k8s.io/apiserver/pkg/audit"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// Options are gatehouse-proxy's settings (its flags).
type Options struct {
	Listen               string
	TLSCertFile          string
	TLSKeyFile           string
	AuthenticationConfig string
	UpstreamKubeconfig   string
	// UpstreamHTTP2 sends plain requests to the API server over one
	// HTTP/2 connection instead of HTTP/1.1 connections.
	UpstreamHTTP2      bool
	AuditPolicy        string
	AuditWebhookConfig string
	AuditBatchMaxWait  time.Duration
	ClusterName        string
	TelemetryAddr      string
	ShutdownDelay      time.Duration
	// StateDir holds the dev certificate and the audit config copy;
	// default: a new temporary directory.
	StateDir string
	Log      *slog.Logger
	// Ready, when set, is called with the listening addresses.
	Ready func(proxyAddr, telemetryAddr string)
}

// drainTimeout bounds how long requests in flight may take to finish
// after the listener closes; watches and upgrades are cut after it.
const drainTimeout = 15 * time.Second

// Validate checks the settings that need no file access.
func (o *Options) Validate() error {
	if o.AuthenticationConfig == "" {
		return errors.New("--authentication-config is required: the AuthenticationConfiguration (authentication-config.yaml) that `gatehouse cluster render` writes")
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return errors.New("--tls-cert-file and --tls-key-file go together: give both, or neither for a self-signed development certificate")
	}
	if o.AuditWebhookConfig != "" && o.ClusterName == "" {
		return errors.New("--cluster-name is required with --audit-webhook-config: it names this cluster as the audit events' source")
	}
	if o.Listen == "" {
		return errors.New("--listen is empty")
	}
	return nil
}

// Run serves until ctx ends, then drains and returns.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.StateDir == "" {
		dir, err := os.MkdirTemp("", "gatehouse-proxy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.StateDir = dir
	}
	compiler := authenticationcel.NewDefaultCompiler()
	acfg, err := LoadAuthenticationConfig(o.AuthenticationConfig, compiler)
	if err != nil {
		return err
	}
	authn, err := NewAuthenticator(ctx, acfg, compiler)
	if err != nil {
		return fmt.Errorf("--authentication-config %s: %w", o.AuthenticationConfig, err)
	}
	rc, err := LoadUpstream(o.UpstreamKubeconfig)
	if err != nil {
		return err
	}
	up, err := NewUpstream(rc, o.UpstreamHTTP2)
	if err != nil {
		return err
	}
	imp, err := NewImpersonationAuthorizer(rc)
	if err != nil {
		return err
	}
	pol, err := LoadAuditPolicy(o.AuditPolicy)
	if err != nil {
		return err
	}
	var sink audit.Sink
	if o.AuditWebhookConfig == "" {
		log.Warn("no --audit-webhook-config: requests through the proxy leave no audit trail in gatehouse")
	} else {
		backend, err := NewAuditBackend(AuditOptions{WebhookConfig: o.AuditWebhookConfig, Source: o.ClusterName, MaxBatchWait: o.AuditBatchMaxWait}, log)
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		if err := backend.Run(stop); err != nil {
			return fmt.Errorf("audit backend: %w", err)
		}
		defer func() { close(stop); backend.Shutdown() }()
		sink = backend
	}
	tlsConfig, err := serverTLS(o, log, ctx.Done())
	if err != nil {
		return err
	}

	handler := Chain{Authenticator: authn, Impersonation: imp, Upstream: up, AuditSink: sink, AuditPolicy: pol, Log: log}.Handler()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.Listen, err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: tlsConfig, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	var draining atomic.Bool
	var tln net.Listener
	var tsrv *http.Server
	if o.TelemetryAddr != "" {
		if tln, err = net.Listen("tcp", o.TelemetryAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--telemetry-addr %s: %w", o.TelemetryAddr, err)
		}
		tsrv = &http.Server{Handler: telemetry(authn, &draining), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = tsrv.Serve(tln) }()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("gatehouse-proxy listening", "addr", ln.Addr().String(), "upstream", up.URL.String(), "jwtAuthenticators", len(acfg.JWT), "cluster", o.ClusterName)
	if o.Ready != nil {
		taddr := ""
		if tln != nil {
			taddr = tln.Addr().String()
		}
		o.Ready(ln.Addr().String(), taddr)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	if o.ShutdownDelay > 0 {
		log.Info("shutting down: /readyz fails, waiting before closing the listener", "delay", o.ShutdownDelay)
		time.Sleep(o.ShutdownDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if tsrv != nil {
		_ = tsrv.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serverTLS returns the serving TLS config: the given pair, reloaded
// when the files change, or a self-signed development certificate. The
// server asks for (but does not require) a client certificate so that
// it can refuse requests that present one (clientcert.go).
func serverTLS(o Options, log *slog.Logger, stop <-chan struct{}) (*tls.Config, error) {
	cert, key := o.TLSCertFile, o.TLSKeyFile
	if cert == "" {
		host, _, _ := net.SplitHostPort(o.Listen)
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if host != "" && host != "0.0.0.0" && host != "::" && !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
		b, err := tlsutil.NewBundle(hosts, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		p, err := b.WriteDir(filepath.Join(o.StateDir, "tls"))
		if err != nil {
			return nil, err
		}
		log.Warn("no --tls-cert-file: serving a self-signed development certificate; clients must trust its CA", "ca", p.CACert, "hosts", hosts)
		cert, key = p.ServerCert, p.ServerKey
	}
	r, err := tlsutil.NewReloader(cert, key, log)
	if err != nil {
		return nil, err
	}
	if err := r.Watch(stop); err != nil {
		return nil, err
	}
	c := tlsutil.ServerConfig(r, tls.VersionTLS12, 0)
	c.ClientAuth = tls.RequestClientCert
	return c, nil
}

// telemetry serves /healthz (the process is up), /readyz (every issuer's
// keys are loaded and the proxy is not draining) and /metrics
// (k8s.io/apiserver's authentication, impersonation and audit metrics,
// with Go's).
func telemetry(authn *Authenticator, draining *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := authn.Ready(); err != nil {
			http.Error(w, "issuer keys not loaded yet: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", legacyregistry.Handler())
	return mux
}
