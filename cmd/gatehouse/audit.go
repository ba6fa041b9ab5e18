package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/forward"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/ship"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Search and follow the audit trail; ship static audit logs to it",
	}
	cmd.AddCommand(newAuditQueryCommand(), newAuditTailCommand(), newAuditShipCommand(), newAuditSinkCommand())
	return cmd
}

// auditOptions translates the config file's audit section for
// audit.New; serve adds the page's Authenticate, Sessions, Registry and
// Logger.
func auditOptions(c *config.Config) (audit.Options, error) {
	a := c.Audit
	o := audit.Options{
		WebhookPath:  a.Webhook.Path,
		BearerTokens: a.Webhook.BearerTokens,
		ClientCAFile: a.Webhook.ClientCAFile,
		MaxAge:       a.Retention.MaxAge.D(),
		MaxEvents:    a.Retention.MaxEvents,
		ViewerGroups: a.ViewerGroups,

		MaxBodyBytes:     a.Webhook.MaxBodyBytes,
		MaxInFlightBytes: a.Webhook.MaxInFlightBytes,
		NoSink:           a.Webhook.Separate,
	}
	typ, dsn, err := auditStorage(c)
	if err != nil {
		return audit.Options{}, err
	}
	o.StorageType, o.StorageDSN = typ, dsn
	for _, f := range a.Forward {
		o.Forward = append(o.Forward, forward.Destination{Name: f.Name, URL: f.URL, CAFile: f.CAFile, BearerToken: f.BearerToken,
			QueueDir: f.QueueDir, MaxQueueBytes: f.MaxQueueBytes})
	}
	return o, nil
}

func auditStorage(c *config.Config) (typ, dsn string, err error) {
	s := c.Audit.Storage
	if s == nil {
		return "", "", errors.New("audit.storage: not set and not derivable from storage (set audit.storage)")
	}
	switch s.Type {
	case config.StorageSQLite3:
		return "sqlite3", s.SQLite3.File, nil
	case config.StoragePostgres:
		return "postgres", postgresConfig(s.Postgres).ConnString(), nil
	case config.StorageMemory:
		return "memory", "", nil
	}
	return "", "", fmt.Errorf("audit.storage.type: %q is not supported (sqlite3, postgres, memory)", s.Type)
}

// auditPage is what the /audit page needs from serve: the logged-in
// viewer (gatehouse's own login) and what to do without one (redirect to
// the login).
type auditPage struct {
	Path            string // where the page is served ("" for the default)
	Authenticate    audit.Authenticate
	Unauthenticated http.Handler
}

// serveAudit builds the audit trail from cfg's audit section, mounts the
// webhook and the page on mux and runs retention and forwarding until ctx
// ends. The caller closes the returned service after the server stops.
// With audit.webhook.clientCAFile the TLS server must request client
// certificates (tls.Config.ClientAuth = tls.RequestClientCert); the sink
// verifies them. st, when not nil, gives the page the users' login
// sessions.
func serveAudit(ctx context.Context, cfg *config.Config, mux *http.ServeMux, st storage.Storage, reg prometheus.Registerer, log *slog.Logger, page auditPage) (*audit.Service, error) {
	o, err := auditOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.Registry, o.Logger = reg, log.With("component", "audit")
	o.Authenticate, o.Unauthenticated = page.Authenticate, page.Unauthenticated
	if page.Path != "" {
		o.PagePath = page.Path
	}
	if st != nil {
		o.Sessions = newAuditSessions(cfg, st)
	}
	svc, err := audit.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	svc.Mount(mux)
	go svc.Run(ctx)
	return svc, nil
}

// maxSessions bounds the sessions the page lists for one user.
const maxSessions = 50

// auditSessions lists a user's login sessions for the /audit page from
// gatehouse's storage. kube-apiserver names the user Prefix + the value
// of Claim in the ID token (audit.users in the config, the same settings
// `gatehouse cluster render` gives kube-apiserver), so the sessions are
// the refresh families whose claim has that value, from any connector.
type auditSessions struct {
	Storage storage.Storage
	Claim   string // preferred_username, email or sub
	Prefix  string
	// IdleLimit and AbsoluteLimit are the refresh tokens' expiry
	// (expiry.refreshTokens; 0: none): a session past either is marked
	// expired until garbage collection removes it.
	IdleLimit, AbsoluteLimit time.Duration
	Now                      func() time.Time // default time.Now
}

func newAuditSessions(cfg *config.Config, st storage.Storage) auditSessions {
	s := auditSessions{Storage: st, Claim: cfg.Audit.Users.Claim,
		IdleLimit: cfg.Expiry.RefreshTokens.ValidIfNotUsedFor.D(), AbsoluteLimit: cfg.Expiry.RefreshTokens.AbsoluteLifetime.D()}
	if s.Claim == "" {
		s.Claim = config.DefaultAuditUsersClaim
	}
	if p := cfg.Audit.Users.Prefix; p != nil {
		s.Prefix = *p
	} else {
		s.Prefix = config.DefaultAuditUsersPrefix
	}
	return s
}

// Sessions implements audit.Sessions. A user name without the prefix
// (a service account, a node, a user of another authenticator) has no
// gatehouse sessions; the claim's value must match exactly.
func (s auditSessions) Sessions(ctx context.Context, auditUser string) ([]audit.Session, error) {
	value, ok := strings.CutPrefix(auditUser, s.Prefix)
	if !ok || value == "" {
		return nil, nil
	}
	var (
		fams []storage.RefreshFamily
		err  error
	)
	if s.Claim == "sub" {
		uid, conn, derr := issuer.DecodeSubject(value)
		if derr != nil {
			return nil, nil // not a subject gatehouse issued
		}
		fams, err = s.Storage.ListRefreshFamilies(ctx, conn, uid)
	} else {
		fams, err = s.Storage.ListRefreshFamiliesByClaim(ctx, s.Claim, value, maxSessions)
	}
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	if len(fams) > maxSessions {
		fams = fams[:maxSessions]
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	out := make([]audit.Session, 0, len(fams))
	for _, f := range fams {
		login := f.Claims.PreferredUsername
		if login == "" {
			login = f.Claims.Username
		}
		t := f.AuthTime
		if t.IsZero() {
			t = f.CreatedAt
		}
		out = append(out, audit.Session{Connector: f.ConnectorID, UpstreamLogin: login, ClientID: f.ClientID, Time: t, LastUsed: f.LastUsed, SourceIP: f.ClientIP, Revoked: f.Revoked,
			Expired: f.IdleExpired(now, s.IdleLimit) || f.AbsoluteExpired(now, s.AbsoluteLimit)})
	}
	return out, nil
}

// storeFlags choose the audit store for the CLI.
type storeFlags struct{ store, config string }

func (f *storeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.store, "store", "", "audit store: a SQLite file or a postgres:// URL")
	cmd.Flags().StringVar(&f.config, "config", "", "gatehouse config file whose audit.storage to read")
}

// open opens the store read-only (query and tail never write): no
// migration transaction waiting for the sink's write lock, no checkpoint
// at exit.
func (f *storeFlags) open(ctx context.Context) (*store.DB, error) {
	switch {
	case (f.store == "") == (f.config == ""):
		return nil, errors.New("give either --store or --config")
	case f.store != "":
		if !strings.Contains(f.store, "://") {
			if _, err := os.Stat(f.store); err != nil {
				return nil, fmt.Errorf("--store: %w", err)
			}
		}
		return store.OpenDSNReadOnly(ctx, f.store)
	}
	c, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	if !c.Audit.Enabled {
		return nil, fmt.Errorf("%s: audit.enabled is false", f.config)
	}
	typ, dsn, err := auditStorage(c)
	if err != nil {
		return nil, err
	}
	if typ == "memory" {
		return nil, errors.New("audit.storage is memory: only the running server has the events; query the /audit page")
	}
	return store.OpenReadOnly(ctx, typ, dsn)
}

// filterFlags are the filters query and tail share.
type filterFlags struct {
	user, group, verb, resource, namespace, name, source, since, until, code string
}

func (f *filterFlags) add(cmd *cobra.Command, times bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "user name as kube-apiserver saw it (e.g. oidc:alice)")
	fl.StringVar(&f.group, "group", "", "one of the user's groups (e.g. oidc:exampleorg:infra-team)")
	fl.StringVar(&f.verb, "verb", "", "verb (get, list, watch, create, update, patch, delete, …)")
	fl.StringVar(&f.resource, "resource", "", "resource (e.g. secrets)")
	fl.StringVar(&f.namespace, "namespace", "", "namespace")
	fl.StringVar(&f.name, "name", "", "object name")
	fl.StringVar(&f.source, "source", "", "sending kube-apiserver or shipper")
	fl.StringVar(&f.code, "code", "", "HTTP response code (e.g. 403)")
	if times {
		fl.StringVar(&f.since, "since", "", "from this time: RFC 3339, a date, or a duration ago (2h, 7d)")
		fl.StringVar(&f.until, "until", "", "before this time (same forms as --since)")
	}
}

func (f *filterFlags) filter(now time.Time) (query.Filter, error) {
	q := query.Filter{User: f.user, Group: f.group, Verb: f.verb, Resource: f.resource, Namespace: f.namespace, Name: f.name, Source: f.source}
	var err error
	if q.Since, err = query.ParseTime(f.since, now); err != nil {
		return q, fmt.Errorf("--since: %w", err)
	}
	if q.Until, err = query.ParseTime(f.until, now); err != nil {
		return q, fmt.Errorf("--until: %w", err)
	}
	if q.Code, err = query.ParseCode(f.code); err != nil {
		return q, fmt.Errorf("--code: %w", err)
	}
	return q, q.Validate()
}

func newAuditQueryCommand() *cobra.Command {
	var sf storeFlags
	var ff filterFlags
	var limit int
	var output, before string
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Search audit events, newest first",
		Example: `  gatehouse audit query --store /var/lib/gatehouse/audit.db --user oidc:alice --since 24h
  gatehouse audit query --config config.yaml --verb delete --resource secrets -o jsonl | jq .objectRef`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if limit <= 0 || limit > query.MaxLimit {
				return fmt.Errorf("--limit: want 1 to %d", query.MaxLimit)
			}
			if before != "" {
				c, err := query.ParseCursor(before)
				if err != nil {
					return fmt.Errorf("--before: %w", err)
				}
				f.Before = &c
			}
			w, err := query.NewWriter(cmd.OutOrStdout(), output)
			if err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			ctx := cmd.Context()
			db, err := sf.open(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			f.Limit, f.IncludeRaw = limit, w.NeedsRaw()
			events, next, err := db.Query(ctx, f)
			if err != nil {
				return err
			}
			if err := w.Write(events); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			if next != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "more events: add --before %s\n", next)
			}
			return nil
		},
	}
	sf.add(cmd)
	ff.add(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", query.DefaultLimit, "events to print")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or jsonl")
	cmd.Flags().StringVar(&before, "before", "", "continue after a previous page (the cursor it printed)")
	return cmd
}

func newAuditTailCommand() *cobra.Command {
	var sf storeFlags
	var ff filterFlags
	var lines int
	var output string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:     "tail",
		Short:   "Print the newest audit events, then follow new ones as they are stored",
		Example: `  gatehouse audit tail --store /var/lib/gatehouse/audit.db --namespace payments -o jsonl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if output == "json" {
				return errors.New("-o: tail writes table or jsonl (a JSON array never ends)")
			}
			w, err := query.NewWriter(cmd.OutOrStdout(), output)
			if err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			f.IncludeRaw = w.NeedsRaw()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			db, err := sf.open(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			last, err := db.LastID(ctx)
			if err != nil {
				return err
			}
			if lines > 0 {
				f.Limit = lines
				recent, _, err := db.Query(ctx, f)
				if err != nil {
					return err
				}
				for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
					recent[i], recent[j] = recent[j], recent[i]
				}
				if err := w.Write(recent); err != nil {
					return err
				}
			}
			for {
				// Every event up to hi that matches is in this answer unless
				// it is full, so unmatched events need not be scanned again.
				hi, err := db.LastID(ctx)
				var events []event.Event
				if err == nil {
					events, err = db.After(ctx, f, last, 1000)
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if len(events) > 0 {
					if err := w.Write(events); err != nil {
						return err
					}
					last = events[len(events)-1].ID
				}
				if len(events) == 1000 {
					continue
				}
				last = max(last, hi)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	sf.add(cmd)
	ff.add(cmd, false)
	cmd.Flags().IntVarP(&lines, "lines", "n", 10, "recent events to print first")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or jsonl")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to look for new events")
	return cmd
}

func newAuditShipCommand() *cobra.Command {
	var o ship.Options
	var tokenFile, caFile, certFile, keyFile, source string
	cmd := &cobra.Command{
		Use:   "ship --file /var/log/kubernetes/audit.log --to URL",
		Short: "Send a kube-apiserver audit log file to the gatehouse audit sink",
		Long: `ship follows the audit log that kube-apiserver's log backend writes
(--audit-log-path), across its rotations (--audit-log-maxsize, plain or
--audit-log-compress backups), and sends the events to the gatehouse audit
sink in batches. Its position is saved in --state-dir after each batch the
sink acknowledges, so a restart resumes without losing or duplicating
events. Run one per control-plane node.`,
		Example: `  gatehouse audit ship --file /var/log/kubernetes/audit.log \
    --to https://gatehouse.example.com/audit/webhook --token-file /etc/gatehouse/audit-token \
    --ca-file /etc/gatehouse/ca.pem --state-dir /var/lib/gatehouse-ship --source cp-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.File == "" || o.URL == "" {
				return errors.New("--file and --to are required")
			}
			u, err := url.Parse(o.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				return fmt.Errorf("--to %q: want an http(s) URL", o.URL)
			}
			if source != "" {
				q := u.Query()
				q.Set("source", source)
				u.RawQuery = q.Encode()
				o.URL = u.String()
			}
			if tokenFile != "" {
				if o.Token != "" {
					return errors.New("give --token or --token-file, not both")
				}
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				o.Token = strings.TrimSpace(string(b))
			}
			if o.Token == "" && certFile == "" {
				return errors.New("the sink needs a bearer token (--token or --token-file) or a client certificate (--cert-file, --key-file)")
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--ca-file %s: no PEM certificates", caFile)
				}
				tr.TLSClientConfig.RootCAs = pool
			}
			if certFile != "" || keyFile != "" {
				c, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("--cert-file/--key-file: %w", err)
				}
				tr.TLSClientConfig.Certificates = []tls.Certificate{c}
			}
			o.Client = &http.Client{Transport: tr, Timeout: time.Minute}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return ship.Run(ctx, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.File, "file", "/var/log/kubernetes/audit.log", "kube-apiserver's --audit-log-path")
	fl.StringVar(&o.URL, "to", "", "the sink's URL (https://gatehouse…/audit/webhook)")
	fl.StringVar(&o.Token, "token", "", "bearer token for the sink (prefer --token-file)")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the bearer token")
	fl.StringVar(&caFile, "ca-file", "", "CA bundle that signed the sink's certificate")
	fl.StringVar(&certFile, "cert-file", "", "client certificate for the sink (instead of a token)")
	fl.StringVar(&keyFile, "key-file", "", "client certificate's key")
	fl.StringVar(&o.StateDir, "state-dir", "/var/lib/gatehouse-ship", "where the position is kept")
	fl.StringVar(&source, "source", "", "name of this node in the audit trail (default: the token's fingerprint)")
	fl.IntVar(&o.BatchSize, "batch-size", 400, "events per batch")
	return cmd
}
