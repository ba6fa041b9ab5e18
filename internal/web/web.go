// Package web renders the issuer's pages (login, connector choice,
// approval, device code, errors) from embedded templates and serves their
// static files. Operators brand them through Dex's frontend settings:
// issuer name, logo URL, theme, and a directory whose templates/ and
// static/ files replace the embedded ones of the same name.
//
// Pages are server-rendered, need no JavaScript, and load nothing inline,
// so the issuer's Content-Security-Policy can forbid inline scripts and
// styles.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
)

//go:embed templates/*.html static/*
var embedded embed.FS

// Options brand the pages (Dex's frontend section).
type Options struct {
	// Issuer is the name shown in titles (default "gatehouse").
	Issuer string
	// LogoURL replaces the embedded logo.
	LogoURL string
	// Theme is "light" (default), "dark" or "auto".
	Theme string
	// Dir, when set, holds templates/*.html and static/* that replace the
	// embedded files of the same name.
	Dir string
	// Extra values are passed to templates as .Extra.
	Extra map[string]string
	// StaticPrefix is the URL path the static files are served under
	// (the issuer path + "/static"); set by the issuer.
	StaticPrefix string
}

// Renderer renders pages.
type Renderer struct {
	opts   Options
	tmpl   *template.Template
	static fs.FS
}

// Page names.
const (
	PageLogin    = "login.html"
	PagePassword = "password.html"
	PageApproval = "approval.html"
	PageDevice   = "device.html"
	PageDone     = "done.html"
	PageOOB      = "oob.html"
	PageError    = "error.html"
)

// New parses the templates (embedded, overridden from Options.Dir).
func New(opts Options) (*Renderer, error) {
	if opts.Issuer == "" {
		opts.Issuer = "gatehouse"
	}
	switch opts.Theme {
	case "", "light", "dark", "auto":
	default:
		return nil, fmt.Errorf("frontend.theme: %q is not a theme (use light, dark or auto)", opts.Theme)
	}
	if opts.Theme == "" {
		opts.Theme = "light"
	}
	base, err := fs.Sub(embedded, "templates")
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("").ParseFS(base, "*.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse embedded templates: %w", err)
	}
	static, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		st, err := os.Stat(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("frontend.dir: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("frontend.dir: %s is not a directory", opts.Dir)
		}
		overrides, _ := filepath.Glob(filepath.Join(opts.Dir, "templates", "*.html"))
		if len(overrides) > 0 {
			if tmpl, err = tmpl.ParseFiles(overrides...); err != nil {
				return nil, fmt.Errorf("frontend.dir: parse templates: %w", err)
			}
		}
		if st, err := os.Stat(filepath.Join(opts.Dir, "static")); err == nil && st.IsDir() {
			static = overlayFS{top: os.DirFS(filepath.Join(opts.Dir, "static")), bottom: static}
		}
	}
	return &Renderer{opts: opts, tmpl: tmpl, static: static}, nil
}

// WithStaticPrefix returns a copy of r that links static files under p.
func (r *Renderer) WithStaticPrefix(p string) *Renderer {
	c := *r
	c.opts.StaticPrefix = p
	return &c
}

// StaticHandler serves the static files.
func (r *Renderer) StaticHandler() http.Handler {
	h := http.FileServerFS(r.static)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, req)
	})
}

// LogoURL returns the configured logo URL (empty: the embedded logo).
func (r *Renderer) LogoURL() string { return r.opts.LogoURL }

// frame is what every template gets.
type frame struct {
	Issuer  string
	Logo    string
	Theme   string
	Static  string
	Extra   map[string]string
	Title   string
	Data    any
	Lang    string
	NoIndex bool
}

// Render writes page with data and status. Output is buffered so that a
// template error never leaves half a page.
func (r *Renderer) Render(w http.ResponseWriter, status int, page, title string, data any) {
	logo := r.opts.LogoURL
	if logo == "" {
		logo = r.opts.StaticPrefix + "/logo.svg"
	}
	var buf bytes.Buffer
	err := r.tmpl.ExecuteTemplate(&buf, page, frame{
		Issuer: r.opts.Issuer, Logo: logo, Theme: r.opts.Theme, Static: r.opts.StaticPrefix,
		Extra: r.opts.Extra, Title: title, Data: data, Lang: "en",
	})
	if err != nil {
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// overlayFS serves files from top, falling back to bottom.
type overlayFS struct{ top, bottom fs.FS }

func (o overlayFS) Open(name string) (fs.File, error) {
	if f, err := o.top.Open(name); err == nil {
		return f, nil
	}
	return o.bottom.Open(name)
}
