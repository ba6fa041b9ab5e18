package config

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Audit is gatehouse's audit trail (extension section "audit"): a sink for
// kube-apiserver's audit webhook, a store, the /audit page and forwarding.
type Audit struct {
	// Enabled turns the audit trail on; the other keys are checked only then.
	Enabled bool `json:"enabled"`
	// Storage of audit events, same shape as the main storage section.
	// nil (the default): an sqlite file audit.db next to the main sqlite
	// file, or the main postgres database, or memory with memory storage.
	Storage *Storage `json:"storage"`
	// Webhook is the endpoint kube-apiserver's audit webhook backend posts
	// EventLists to.
	Webhook AuditWebhook `json:"webhook"`
	// Retention bounds the store.
	Retention AuditRetention `json:"retention"`
	// ViewerGroups may open the /audit page (groups as the connectors give
	// them, e.g. "exampleorg:infra-team", without kube-apiserver's prefix).
	ViewerGroups []string `json:"viewerGroups"`
	// Forward sends the same batches on to other webhooks (Falco, a SIEM).
	Forward []AuditForward `json:"forward"`
	// Users says how kube-apiserver names the users in audit events, so
	// that the /audit page can show a user's login sessions: the same
	// claim and prefix as kube-apiserver's OIDC settings (what
	// `gatehouse cluster render` writes).
	Users AuditUsers `json:"users"`
}

// AuditUsers is kube-apiserver's username mapping.
type AuditUsers struct {
	// Claim that became the username: preferred_username (the default,
	// as `gatehouse cluster render` sets it), email or sub.
	Claim string `json:"claim"`
	// Prefix put before the claim (default "oidc:"; "" for none; with the
	// legacy flags, email gets none).
	Prefix *string `json:"prefix"`
}

// AuditWebhook is the audit sink endpoint. It must be authenticated: with
// bearer tokens, a client CA, or both.
type AuditWebhook struct {
	// Path on the web server (not under the issuer path); default
	// /audit/webhook.
	Path string `json:"path"`
	// BearerTokens accepted in "Authorization: Bearer ...".
	BearerTokens []string `json:"bearerTokens"`
	// BearerTokensEnv names an environment variable holding more tokens,
	// separated by commas or white space; Parse adds them to BearerTokens.
	BearerTokensEnv string `json:"bearerTokensEnv"`
	// ClientCAFile: PEM CA bundle; a client certificate signed by it is
	// accepted (mTLS, needs web.https).
	ClientCAFile string `json:"clientCAFile"`
	// MaxBodyBytes bounds one request body (default 64 MiB); a larger
	// batch is answered 413, before reading when its Content-Length says
	// so.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// MaxInFlightBytes is the memory budget of the sink: the bytes of the
	// request bodies it holds at once, counted from their first byte
	// (default 128 MiB, at least MaxBodyBytes). A body that does not fit
	// is answered 429 with Retry-After. docs/audit.md gives the memory a
	// process needs for a budget.
	MaxInFlightBytes int64 `json:"maxInFlightBytes"`
	// Separate runs the sink in its own process, `gatehouse audit sink`
	// (the webhook, retention and forwarding), so that an audit flood or
	// a full audit disk cannot reach logins; `gatehouse serve` then serves
	// only the /audit page.
	Separate bool `json:"separate"`
}

// AuditRetention bounds the audit store; whichever limit is reached first
// deletes the oldest events.
type AuditRetention struct {
	// MaxAge of stored events (default 720h, 30 days).
	MaxAge Duration `json:"maxAge"`
	// MaxEvents kept (default 10,000,000).
	MaxEvents int64 `json:"maxEvents"`
}

// AuditForward is one further destination for the audit batches.
type AuditForward struct {
	// Name identifies the destination in metrics and logs; unique.
	Name string `json:"name"`
	// URL receives POSTed EventLists.
	URL string `json:"url"`
	// CAFile verifies the destination's certificate (default: system roots).
	CAFile string `json:"caFile"`
	// BearerToken sent to the destination.
	BearerToken string `json:"bearerToken"`
	// BearerTokenEnv names an environment variable holding BearerToken.
	BearerTokenEnv string `json:"bearerTokenEnv"`
	// QueueDir holds batches not yet delivered. Default: forward/<name>
	// next to the sqlite database; required with postgres or memory storage.
	QueueDir string `json:"queueDir"`
	// MaxQueueBytes bounds QueueDir (default 100 MiB). When it is full,
	// new batches for this destination are dropped and counted
	// (gatehouse_audit_batches_forwarded_total{result="dropped"}); the
	// sink still answers as the store did, so a slow destination never
	// makes kube-apiserver resend (or, its buffer full, drop) events.
	MaxQueueBytes int64 `json:"maxQueueBytes"`
}

// Audit defaults.
const (
	DefaultAuditWebhookPath   = "/audit/webhook"
	DefaultAuditMaxAge        = 720 * time.Hour
	DefaultAuditMaxEvents     = 10_000_000
	DefaultAuditMaxQueueBytes = 100 << 20
	// DefaultAuditMaxBodyBytes and DefaultAuditMaxInFlightBytes are the
	// sink's (internal/audit/sink).
	DefaultAuditMaxBodyBytes     = 64 << 20
	DefaultAuditMaxInFlightBytes = 128 << 20
	// DefaultAuditUsersClaim and DefaultAuditUsersPrefix match the
	// defaults of `gatehouse cluster render`.
	DefaultAuditUsersClaim  = "preferred_username"
	DefaultAuditUsersPrefix = "oidc:"
)

func (c *Config) applyAuditDefaults() {
	a := &c.Audit
	if !a.Enabled {
		return
	}
	if a.Webhook.Path == "" {
		a.Webhook.Path = DefaultAuditWebhookPath
	}
	if a.Webhook.MaxBodyBytes == 0 {
		a.Webhook.MaxBodyBytes = DefaultAuditMaxBodyBytes
	}
	if a.Webhook.MaxInFlightBytes == 0 {
		a.Webhook.MaxInFlightBytes = max(DefaultAuditMaxInFlightBytes, a.Webhook.MaxBodyBytes)
	}
	if a.Retention.MaxAge == 0 {
		a.Retention.MaxAge = Duration(DefaultAuditMaxAge)
	}
	if a.Retention.MaxEvents == 0 {
		a.Retention.MaxEvents = DefaultAuditMaxEvents
	}
	if a.Users.Claim == "" {
		a.Users.Claim = DefaultAuditUsersClaim
	}
	if a.Users.Prefix == nil {
		p := DefaultAuditUsersPrefix
		a.Users.Prefix = &p
	}
	if a.Storage == nil {
		switch c.Storage.Type {
		case StorageSQLite3:
			if c.Storage.SQLite3.File != "" {
				file := filepath.Join(filepath.Dir(c.Storage.SQLite3.File), "audit.db")
				if filepath.Clean(file) == filepath.Clean(c.Storage.SQLite3.File) {
					file = filepath.Join(filepath.Dir(c.Storage.SQLite3.File), "audit-events.db")
				}
				a.Storage = &Storage{Type: StorageSQLite3, SQLite3: SQLite3{File: file}}
			}
		case StoragePostgres, StorageMemory:
			s := c.Storage
			a.Storage = &s
		}
	}
	if a.Storage != nil && a.Storage.Type == StoragePostgres {
		a.Storage.Postgres.applyDefaults()
	}
	dataDir := ""
	if a.Storage != nil && a.Storage.Type == StorageSQLite3 && a.Storage.SQLite3.File != "" {
		dataDir = filepath.Dir(a.Storage.SQLite3.File)
	}
	for i := range a.Forward {
		f := &a.Forward[i]
		if f.MaxQueueBytes == 0 {
			f.MaxQueueBytes = DefaultAuditMaxQueueBytes
		}
		if f.QueueDir == "" && dataDir != "" && f.Name != "" && safeName(f.Name) {
			f.QueueDir = filepath.Join(dataDir, "forward", f.Name)
		}
	}
}

// safeName reports whether a forward name can be a directory name.
func safeName(s string) bool {
	return s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !strings.ContainsRune(s, 0)
}

func (c *Config) validateAudit(v *validator) {
	a := c.Audit
	if !a.Enabled {
		return
	}
	if a.Storage == nil {
		v.fail("audit.storage", "required: the main storage gives no default here; set audit.storage (sqlite3 or postgres)")
	} else {
		c.validateStorage(v, "audit.storage", *a.Storage)
	}

	w := a.Webhook
	switch {
	case !strings.HasPrefix(w.Path, "/"):
		v.fail("audit.webhook.path", "%q must be an absolute path such as %s", w.Path, DefaultAuditWebhookPath)
	case strings.ContainsAny(w.Path, "?#"):
		v.fail("audit.webhook.path", "%q must be a plain path without query or fragment", w.Path)
	case path.Clean(w.Path) != w.Path:
		v.fail("audit.webhook.path", "%q is not a clean path; write %s", w.Path, path.Clean(w.Path))
	case c.issuerPathPrefix() != "" && (w.Path == c.issuerPathPrefix() || strings.HasPrefix(w.Path, c.issuerPathPrefix()+"/")):
		v.fail("audit.webhook.path", "%q is under the issuer path %s; choose a path outside it, such as %s", w.Path, c.issuerPathPrefix(), DefaultAuditWebhookPath)
	}
	for i, t := range w.BearerTokens {
		if strings.TrimSpace(t) == "" {
			v.fail(fmt.Sprintf("audit.webhook.bearerTokens[%d]", i), "is empty; remove it or set a token")
		} else if len(t) < 16 {
			v.fail(fmt.Sprintf("audit.webhook.bearerTokens[%d]", i), "is too short (%d characters); use at least 16 random characters, e.g. from `openssl rand -hex 32`", len(t))
		}
	}
	if w.ClientCAFile != "" {
		v.checkPEMFile("audit.webhook.clientCAFile", w.ClientCAFile)
		if c.Web.HTTPS == "" {
			v.fail("audit.webhook.clientCAFile", "client certificates need TLS: set web.https (and web.tlsCert, web.tlsKey)")
		}
	}
	if len(w.BearerTokens) == 0 && w.ClientCAFile == "" {
		v.fail("audit.webhook", "has no authentication: set bearerTokens, bearerTokensEnv or clientCAFile (the sink never accepts anonymous events)")
	}
	switch {
	case w.MaxBodyBytes < 0:
		v.fail("audit.webhook.maxBodyBytes", "must not be negative (0: the default, %d)", DefaultAuditMaxBodyBytes)
	case w.MaxBodyBytes < minAuditBodyBytes:
		v.fail("audit.webhook.maxBodyBytes", "%d is too small for a batch of kube-apiserver's audit events; use at least %d (1 MiB), the default is %d", w.MaxBodyBytes, minAuditBodyBytes, DefaultAuditMaxBodyBytes)
	case w.MaxInFlightBytes < 0:
		v.fail("audit.webhook.maxInFlightBytes", "must not be negative (0: the default, %d)", DefaultAuditMaxInFlightBytes)
	case w.MaxInFlightBytes < w.MaxBodyBytes:
		v.fail("audit.webhook.maxInFlightBytes", "%d is smaller than audit.webhook.maxBodyBytes (%d): a batch that large could never be taken; raise it or lower maxBodyBytes", w.MaxInFlightBytes, w.MaxBodyBytes)
	}

	if a.Retention.MaxAge < 0 {
		v.fail("audit.retention.maxAge", "must not be negative")
	}
	if a.Retention.MaxEvents < 0 {
		v.fail("audit.retention.maxEvents", "must not be negative")
	}
	switch a.Users.Claim {
	case "preferred_username", "email", "sub":
	default:
		v.fail("audit.users.claim", "%q: login sessions can be found by preferred_username, email or sub; set the claim kube-apiserver's username comes from", a.Users.Claim)
	}
	for i, g := range a.ViewerGroups {
		if strings.TrimSpace(g) == "" {
			v.fail(fmt.Sprintf("audit.viewerGroups[%d]", i), "is empty")
		}
	}

	names := map[string]int{}
	dirs := map[string]int{}
	for i, f := range a.Forward {
		p := fmt.Sprintf("audit.forward[%d]", i)
		switch {
		case f.Name == "":
			v.fail(p+".name", "required: a short name for this destination, e.g. falco")
		case !safeName(f.Name):
			v.fail(p+".name", "%q must not contain / or \\", f.Name)
		default:
			if j, dup := names[f.Name]; dup {
				v.fail(p+".name", "%q is already the name of audit.forward[%d]; names must be unique", f.Name, j)
			}
			names[f.Name] = i
		}
		if f.URL == "" {
			v.fail(p+".url", "required: the URL that receives the EventList batches")
		} else if u, err := url.Parse(f.URL); err != nil {
			v.fail(p+".url", "%q is not a URL: %v", f.URL, unwrapURLError(err))
		} else if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.fail(p+".url", "%q must be an absolute http or https URL", f.URL)
		} else if u.Scheme == "http" && f.BearerToken != "" && !isLoopbackHost(u.Hostname()) {
			v.fail(p+".url", "%q is plain http but a bearer token is set: the token would travel in clear; use https", f.URL)
		}
		if f.CAFile != "" {
			v.checkPEMFile(p+".caFile", f.CAFile)
		}
		if f.QueueDir == "" {
			v.fail(p+".queueDir", "required with %s storage: a directory for batches not yet delivered", c.auditStorageType())
		} else {
			clean := filepath.Clean(f.QueueDir)
			if j, dup := dirs[clean]; dup {
				v.fail(p+".queueDir", "%s is already the queue of audit.forward[%d]; each destination needs its own", f.QueueDir, j)
			}
			dirs[clean] = i
		}
		if f.MaxQueueBytes < 0 {
			v.fail(p+".maxQueueBytes", "must not be negative")
		}
	}
}

// minAuditBodyBytes is the smallest audit.webhook.maxBodyBytes accepted.
const minAuditBodyBytes = 1 << 20

func (c *Config) auditStorageType() string {
	if c.Audit.Storage != nil {
		return c.Audit.Storage.Type
	}
	return c.Storage.Type
}
