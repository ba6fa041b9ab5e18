package flow

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/login/options"

	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// DefaultListenAddresses are kubelogin's.
var DefaultListenAddresses = options.DefaultListenAddresses

// AuthCode is the browser flow: authorization code with PKCE (S256), the
// redirect received on a loopback listener. It checks state, the RFC 9207
// iss parameter and (through the client) the nonce.
type AuthCode struct {
	Client *oidcclient.Client
	// ListenAddresses are tried in order (default DefaultListenAddresses).
	ListenAddresses []string
	// RedirectURL overrides http://localhost:PORT (its path is served).
	RedirectURL string
	// Extra are additional authorization request parameters.
	Extra  map[string]string
	Opener Opener
	Stderr io.Writer
	// LocalServerCert and LocalServerKey, when set, make the loopback
	// listener HTTPS with this certificate (kubelogin's --local-server-cert
	// and --local-server-key), and the default redirect https://localhost:PORT.
	LocalServerCert, LocalServerKey string
	// OpenURLAfterAuthentication, when set, is where the loopback page
	// sends the browser after a successful login.
	OpenURLAfterAuthentication string
}

type callbackResult struct {
	code string
	err  error
}

// Run performs the flow.
func (f AuthCode) Run(ctx context.Context) (oidcclient.TokenSet, error) {
	addrs := f.ListenAddresses
	if len(addrs) == 0 {
		addrs = DefaultListenAddresses
	}
	tlsConfig, err := localServerTLS(f.LocalServerCert, f.LocalServerKey)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	ln, err := listenFirst(addrs)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	defer ln.Close()

	port := ln.Addr().(*net.TCPAddr).Port
	redirect := "http://localhost:" + strconv.Itoa(port)
	if tlsConfig != nil {
		redirect = "https://localhost:" + strconv.Itoa(port)
		ln = tls.NewListener(ln, tlsConfig)
	}
	path := "/"
	if f.RedirectURL != "" {
		u, err := url.Parse(f.RedirectURL)
		if err != nil {
			return oidcclient.TokenSet{}, fmt.Errorf("--oidc-redirect-url: %w", err)
		}
		redirect = f.RedirectURL
		if u.Path != "" {
			path = u.Path
		}
	}
	req := oidcclient.AuthRequest{State: random(), Nonce: random(), RedirectURL: redirect, Extra: f.Extra}
	if f.Client.UsePKCE() {
		req.Verifier = oauth2.GenerateVerifier()
	}

	results := make(chan callbackResult, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: &callback{
		path: path, state: req.State, issuer: f.Client.Issuer(), issRequired: f.Client.ISSParameterRequired(),
		results: results, stderr: f.Stderr, successURL: f.OpenURLAfterAuthentication,
	}}
	serveDone := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(serveDone) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-serveDone
	}()

	hint := fmt.Sprintf(" (or on yours after ssh -L %d:localhost:%d; or use --grant-type=device-code)", port, port)
	release := show(ctx, f.Opener, f.Stderr, f.Client.AuthCodeURL(req), true, hint)
	defer release()

	select {
	case r := <-results:
		if r.err != nil {
			return oidcclient.TokenSet{}, r.err
		}
		return f.Client.ExchangeCode(ctx, req, r.code)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return oidcclient.TokenSet{}, errTimeout
		}
		return oidcclient.TokenSet{}, fmt.Errorf("login cancelled: %w", ctx.Err())
	}
}

// listenFirst listens on the first free address.
func listenFirst(addrs []string) (net.Listener, error) {
	var errs []error
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err == nil {
			return ln, nil
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen for the browser's redirect: %w", errors.Join(errs...))
		}
	}
	return nil, fmt.Errorf("listen for the browser's redirect: %s all in use (by another program, or a login already waiting in a browser); free one, or pass --listen-address with a port your issuer's client accepts: %w",
		strings.Join(addrs, " and "), errors.Join(errs...))
}

// AuthorizationError is the issuer's error response (RFC 6749 4.1.2.1),
// received with this login's state: the issuer (or the person, or the
// upstream provider behind it) refused the login.
type AuthorizationError struct {
	// Code is the error parameter (access_denied, invalid_scope, ...).
	Code string
	// Description and URI are error_description and error_uri.
	Description, URI string
}

// Refused says that the issuer answered: the login was refused, not lost.
func (e *AuthorizationError) Refused() bool { return true }

// Error is one line, safe to print on a terminal.
func (e *AuthorizationError) Error() string {
	msg := "the issuer refused the login (" + Printable(e.Code, 64) + ")"
	if e.Description != "" {
		msg += ": " + Printable(e.Description, 1000)
	}
	if e.URI != "" {
		msg += " (see " + Printable(e.URI, 500) + ")"
	}
	return msg
}

// callback receives the authorization response on the loopback listener.
type callback struct {
	path        string
	state       string
	issuer      string
	issRequired bool
	results     chan callbackResult
	stderr      io.Writer
	successURL  string
	warned      atomic.Bool
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != c.path || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	// A response that does not carry our state is not the answer to our
	// request: a forged or stale redirect (a web page in any browser on
	// this machine can send one), CSRF. It is refused and the login goes
	// on waiting for the real one, whether it carries a code or an error:
	// unlike kubelogin (oauth2cli ends the login on any error response),
	// a forged error must not end a login either. The warning is printed
	// once, so that a page cannot flood the terminal.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(c.state)) != 1 {
		if !c.warned.Swap(true) {
			fmt.Fprintln(c.stderr, "warning: ignored a request to the login listener that does not carry this login's state (a stale browser tab, or a forged redirect); still waiting")
		}
		http.Error(w, "state does not match: this is not the response to the login in progress", http.StatusBadRequest)
		return
	}
	res := callbackResult{code: q.Get("code")}
	switch iss, has := q["iss"]; {
	case has && (len(iss) != 1 || iss[0] != c.issuer):
		res.err = fmt.Errorf("authorization response from issuer %q, expected %q (RFC 9207 mix-up defence)", Printable(q.Get("iss"), 200), c.issuer)
	case !has && c.issRequired:
		res.err = errors.New("authorization response without the iss parameter that the issuer's discovery promises (RFC 9207)")
	case q.Get("error") != "":
		res.err = &AuthorizationError{Code: q.Get("error"), Description: q.Get("error_description"), URI: q.Get("error_uri")}
	case res.code == "":
		res.err = errors.New("authorization response without a code")
	}
	select {
	case c.results <- res:
	default: // a result is already in: this is a duplicate
		http.Error(w, "this login is already complete", http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	var ae *AuthorizationError
	switch {
	case errors.As(res.err, &ae):
		w.WriteHeader(http.StatusForbidden)
		reason := Printable(ae.Description, 1000)
		if reason == "" {
			reason = "no reason given"
		}
		fmt.Fprintf(w, `<!doctype html><title>Login refused</title><h1>Login refused</h1><p id="result">The issuer refused the login: %s (%s).</p><p>The command that started this login has stopped waiting. You can close this window.</p>`,
			html.EscapeString(reason), html.EscapeString(Printable(ae.Code, 64)))
	case res.err != nil:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<!doctype html><title>Login failed</title><p id=\"result\">Login failed: %s</p>", html.EscapeString(res.err.Error()))
	case c.successURL != "":
		writeRedirectPage(w, c.successURL)
	default:
		fmt.Fprint(w, `<!doctype html><title>Logged in</title><p id="result">Logged in. You can close this window.</p>`)
	}
}

// Printable makes s safe to show on a terminal and in one line: it is
// cut after max runes, then rendered by termsafe (control characters,
// escape sequences, newlines and Unicode format characters such as
// bidirectional overrides shown as Go escapes inside quotes). Text from
// the issuer's redirect (error_description) is printed on the user's
// terminal.
func Printable(s string, max int) string {
	n := 0
	for i := range s {
		if n == max {
			s = s[:i] + "..."
			break
		}
		n++
	}
	return termsafe.String(s)
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
