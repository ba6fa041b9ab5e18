package flow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
)

// Grant types (kubelogin's --grant-type).
const (
	GrantAuto       = "auto"
	GrantAuthCode   = "authcode"
	GrantKeyboard   = "authcode-keyboard"
	GrantDeviceCode = "device-code"
	GrantPassword   = "password"
	// GrantClientCredentials is the client's own token (no person).
	GrantClientCredentials = "client-credentials"
)

// Options configure a Login.
type Options struct {
	Client oidcclient.Config
	// TLS for the issuer.
	CAFiles, CAData []string
	Insecure        bool
	Renegotiation   tls.RenegotiationSupport
	RequestHeaders  map[string]string

	GrantType       string
	ListenAddresses []string
	RedirectURL     string
	Extra           map[string]string
	SkipOpenBrowser bool
	BrowserCommand  string
	Username        string
	Password        string
	// Timeout bounds one interactive login (--authentication-timeout-sec).
	Timeout time.Duration
	// LocalServerCert, LocalServerKey and OpenURLAfterAuthentication are
	// kubelogin's flags for the authcode loopback listener (see AuthCode).
	LocalServerCert, LocalServerKey, OpenURLAfterAuthentication string

	// Opener, when set, replaces the browser that the flags choose (tests).
	Opener Opener

	Stdin        io.Reader
	Stderr       io.Writer
	ReadPassword func(ctx context.Context, prompt string) (string, error)
}

// Login refreshes or logs in with the configured grant. Nothing is
// discovered or dialled until a method is called.
type Login struct {
	Options
	client *oidcclient.Client
}

// Grant resolves auto: password when a username is given, else authcode.
func (l *Login) Grant() string {
	if l.GrantType == GrantAuto || l.GrantType == "" {
		if l.Username != "" {
			return GrantPassword
		}
		return GrantAuthCode
	}
	return l.GrantType
}

// NeedsStdin says what in the configured login reads standard input,
// naming the flag; "" when nothing does. The browser flows (authcode,
// device-code) need none: the browser talks to the issuer, and the
// loopback listener or the token endpoint tells the plugin. kubectl gives
// an exec plugin standard input only when it runs it interactively
// (client-go's exec docs: interactiveMode Never means "this exec plugin
// never needs to use standard input").
func (l *Login) NeedsStdin() string {
	switch g := l.Grant(); {
	case g == GrantKeyboard:
		return "--grant-type=authcode-keyboard reads the authorization code from standard input"
	case g == GrantPassword && l.Password == "" && l.GrantType == GrantPassword:
		return "--grant-type=password without --password asks for the password on standard input"
	case g == GrantPassword && l.Password == "":
		return "--username without --password asks for the password on standard input"
	}
	return ""
}

// Client discovers the issuer (once).
func (l *Login) Client(ctx context.Context) (*oidcclient.Client, error) {
	if l.client != nil {
		return l.client, nil
	}
	cfg := l.Options.Client
	if cfg.HTTPClient == nil {
		hc, err := HTTPClient(l.CAFiles, l.CAData, l.Insecure, l.Renegotiation, l.RequestHeaders)
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = hc
	}
	c, err := oidcclient.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l.client = c
	return c, nil
}

// Close drops the idle connections to the issuer, so that a Login leaves
// no goroutine behind.
func (l *Login) Close() error {
	if l.client != nil {
		l.client.CloseIdleConnections()
	}
	return nil
}

// Refresh redeems a refresh token.
func (l *Login) Refresh(ctx context.Context, refreshToken string) (oidcclient.TokenSet, error) {
	c, err := l.Client(ctx)
	if err != nil {
		// Discovery that cannot reach the issuer is an outage too.
		return oidcclient.TokenSet{}, oidcclient.Unavailable(err)
	}
	return c.Refresh(ctx, refreshToken)
}

// Interactive runs the configured grant, bounded by Timeout.
func (l *Login) Interactive(ctx context.Context) (oidcclient.TokenSet, error) {
	if l.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Timeout)
		defer cancel()
	}
	c, err := l.Client(ctx)
	if err != nil {
		return oidcclient.TokenSet{}, err
	}
	var opener Opener
	switch {
	case l.SkipOpenBrowser:
		opener = PrintOpener{Stderr: l.Stderr}
	case l.BrowserCommand != "":
		opener = CommandOpener{Command: l.BrowserCommand, Stderr: l.Stderr}
	default:
		opener = SystemOpener{Stderr: l.Stderr}
	}
	if l.Opener != nil {
		opener = l.Opener
	}
	switch g := l.Grant(); g {
	case GrantAuthCode:
		return AuthCode{Client: c, ListenAddresses: l.ListenAddresses, RedirectURL: l.RedirectURL, Extra: l.Extra, Opener: opener, Stderr: l.Stderr,
			LocalServerCert: l.LocalServerCert, LocalServerKey: l.LocalServerKey, OpenURLAfterAuthentication: l.OpenURLAfterAuthentication}.Run(ctx)
	case GrantKeyboard:
		return Keyboard{Client: c, RedirectURL: l.RedirectURL, Extra: l.Extra, Stdin: l.Stdin, Stderr: l.Stderr}.Run(ctx)
	case GrantDeviceCode:
		if l.SkipOpenBrowser {
			opener = nil // the code is printed anyway
		}
		return Device{Client: c, Opener: opener, Stderr: l.Stderr}.Run(ctx)
	case GrantPassword:
		return Password{Client: c, Username: l.Username, Password: l.Password, ReadPassword: l.ReadPassword}.Run(ctx)
	case GrantClientCredentials:
		return c.ClientCredentials(ctx, l.Extra)
	default:
		return oidcclient.TokenSet{}, fmt.Errorf("grant-type must be one of (auto|authcode|authcode-keyboard|password|device-code|client-credentials), not %q", g)
	}
}

// HTTPClient builds the client for the issuer from kubelogin's TLS flags.
func HTTPClient(caFiles, caData []string, insecure bool, reneg tls.RenegotiationSupport, headers map[string]string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure, Renegotiation: reneg} //nolint:gosec // the user asked for it
	if len(caFiles)+len(caData) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range caFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("--certificate-authority: %w", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("--certificate-authority %s: no PEM certificate in it", f)
			}
		}
		for _, d := range caData {
			b, err := base64.StdEncoding.DecodeString(d)
			if err != nil {
				return nil, fmt.Errorf("--certificate-authority-data: %w", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, errors.New("--certificate-authority-data: no PEM certificate in it")
			}
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	var rt http.RoundTripper = tr
	if len(headers) > 0 {
		rt = headerTransport{base: tr, headers: headers}
	}
	return &http.Client{Transport: rt, Timeout: 60 * time.Second}, nil
}

type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}
