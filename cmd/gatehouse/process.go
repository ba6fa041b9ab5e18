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
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// What `gatehouse serve` and `gatehouse audit sink` share: the logger,
// the Prometheus registry, web.http/web.https and telemetry.http
// listeners, and the shutdown that lets requests in flight finish.

// drainTimeout bounds how long requests in flight may take to finish
// after the listeners close.
const drainTimeout = 15 * time.Second

// newProcess makes a server process's logger (also the default one) and
// its registry with the Go and process collectors.
func newProcess(cfg *config.Config, logOut io.Writer) (*slog.Logger, *prometheus.Registry) {
	log := newLogger(cfg.Logger, logOut)
	slog.SetDefault(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return log, reg
}

func newLogger(cfg config.Logger, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.Format == "text" {
		opts.ReplaceAttr = quoteDEL
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// quoteDEL completes the text handler's escaping for people reading logs
// on a terminal. The handler quotes (strconv.Quote) every value holding a
// control, a format character such as a bidi override, or invalid UTF-8,
// except DEL (0x7f), which JSON lets through raw and slog with it: a value
// holding one (usernames and errors come from requests) is rendered by
// termsafe, which quotes it, and the handler quotes that again.
func quoteDEL(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch v := a.Value.Any().(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	case fmt.Stringer:
		s = v.String()
	default:
		return a
	}
	if strings.IndexByte(s, 0x7f) >= 0 {
		a.Value = slog.StringValue(termsafe.String(s))
	}
	return a
}

// listeners are a process's HTTP servers: started one by one, waited on
// together, shut down together.
type listeners struct {
	log *slog.Logger
	// writeTimeout is each server's WriteTimeout.
	writeTimeout time.Duration
	servers      []*http.Server
	// addrs maps a server's name to the address it listens on.
	addrs map[string]string
	errc  chan error
}

func newListeners(log *slog.Logger, writeTimeout time.Duration) *listeners {
	return &listeners{log: log, writeTimeout: writeTimeout, addrs: map[string]string{}, errc: make(chan error, 3)}
}

// start listens on addr and serves h there, over TLS when tlsCfg is set.
func (l *listeners) start(name, addr string, h http.Handler, tlsCfg *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: l.writeTimeout,
		IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelWarn)}
	l.servers = append(l.servers, hs)
	l.addrs[name] = ln.Addr().String()
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	l.log.Info("listening", "server", name, "address", ln.Addr().String(), "tls", tlsCfg != nil)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
	return nil
}

// startWeb serves h on web.https (with a certificate reloaded when its
// files change) and web.http, as configured. With audit.webhook's
// clientCAFile, TLS clients are asked for a certificate: kube-apiservers
// may authenticate to the audit sink with one, which the sink verifies
// against that CA; browsers are not asked.
func (l *listeners) startWeb(ctx context.Context, cfg *config.Config, h http.Handler) error {
	if cfg.Web.HTTPS != "" {
		rl, err := tlsutil.NewReloader(cfg.Web.TLSCert, cfg.Web.TLSKey, l.log)
		if err != nil {
			return fmt.Errorf("web.tlsCert/web.tlsKey: %w", err)
		}
		if err := rl.Watch(ctx.Done()); err != nil {
			l.log.Warn("TLS certificate will not reload on change", "err", err)
		}
		tlsCfg := tlsutil.ServerConfig(rl, cfg.Web.TLSMinVersion.Uint16(), cfg.Web.TLSMaxVersion.Uint16())
		if cfg.Audit.Enabled && cfg.Audit.Webhook.ClientCAFile != "" {
			tlsCfg.ClientAuth = tls.RequestClientCert
		}
		if err := l.start("https", cfg.Web.HTTPS, h, tlsCfg); err != nil {
			return err
		}
	}
	if cfg.Web.HTTP != "" {
		if err := l.start("http", cfg.Web.HTTP, h, nil); err != nil {
			return err
		}
	}
	return nil
}

// telemetryMux is the telemetry server's mux with GET /metrics for reg;
// the caller adds the health checks.
func telemetryMux(reg *prometheus.Registry) *http.ServeMux {
	tm := http.NewServeMux()
	tm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return tm
}

// wait blocks until ctx ends (nil) or a server fails (its error).
func (l *listeners) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-l.errc:
		return err
	}
}

// shutdown closes the listeners and lets the requests in flight finish,
// all servers at once, for at most drainTimeout.
func (l *listeners) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, hs := range l.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(ctx); err != nil {
				l.log.Warn("shutdown: requests still in flight were cut", "err", err)
			}
		}()
	}
	wg.Wait()
}
