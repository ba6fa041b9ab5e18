// Package audit is gatehouse's audit trail, assembled: the webhook sink
// that kube-apiserver posts audit events to, the store, retention,
// forwarding to further webhooks, and the /audit page. gatehouse serve
// builds one Service from its config's audit section and mounts it.
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

	// Registry receives the metrics (optional).
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Service is a running audit trail.
type Service struct {
	o       Options
	Store   *store.DB
	sink    *sink.Handler
	page    *web.Handler
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
	db, err := store.Open(ctx, o.StorageType, o.StorageDSN)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, Store: db, metrics: metrics.New(o.Registry)}
	fail := func(err error) (*Service, error) {
		db.Close()
		return nil, err
	}
	var fwd func([]byte) error
	if len(o.Forward) > 0 {
		f, err := forward.New(o.Forward, forward.Options{Metrics: s.metrics, Logger: o.Logger})
		if err != nil {
			return fail(err)
		}
		s.fwd, fwd = f, f.Enqueue
	}
	s.sink, err = sink.New(sink.Options{Store: db, BearerTokens: o.BearerTokens, ClientCAs: cas, Forward: fwd, Metrics: s.metrics, Logger: o.Logger})
	if err != nil {
		return fail(err)
	}
	if o.Authenticate != nil {
		s.page, err = web.New(web.Options{Events: db, Authenticate: o.Authenticate, ViewerGroups: o.ViewerGroups, Sessions: o.Sessions,
			Prefix: o.PagePath, Unauthenticated: o.Unauthenticated, Logger: o.Logger})
		if err != nil {
			return fail(err)
		}
	}
	return s, nil
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

// Mount registers the webhook at Options.WebhookPath and the page under
// Options.PagePath on mux.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.Handle("POST "+s.o.WebhookPath, s.sink)
	if s.page != nil {
		mux.Handle("GET "+s.o.PagePath, s.page)
		mux.Handle("GET "+s.o.PagePath+"/", s.page)
	}
}

// Run applies retention and delivers forwarded batches until ctx ends.
func (s *Service) Run(ctx context.Context) {
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
	s.once.Do(func() { err = s.Store.Close() })
	return err
}
