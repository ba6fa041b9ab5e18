// Package web serves the audit trail's page: events filtered like
// `gatehouse audit query`, a timeline chart (server-rendered SVG), an
// event's detail with its request and response objects, and, for one user,
// their login sessions beside their actions. It needs no JavaScript.
//
// The page does not log people in: it asks an Authenticate function for
// the viewer (gatehouse's own login provides it) and admits only members of
// the configured viewer groups.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/event"
	"github.com/gatehouse-dev/gatehouse/internal/audit/query"
	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Viewer is the person looking at the page.
type Viewer struct {
	User   string
	Groups []string
}

// Authenticate returns the logged-in viewer of r, or false when there is
// none.
type Authenticate func(r *http.Request) (Viewer, bool)

// Session is one login of a user through gatehouse.
type Session struct {
	Connector     string    // connector id, e.g. github
	UpstreamLogin string    // the login at the upstream provider
	ClientID      string    // the OAuth client (e.g. kubectl)
	Time          time.Time // when the user logged in
	LastUsed      time.Time
	SourceIP      string
	Revoked       bool // logged out, or revoked after a replayed token
	Expired       bool // past the refresh token's idle or absolute lifetime
}

// Sessions lists the login sessions of the user named in audit events
// (e.g. "oidc:alice"), newest first. gatehouse implements it from
// its storage's refresh families (cmd/gatehouse, auditSessions).
type Sessions interface {
	Sessions(ctx context.Context, auditUser string) ([]Session, error)
}

// Events is what the page reads from the store (*store.DB).
type Events interface {
	Query(ctx context.Context, f query.Filter) ([]event.Event, *query.Cursor, error)
	Get(ctx context.Context, id int64) (event.Event, error)
	Timeline(ctx context.Context, f query.Filter, by string, buckets, maxEvents, maxSeries int) (store.Timeline, error)
}

// Options configure the page.
type Options struct {
	Events       Events
	Authenticate Authenticate
	// ViewerGroups may see the page; with none, nobody may.
	ViewerGroups []string
	Sessions     Sessions // optional
	// Prefix is where the page is mounted (default /audit).
	Prefix string
	// Unauthenticated answers a request without a viewer (e.g. a redirect
	// to the login); default 401.
	Unauthenticated http.Handler
	// TimelineEvents bounds the events the chart reads (default 50,000).
	TimelineEvents int
	Logger         *slog.Logger
	Now            func() time.Time
}

// Handler serves the page under Options.Prefix.
type Handler struct {
	o    Options
	tmpl *template.Template
	mux  *http.ServeMux
}

// New returns the page's handler.
func New(o Options) (*Handler, error) {
	if o.Events == nil || o.Authenticate == nil {
		return nil, errors.New("audit web: Events and Authenticate are required")
	}
	if o.Prefix == "" {
		o.Prefix = "/audit"
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	if o.Unauthenticated == nil {
		o.Unauthenticated = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "log in to see the audit trail", http.StatusUnauthorized)
		})
	}
	if o.TimelineEvents <= 0 {
		o.TimelineEvents = 50000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{o: o}
	funcs := template.FuncMap{
		"fmtTime": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05.000")
		},
		"prefix": func() string { return o.Prefix },
		"dash": func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		},
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("audit web: templates: %w", err)
	}
	h.tmpl = t
	static, _ := fs.Sub(staticFS, "static")
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET "+o.Prefix+"/{$}", h.list)
	h.mux.HandleFunc("GET "+o.Prefix, h.list)
	h.mux.HandleFunc("GET "+o.Prefix+"/events/{id}", h.detail)
	h.mux.Handle("GET "+o.Prefix+"/static/", http.StripPrefix(o.Prefix+"/static/", http.FileServerFS(static)))
	return h, nil
}

// ServeHTTP checks the viewer, then serves the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, h.o.Prefix+"/static/") {
		h.mux.ServeHTTP(w, r) // the stylesheet is public
		return
	}
	hd.Set("Cache-Control", "no-store")
	v, ok := h.o.Authenticate(r)
	if !ok {
		h.o.Unauthenticated.ServeHTTP(w, r)
		return
	}
	if !h.allowed(v) {
		h.o.Logger.Warn("audit page: viewer not in viewerGroups", "user", v.User)
		w.WriteHeader(http.StatusForbidden)
		h.render(w, "error.html", map[string]any{"Viewer": v, "Title": "Not allowed", "Message": "The audit trail is open to members of the configured viewer groups only. Ask an administrator to add you to one of them."})
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), viewerKey{}, v))
	h.mux.ServeHTTP(w, r)
}

type viewerKey struct{}

func (h *Handler) allowed(v Viewer) bool {
	for _, g := range v.Groups {
		for _, want := range h.o.ViewerGroups {
			if g == want {
				return true
			}
		}
	}
	return false
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := h.tmpl.ExecuteTemplate(w, name, data); err != nil {
		h.o.Logger.Error("audit page: render", "template", name, "err", err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	w.WriteHeader(code)
	h.render(w, "error.html", map[string]any{"Viewer": r.Context().Value(viewerKey{}), "Title": http.StatusText(code), "Message": msg})
}

// form is the filter form's values, as typed.
type form struct {
	User, Group, Verb, Resource, Namespace, Name, Since, Until, Code, By string
}

func (f form) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"user": f.User, "group": f.Group, "verb": f.Verb, "resource": f.Resource,
		"namespace": f.Namespace, "name": f.Name, "since": f.Since, "until": f.Until, "code": f.Code, "by": f.By} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fm := form{User: q.Get("user"), Group: q.Get("group"), Verb: q.Get("verb"), Resource: q.Get("resource"),
		Namespace: q.Get("namespace"), Name: q.Get("name"), Since: q.Get("since"), Until: q.Get("until"), Code: q.Get("code"), By: q.Get("by")}
	if fm.By != "verb" {
		fm.By = "user"
	}
	now := h.o.Now()
	f := query.Filter{User: fm.User, Group: fm.Group, Verb: fm.Verb, Resource: fm.Resource, Namespace: fm.Namespace, Name: fm.Name, Limit: 50}
	var errs []string
	var err error
	if f.Since, err = query.ParseTime(fm.Since, now); err != nil {
		errs = append(errs, err.Error())
	}
	if f.Until, err = query.ParseTime(fm.Until, now); err != nil {
		errs = append(errs, err.Error())
	}
	if f.Code, err = query.ParseCode(fm.Code); err != nil {
		errs = append(errs, err.Error())
	}
	if err := f.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if b := q.Get("before"); b != "" {
		c, err := query.ParseCursor(b)
		if err != nil {
			errs = append(errs, err.Error())
		}
		f.Before = &c
	}
	data := map[string]any{"Viewer": r.Context().Value(viewerKey{}), "Form": fm, "Title": "Audit trail", "Errors": errs}
	if len(errs) > 0 {
		w.WriteHeader(http.StatusBadRequest)
		h.render(w, "list.html", data)
		return
	}
	events, next, err := h.o.Events.Query(r.Context(), f)
	if err != nil {
		h.o.Logger.Error("audit page: query", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "The audit store could not be read.")
		return
	}
	data["Events"] = events
	if next != nil {
		v := fm.values()
		v.Set("before", next.String())
		data["Next"] = h.o.Prefix + "?" + v.Encode()
	}
	if f.Before == nil {
		tl, err := h.o.Events.Timeline(r.Context(), f, fm.By, 48, h.o.TimelineEvents, 7)
		if err != nil {
			h.o.Logger.Error("audit page: timeline", "err", err)
		} else {
			data["Chart"] = chart(tl, fm.By)
		}
	}
	if fm.User != "" && h.o.Sessions != nil {
		ss, err := h.o.Sessions.Sessions(r.Context(), fm.User)
		if err != nil {
			h.o.Logger.Error("audit page: sessions", "err", err)
			data["SessionsError"] = true
		}
		data["Sessions"] = ss
		data["ShowSessions"] = true
	}
	h.render(w, "list.html", data)
}

func (h *Handler) detail(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.fail(w, r, http.StatusNotFound, "No such event.")
		return
	}
	e, err := h.o.Events.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "No such event.")
		return
	}
	if err != nil {
		h.o.Logger.Error("audit page: get", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "The audit store could not be read.")
		return
	}
	d := details(e)
	h.render(w, "detail.html", map[string]any{"Viewer": r.Context().Value(viewerKey{}), "Title": "Audit event " + e.AuditID, "E": e, "D": d})
}
