// Package audit is gatehouse's audit trail, assembled: the webhook sink
// that kube-apiserver posts audit events to, the store, retention,
// forwarding to further webhooks, and the /audit page. gatehouse serve
// builds one Service from its config's audit section and mounts it. With
// audit.webhook.separate the trail is split across two processes:
// `gatehouse audit sink` runs the sink, retention and forwarding (a
// Service without a page), and gatehouse serve only the page (NoSink).
//
// The pieces live in sub-packages, each with one job: event (decoding),
// store (SQLite/PostgreSQL), query (filters and output), sink (the
// webhook), forward (further destinations), ship (the log shipper for
// static audit files), web (the page) and metrics.
package audit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/forward"
	"github.com/gatehouse-dev/gatehouse/internal/audit/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sink"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/audit/web"
	"github.com/prometheus/client_golang/prometheus"
)

// Viewer, Authenticate, Session and Sessions are the page's seams, named
// here so that serve needs only this package.
type (
	Viewer       = web.Viewer
	Authenticate = web.Authenticate
	Session      = web.Session
	Sessions     = web.Sessions
)

// Options is the audit trail's configuration (serve translates the
// config file's audit section into it).
type Options struct {
	// StorageType is sqlite3 (default), postgres or memory; StorageDSN
	// the SQLite file or PostgreSQL connection string.
	StorageType string
	StorageDSN  string

	// WebhookPath is where kube-apiserver posts (default /audit/webhook).
	WebhookPath string
	// BearerTokens and ClientCAFile authenticate kube-apiservers; at
	// least one is required.
	BearerTokens []string
	ClientCAFile string
	// MaxBodyBytes and MaxInFlightBytes bound one request body and the
	// bodies held at once (sink.Options; defaults 64 and 128 MiB).
	MaxBodyBytes, MaxInFlightBytes int64

	MaxAge    time.Duration
	MaxEvents int64
	// RetentionInterval is how often retention runs (default 5m).
	RetentionInterval time.Duration

	// PagePath is the page's prefix (default /audit).
	PagePath     string
	ViewerGroups []string
	// Authenticate gives the page's viewer; without it the page is not
	// mounted.
	Authenticate Authenticate
	// Unauthenticated answers page requests without a viewer (e.g. a
	// redirect to the login); default 401.
	Unauthenticated http.Handler
	// Sessions lists a user's logins for the page (optional).
	Sessions Sessions

	Forward []forward.Destination

	// NoSink leaves the webhook, retention and forwarding to another
	// process (`gatehouse audit sink`): this Service serves the page only.
	// The page then needs a store both processes reach (PostgreSQL); with
	// SQLite the file is the sink process's, so the page only says where
	// the trail is.
	NoSink bool

	// Registry receives the metrics (optional).
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Service is a running audit trail.
type Service struct {
	o       Options
	Store   *store.DB
	sink    *sink.Handler
	page    http.Handler
	fwd     *forward.Forwarder
	metrics *metrics.Metrics
	once    sync.Once
}

// New opens the store and builds the sink, the forwarders and the page.
// Call Run to start retention and forwarding, and Close when done.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.WebhookPath == "" {
		o.WebhookPath = "/audit/webhook"
	}
	if o.PagePath == "" {
		o.PagePath = "/audit"
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var cas *x509.CertPool
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("audit webhook clientCAFile: %w", err)
		}
		cas = x509.NewCertPool()
		if !cas.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("audit webhook clientCAFile %s: no PEM certificates", o.ClientCAFile)
		}
	}
	if o.NoSink && o.StorageType != "postgres" {
		return &Service{o: o, page: elsewhere(o.Logger)}, nil
	}
	db, err := store.Open(ctx, o.StorageType, o.StorageDSN)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, Store: db, metrics: metrics.New(o.Registry)}
	if o.NoSink {
		if err := s.newPage(); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	fail := func(err error) (*Service, error) {
		db.Close()
		return nil, err
	}
	var fwd func() sink.Spool
	if len(o.Forward) > 0 {
		f, err := forward.New(o.Forward, forward.Options{Metrics: s.metrics, Logger: o.Logger})
		if err != nil {
			return fail(err)
		}
		s.fwd, fwd = f, func() sink.Spool { return f.NewSpool() }
	}
	s.sink, err = sink.New(sink.Options{Store: db, BearerTokens: o.BearerTokens, ClientCAs: cas, Forward: fwd, Metrics: s.metrics, Logger: o.Logger,
		MaxBodyBytes: o.MaxBodyBytes, MaxInFlightBytes: o.MaxInFlightBytes})
	if err != nil {
		return fail(err)
	}
	if err := s.newPage(); err != nil {
		return fail(err)
	}
	return s, nil
}

// newPage builds the page when the options ask for one.
func (s *Service) newPage() error {
	if s.o.Authenticate == nil {
		return nil
	}
	page, err := web.New(web.Options{Events: s.Store, Authenticate: s.o.Authenticate, ViewerGroups: s.o.ViewerGroups, Sessions: s.o.Sessions,
		Prefix: s.o.PagePath, Unauthenticated: s.o.Unauthenticated, Logger: s.o.Logger})
	if err == nil {
		s.page = page
	}
	return err
}

// elsewhere is the page of a process that cannot reach the store: the
// sink runs in its own process on its own SQLite file.
func elsewhere(log *slog.Logger) http.Handler {
	log.Warn("audit: the sink runs in its own process (audit.webhook.separate) on SQLite, which only that process opens: /audit shows no events here; keep audit.storage in PostgreSQL to see them, or run `gatehouse audit query` where the sink runs")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "The audit trail is kept by the audit sink's own process (audit.webhook.separate) in a SQLite file that only that process opens.\n"+
			"Query it where the sink runs (gatehouse audit query --config ...), or keep audit.storage in PostgreSQL to see it on this page.", http.StatusNotFound)
	})
}

// Sink is the webhook handler (POST EventList).
func (s *Service) Sink() http.Handler { return s.sink }

// Page is the /audit page handler, or nil without Options.Authenticate.
func (s *Service) Page() http.Handler {
	if s.page == nil {
		return nil
	}
	return s.page
}

// Mount registers the webhook at Options.WebhookPath (unless NoSink) and
// the page under Options.PagePath on mux.
func (s *Service) Mount(mux *http.ServeMux) {
	if s.sink != nil {
		mux.Handle("POST "+s.o.WebhookPath, s.sink)
	}
	if s.page != nil {
		mux.Handle("GET "+s.o.PagePath, s.page)
		mux.Handle("GET "+s.o.PagePath+"/", s.page)
	}
}

// Run applies retention and delivers forwarded batches until ctx ends
// (nothing with NoSink: the sink's process does both).
func (s *Service) Run(ctx context.Context) {
	if s.o.NoSink {
		<-ctx.Done()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		s.Store.RunRetention(ctx, store.Retention{MaxAge: s.o.MaxAge, MaxEvents: s.o.MaxEvents}, s.o.RetentionInterval, s.o.Logger)
	})
	if s.fwd != nil {
		wg.Go(func() { s.fwd.Run(ctx) })
	}
	wg.Wait()
}

// Close closes the store.
func (s *Service) Close() error {
	err := errors.New("already closed")
	s.once.Do(func() {
		err = nil
		if s.Store != nil {
			err = s.Store.Close()
		}
	})
	return err
}
