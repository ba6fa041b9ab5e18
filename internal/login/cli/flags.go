package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/flow"
	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// loginFlags are kubelogin's get-token/setup flags, same names, types and
// defaults (pkg/cmd at v1.36.3), plus gatehouse's few additions.
//
// They are parsed with pflag, not cobra: kubelogin's flags are pflag's
// (StringSlice splits on commas, StringToString takes k=v pairs), so
// pflag gives the same syntax for free, and it costs nothing measurable
// at start-up, whereas cobra (and anything that pulls in client-go) adds
// package initialisation to every kubectl command.
type loginFlags struct {
	issuerURL, clientID, clientSecret, redirectURL string
	extraScopes                                    []string
	useAccessToken, forceRefresh                   bool
	requestHeaders                                 map[string]string

	cacheDir, cacheStorage string
	margin, lockTimeout    time.Duration

	caFiles, caData                  []string
	insecure, renegOnce, renegFreely bool

	usePKCE    bool
	pkceMethod string

	grantType                       string
	listenAddress                   []string
	skipOpenBrowser                 bool
	browserCommand                  string
	timeoutSec                      int
	localServerCert, localServerKey string
	openURLAfterAuthentication      string
	authRequestExtraParams          map[string]string
	username, password              string
	verbosity                       int
}

func (o *loginFlags) add(f *pflag.FlagSet, withCache bool) {
	f.StringVar(&o.issuerURL, "oidc-issuer-url", "", "Issuer URL of the provider (mandatory)")
	f.StringVar(&o.clientID, "oidc-client-id", "", "Client ID of the provider (mandatory)")
	f.StringVar(&o.clientSecret, "oidc-client-secret", "", "Client secret of the provider")
	f.StringVar(&o.redirectURL, "oidc-redirect-url", "", "[authcode, authcode-keyboard] Redirect URL")
	f.StringSliceVar(&o.extraScopes, "oidc-extra-scope", nil, "Scopes to request to the provider")
	f.BoolVar(&o.useAccessToken, "oidc-use-access-token", false, "Instead of using the id_token, use the access_token to authenticate to Kubernetes")
	f.StringToStringVar(&o.requestHeaders, "oidc-request-header", nil, "HTTP headers to send with an authentication request")
	if withCache {
		f.BoolVar(&o.forceRefresh, "force-refresh", false, "If set, refresh the ID token regardless of its expiration time")
		f.StringVar(&o.cacheDir, "token-cache-dir", tokencache.DefaultDir(), "Path to a directory of the token cache")
		f.StringVar(&o.cacheStorage, "token-cache-storage", "disk", "Storage for the token cache. One of (disk|keyring|none); keyring is not supported")
		f.DurationVar(&o.margin, "token-expiry-margin", 60*time.Second, "[gatehouse] Use a cached token only while it is valid for longer than this")
		f.DurationVar(&o.lockTimeout, "token-cache-lock-timeout", 0, "[gatehouse] How long to wait for another run holding the token cache entry (default: the authentication timeout plus 30s)")
	}
	f.StringArrayVar(&o.caFiles, "certificate-authority", nil, "Path to a cert file for the certificate authority")
	f.StringArrayVar(&o.caData, "certificate-authority-data", nil, "Base64 encoded cert for the certificate authority")
	f.BoolVar(&o.insecure, "insecure-skip-tls-verify", false, "[SECURITY RISK] If set, the server's certificate will not be checked for validity")
	f.BoolVar(&o.renegOnce, "tls-renegotiation-once", false, "If set, allow a remote server to request renegotiation once per connection")
	f.BoolVar(&o.renegFreely, "tls-renegotiation-freely", false, "If set, allow a remote server to repeatedly request renegotiation")
	f.BoolVar(&o.usePKCE, "oidc-use-pkce", false, "Force PKCE S256 code challenge method")
	_ = f.MarkDeprecated("oidc-use-pkce", "use --oidc-pkce-method instead")
	f.StringVar(&o.pkceMethod, "oidc-pkce-method", "auto", "PKCE code challenge method. Automatically determined by default. One of (auto|no|S256)")
	f.StringVar(&o.grantType, "grant-type", "auto", "Authorization grant type to use. One of (auto|authcode|authcode-keyboard|password|device-code)")
	f.StringSliceVar(&o.listenAddress, "listen-address", flow.DefaultListenAddresses, "[authcode] Address to bind to the local server. If multiple addresses are set, it will try binding in order")
	f.BoolVar(&o.skipOpenBrowser, "skip-open-browser", false, "[authcode] Do not open the browser automatically")
	f.StringVar(&o.browserCommand, "browser-command", "", "[authcode] Command to open the browser")
	f.IntVar(&o.timeoutSec, "authentication-timeout-sec", 180, "[authcode] Timeout of authentication in seconds")
	f.StringVar(&o.localServerCert, "local-server-cert", "", "[authcode] Certificate path for the local server (not supported)")
	f.StringVar(&o.localServerKey, "local-server-key", "", "[authcode] Certificate key path for the local server (not supported)")
	f.StringVar(&o.openURLAfterAuthentication, "open-url-after-authentication", "", "[authcode] If set, open the URL in the browser after authentication (not supported)")
	f.StringToStringVar(&o.authRequestExtraParams, "oidc-auth-request-extra-params", nil, "[authcode, authcode-keyboard] Extra query parameters to send with an authentication request")
	f.StringVar(&o.username, "username", "", "[password] Username for resource owner password credentials grant")
	f.StringVar(&o.password, "password", "", "[password] Password for resource owner password credentials grant")
	f.IntVarP(&o.verbosity, "v", "v", 0, "Log level (kubelogin's klog -v): 1 or more logs each decision on stderr")
}

func (o *loginFlags) validate() error {
	if o.issuerURL == "" {
		return errors.New("--oidc-issuer-url is missing")
	}
	if o.clientID == "" {
		return errors.New("--oidc-client-id is missing")
	}
	switch o.pkceMethod {
	case "auto", "no", "S256":
	default:
		return errors.New("oidc-pkce-method must be one of (auto|no|S256)")
	}
	switch o.grantType {
	case flow.GrantAuto, flow.GrantAuthCode, flow.GrantKeyboard, flow.GrantDeviceCode, flow.GrantPassword:
	case "client-credentials":
		return errors.New("--grant-type=client-credentials is not supported by kubectl-gatehouse (a person logs in; use a ServiceAccount token for machines)")
	default:
		return fmt.Errorf("grant-type must be one of (auto|authcode|authcode-keyboard|password|device-code), not %q", o.grantType)
	}
	if o.localServerCert != "" || o.localServerKey != "" {
		return errors.New("--local-server-cert/--local-server-key are not supported: the loopback redirect is plain HTTP on 127.0.0.1, as RFC 8252 allows")
	}
	if o.openURLAfterAuthentication != "" {
		return errors.New("--open-url-after-authentication is not supported")
	}
	return nil
}

// pkceMethod is kubelogin's enum value for the cache key.
func (o *loginFlags) pkce() (method string, enum int) {
	if o.usePKCE {
		return "S256", 2
	}
	switch o.pkceMethod {
	case "no":
		return "no", 1
	case "S256":
		return "S256", 2
	}
	return "auto", 0
}

func (o *loginFlags) expandHome() {
	o.cacheDir = tokencache.ExpandHome(o.cacheDir)
	for i, f := range o.caFiles {
		o.caFiles[i] = tokencache.ExpandHome(f)
	}
}

func (o *loginFlags) renegotiation() tls.RenegotiationSupport {
	switch {
	case o.renegOnce:
		return tls.RenegotiateOnceAsClient
	case o.renegFreely:
		return tls.RenegotiateFreelyAsClient
	}
	return tls.RenegotiateNever
}

// key is kubelogin's cache key for these flags.
func (o *loginFlags) key() tokencache.Key {
	_, enum := o.pkce()
	k := tokencache.Key{
		IssuerURL: o.issuerURL, ClientID: o.clientID, ClientSecret: o.clientSecret,
		ExtraScopes: o.extraScopes, RedirectURL: o.redirectURL, PKCEMethod: enum,
		UseAccessToken: o.useAccessToken, RequestHeaders: o.requestHeaders,
		CACertFilename: o.caFiles, CACertData: o.caData, SkipTLSVerify: o.insecure,
		Renegotiation: int(o.renegotiation()),
	}
	switch o.grantType {
	case flow.GrantAuthCode, flow.GrantKeyboard:
		k.AuthRequestExtraParams = o.authRequestExtraParams
	case flow.GrantAuto:
		if o.username == "" {
			k.AuthRequestExtraParams = o.authRequestExtraParams
		} else {
			k.Username = o.username
		}
	case flow.GrantPassword:
		k.Username = o.username
	}
	return k
}

func (o *loginFlags) login(env Env) *flow.Login {
	method, _ := o.pkce()
	return &flow.Login{Options: flow.Options{
		Client: oidcclient.Config{
			IssuerURL: o.issuerURL, ClientID: o.clientID, ClientSecret: o.clientSecret,
			ExtraScopes: o.extraScopes, PKCEMethod: method, UseAccessToken: o.useAccessToken,
			HTTPClient: env.HTTPClient, Now: env.Now,
		},
		CAFiles: o.caFiles, CAData: o.caData, Insecure: o.insecure, Renegotiation: o.renegotiation(),
		RequestHeaders: o.requestHeaders,
		GrantType:      o.grantType, ListenAddresses: o.listenAddress, RedirectURL: o.redirectURL,
		Extra: o.authRequestExtraParams, SkipOpenBrowser: o.skipOpenBrowser, BrowserCommand: o.browserCommand,
		Username: o.username, Password: o.password,
		Timeout: time.Duration(o.timeoutSec) * time.Second,
		Opener:  env.Opener,
		Stdin:   env.Stdin, Stderr: env.Stderr, ReadPassword: env.ReadPassword,
	}}
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "--password=") {
			a = "--password=..."
		}
		if a == "" || strings.ContainsAny(a, " \t\n'\"$`\\|&;<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
