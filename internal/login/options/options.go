// Package options holds kubectl-gatehouse's login flags (kubelogin's) and
// the token cache key they make. It links nothing that the warm path does
// not need (no HTTP, no TLS), so that a small front end can use it.
package options

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// Flags are kubelogin's get-token/setup flags, same names, types and
// defaults (pkg/cmd at v1.36.3), plus gatehouse's few additions.
//
// They are parsed with pflag, not cobra: kubelogin's flags are pflag's
// (StringSlice splits on commas, StringToString takes k=v pairs), so
// pflag gives the same syntax for free, and it costs nothing measurable
// at start-up, whereas cobra (and anything that pulls in client-go) adds
// package initialisation to every kubectl command.
type Flags struct {
	IssuerURL, ClientID, ClientSecret, RedirectURL string
	ExtraScopes                                    []string
	UseAccessToken, ForceRefresh                   bool
	// RequestHeaders and AuthRequestExtraParams keep the command line's
	// order, which kubelogin's cache file name depends on.
	RequestHeaders tokencache.Pairs

	CacheDir, CacheStorage string
	Margin, LockTimeout    time.Duration

	CAFiles, CAData                  []string
	Insecure, RenegOnce, RenegFreely bool

	UsePKCE    bool
	PKCEMethod string

	GrantType                       string
	ListenAddress                   []string
	SkipOpenBrowser                 bool
	BrowserCommand                  string
	TimeoutSec                      int
	LocalServerCert, LocalServerKey string
	OpenURLAfterAuthentication      string
	AuthRequestExtraParams          tokencache.Pairs
	Username, Password              string

	// Exchange: gatehouse's token exchange flags (get-token only).
	Exchange Exchange
}

// Add registers the flags; withCache adds the token cache flags.
func (o *Flags) Add(f *pflag.FlagSet, withCache bool) {
	f.StringVar(&o.IssuerURL, "oidc-issuer-url", "", "Issuer URL of the provider (mandatory)")
	f.StringVar(&o.ClientID, "oidc-client-id", "", "Client ID of the provider (mandatory)")
	f.StringVar(&o.ClientSecret, "oidc-client-secret", "", "Client secret of the provider")
	f.StringVar(&o.RedirectURL, "oidc-redirect-url", "", "[authcode, authcode-keyboard] Redirect URL")
	f.StringSliceVar(&o.ExtraScopes, "oidc-extra-scope", nil, "Scopes to request to the provider")
	f.BoolVar(&o.UseAccessToken, "oidc-use-access-token", false, "Instead of using the id_token, use the access_token to authenticate to Kubernetes")
	f.Var(newPairsValue(&o.RequestHeaders), "oidc-request-header", "HTTP headers to send with an authentication request")
	if withCache {
		f.BoolVar(&o.ForceRefresh, "force-refresh", false, "If set, refresh the ID token regardless of its expiration time")
		f.StringVar(&o.CacheDir, "token-cache-dir", tokencache.DefaultDir(), "Path to a directory of the token cache")
		f.StringVar(&o.CacheStorage, "token-cache-storage", "disk", "Storage for the token cache. One of (disk|keyring|none)")
		f.DurationVar(&o.Margin, "token-expiry-margin", 60*time.Second, "[gatehouse] Use a cached token only while it is valid for longer than this")
		f.DurationVar(&o.LockTimeout, "token-cache-lock-timeout", 0, "[gatehouse] How long to wait for another run holding the token cache entry (default: the authentication timeout plus 30s)")
		o.Exchange.add(f)
	}
	o.addTLS(f)
	f.BoolVar(&o.UsePKCE, "oidc-use-pkce", false, "Force PKCE S256 code challenge method")
	_ = f.MarkDeprecated("oidc-use-pkce", "use --oidc-pkce-method instead")
	f.StringVar(&o.PKCEMethod, "oidc-pkce-method", "auto", "PKCE code challenge method. Automatically determined by default. One of (auto|no|S256)")
	o.addAuthentication(f)
}

// AddStandalone registers the flags of kubelogin's standalone mode (its
// root command): the TLS and authentication flags, not the provider's,
// which come from the kubeconfig.
func (o *Flags) AddStandalone(f *pflag.FlagSet) {
	o.PKCEMethod = "auto"
	o.addTLS(f)
	o.addAuthentication(f)
}

func (o *Flags) addTLS(f *pflag.FlagSet) {
	f.StringArrayVar(&o.CAFiles, "certificate-authority", nil, "Path to a cert file for the certificate authority")
	f.StringArrayVar(&o.CAData, "certificate-authority-data", nil, "Base64 encoded cert for the certificate authority")
	f.BoolVar(&o.Insecure, "insecure-skip-tls-verify", false, "[SECURITY RISK] If set, the server's certificate will not be checked for validity")
	f.BoolVar(&o.RenegOnce, "tls-renegotiation-once", false, "If set, allow a remote server to request renegotiation once per connection")
	f.BoolVar(&o.RenegFreely, "tls-renegotiation-freely", false, "If set, allow a remote server to repeatedly request renegotiation")
}

func (o *Flags) addAuthentication(f *pflag.FlagSet) {
	f.StringVar(&o.GrantType, "grant-type", "auto", "Authorization grant type to use. One of (auto|authcode|authcode-keyboard|password|device-code|client-credentials)")
	f.StringSliceVar(&o.ListenAddress, "listen-address", DefaultListenAddresses, "[authcode] Address to bind to the local server. If multiple addresses are set, it will try binding in order")
	f.BoolVar(&o.SkipOpenBrowser, "skip-open-browser", false, "[authcode] Do not open the browser automatically")
	f.StringVar(&o.BrowserCommand, "browser-command", "", "[authcode] Command to open the browser")
	f.IntVar(&o.TimeoutSec, "authentication-timeout-sec", 180, "[authcode] Timeout of authentication in seconds")
	f.StringVar(&o.LocalServerCert, "local-server-cert", "", "[authcode] Certificate path for the local server")
	f.StringVar(&o.LocalServerKey, "local-server-key", "", "[authcode] Certificate key path for the local server")
	f.StringVar(&o.OpenURLAfterAuthentication, "open-url-after-authentication", "", "[authcode] If set, open the URL in the browser after authentication")
	f.Var(newPairsValue(&o.AuthRequestExtraParams), "oidc-auth-request-extra-params", "[authcode, authcode-keyboard, client-credentials] Extra query parameters to send with an authentication request")
	f.StringVar(&o.Username, "username", "", "[password] Username for resource owner password credentials grant")
	f.StringVar(&o.Password, "password", "", "[password] Password for resource owner password credentials grant")
}

// Validate checks the flags.
func (o *Flags) Validate() error {
	if o.IssuerURL == "" {
		return errors.New("--oidc-issuer-url is missing")
	}
	if o.ClientID == "" {
		return errors.New("--oidc-client-id is missing")
	}
	switch o.PKCEMethod {
	case "auto", "no", "S256":
	default:
		if !o.UsePKCE { // kubelogin reads no method with --oidc-use-pkce
			return errors.New("oidc-pkce-method must be one of (auto|no|S256)")
		}
	}
	switch o.GrantType {
	case "auto", "authcode", "authcode-keyboard", "device-code", "password", "client-credentials":
	default:
		return fmt.Errorf("grant-type must be one of (auto|authcode|authcode-keyboard|password|device-code|client-credentials), not %q", o.GrantType)
	}
	return o.Exchange.validate(o)
}

// PKCE returns the method and kubelogin's enum value for the cache key.
func (o *Flags) PKCE() (method string, enum int) {
	if o.UsePKCE {
		return "S256", 2
	}
	switch o.PKCEMethod {
	case "no":
		return "no", 1
	case "S256":
		return "S256", 2
	}
	return "auto", 0
}

// ExpandHome expands ~ in the path flags.
func (o *Flags) ExpandHome() {
	o.CacheDir = tokencache.ExpandHome(o.CacheDir)
	o.LocalServerCert = tokencache.ExpandHome(o.LocalServerCert)
	o.LocalServerKey = tokencache.ExpandHome(o.LocalServerKey)
	for i, f := range o.CAFiles {
		o.CAFiles[i] = tokencache.ExpandHome(f)
	}
}

// Renegotiation is the crypto/tls.RenegotiationSupport value (kept as an
// int so this package does not link crypto/tls).
func (o *Flags) Renegotiation() int {
	switch {
	case o.RenegOnce:
		return 1 // tls.RenegotiateOnceAsClient
	case o.RenegFreely:
		return 2 // tls.RenegotiateFreelyAsClient
	}
	return 0 // tls.RenegotiateNever
}

// Key is kubelogin's cache key for these flags.
func (o *Flags) Key() tokencache.Key {
	_, enum := o.PKCE()
	k := tokencache.Key{
		IssuerURL: o.IssuerURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		ExtraScopes: o.ExtraScopes, RedirectURL: o.RedirectURL, PKCEMethod: enum,
		UseAccessToken: o.UseAccessToken, RequestHeaders: o.RequestHeaders,
		CACertFilename: o.CAFiles, CACertData: o.CAData, SkipTLSVerify: o.Insecure,
		Renegotiation: o.Renegotiation(),
	}
	switch o.GrantType {
	case "authcode", "authcode-keyboard":
		k.AuthRequestExtraParams = o.AuthRequestExtraParams
	case "auto":
		if o.Username == "" {
			k.AuthRequestExtraParams = o.AuthRequestExtraParams
		} else {
			k.Username = o.Username
		}
	case "password":
		k.Username = o.Username
	case "client-credentials":
		// kubelogin passes the parameters on as a new map, empty but not
		// nil when there are none.
		k.AuthRequestExtraParams = o.AuthRequestExtraParams
		if k.AuthRequestExtraParams == nil {
			k.AuthRequestExtraParams = tokencache.Pairs{}
		}
	}
	return k
}

// DefaultListenAddresses are kubelogin's loopback addresses.
var DefaultListenAddresses = []string{"127.0.0.1:8000", "127.0.0.1:18000"}
