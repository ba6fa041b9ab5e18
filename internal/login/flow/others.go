package flow

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
)

// OOBRedirectURL is the out-of-band redirect URI that Dex (and gatehouse)
// answer with a page showing the code.
const OOBRedirectURL = "urn:ietf:wg:oauth:2.0:oob"

// Keyboard is authcode-keyboard: the user opens the URL anywhere and types
// the code back (or pastes the whole redirect URL, whose state is then
// checked too). As in kubelogin the redirect URL is --oidc-redirect-url; it
// defaults to the out-of-band URI.
type Keyboard struct {
	Client      *oidcclient.Client
	RedirectURL string
	Extra       map[string]string
	Stdin       io.Reader
	Stderr      io.Writer
}

// Run performs the flow.
func (f Keyboard) Run(ctx context.Context) (oidcclient.TokenSet, error) {
	redirect := f.RedirectURL
	if redirect == "" {
		redirect = OOBRedirectURL
	}
	req := oidcclient.AuthRequest{State: random(), Nonce: random(), RedirectURL: redirect, Extra: f.Extra}
	if f.Client.UsePKCE() {
		req.Verifier = oauth2.GenerateVerifier()
	}
	fmt.Fprintf(f.Stderr, "Please visit the following URL in your browser: %s\n", f.Client.AuthCodeURL(req))
	fmt.Fprint(f.Stderr, "Enter code: ")
	line, err := readLine(ctx, f.Stdin)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	code := line
	if u, err := url.Parse(line); err == nil && u.Query().Get("code") != "" {
		q := u.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(req.State)) != 1 {
			return oidcclient.TokenSet{}, errors.New("the pasted redirect URL's state does not match this login")
		}
		if iss, has := q["iss"]; has && (len(iss) != 1 || iss[0] != f.Client.Issuer()) {
			return oidcclient.TokenSet{}, fmt.Errorf("the pasted redirect comes from issuer %q, expected %q", q.Get("iss"), f.Client.Issuer())
		}
		code = q.Get("code")
	}
	if code == "" {
		return oidcclient.TokenSet{}, errors.New("no code entered")
	}
	return f.Client.ExchangeCode(ctx, req, code)
}

// readLine reads one line, giving up when ctx ends. A goroutine blocked
// on a terminal read cannot be interrupted; it ends with the process.
func readLine(ctx context.Context, r io.Reader) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		if err == io.EOF && s != "" {
			err = nil
		}
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case x := <-ch:
		if errors.Is(x.err, io.EOF) {
			return "", errors.New("standard input ended before anything was entered")
		}
		if x.err != nil {
			return "", fmt.Errorf("read from the terminal: %w", x.err)
		}
		return x.s, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", errTimeout
		}
		return "", fmt.Errorf("login cancelled: %w", ctx.Err())
	}
}

// Device is the device authorization grant (RFC 8628): it prints the
// verification URI and the user code, opens the complete URI when a
// browser is configured, and polls at the issuer's interval.
type Device struct {
	Client *oidcclient.Client
	// Opener, when set, is given verification_uri_complete.
	Opener Opener
	Stderr io.Writer
}

// Run performs the flow.
func (f Device) Run(ctx context.Context) (oidcclient.TokenSet, error) {
	r, err := f.Client.DeviceAuth(ctx)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	fmt.Fprintf(f.Stderr, "To log in, open %s and enter the code %s\n", r.VerificationURI, r.UserCode)
	if f.Opener != nil {
		target := r.VerificationURIComplete
		if target == "" {
			target = r.VerificationURI
		}
		release := show(ctx, f.Opener, f.Stderr, target, false, "")
		defer release()
	}
	ts, err := f.Client.DeviceToken(ctx, r)
	if err != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return oidcclient.TokenSet{}, errTimeout
		}
		return oidcclient.TokenSet{}, fmt.Errorf("login cancelled: %w", ctx.Err())
	}
	return ts, err
}

// Password is the resource owner password credentials grant. A missing
// password is asked for on the terminal without echo.
type Password struct {
	Client             *oidcclient.Client
	Username, Password string
	// ReadPassword asks for the password (nil: no prompt possible).
	ReadPassword func(ctx context.Context, prompt string) (string, error)
}

// Run performs the flow.
func (f Password) Run(ctx context.Context) (oidcclient.TokenSet, error) {
	pw := f.Password
	if pw == "" {
		if f.ReadPassword == nil {
			return oidcclient.TokenSet{}, errors.New("--password is empty and there is no terminal to ask for it")
		}
		var err error
		if pw, err = f.ReadPassword(ctx, "Password: "); err != nil {
			return oidcclient.TokenSet{}, err
		}
	}
	return f.Client.Password(ctx, f.Username, pw)
}
