// Package usecase holds the plugin's commands as use cases: each takes its
// collaborators (token cache, clock, authenticator, output) as fields, so
// tests swap the seams; cmd/kubectl-gatehouse and internal/login/cli only
// parse flags and wire them.
package usecase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
	"github.com/gatehouse-dev/gatehouse/internal/login/warm"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Authenticator gets a new token set: by refresh, or by an interactive
// login. flow.Login is the real one.
type Authenticator interface {
	Refresh(ctx context.Context, refreshToken string) (oidcclient.TokenSet, error)
	Interactive(ctx context.Context) (oidcclient.TokenSet, error)
	// NeedsStdin says what in Interactive reads standard input, naming
	// the flag that chose it; "" when nothing does (browser flows).
	NeedsStdin() string
}

// ErrLoginRequired is returned when only a new login would help and that
// login needs standard input, which kubectl did not give the plugin.
var ErrLoginRequired = errors.New("login required")

// GetToken is `get-token`: print an ExecCredential from the cache, or
// after a refresh, or after a login.
type GetToken struct {
	Cache tokencache.Store
	Key   tokencache.Key
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Margin: a cached token is used only while it is valid for longer.
	Margin time.Duration
	// LockTimeout bounds the wait for another run holding the entry.
	LockTimeout  time.Duration
	ForceRefresh bool
	Info         execcredential.Info
	Auth         Authenticator
	// Exchange, when set, prints an exchanged token instead of the
	// login's (Key stays the login's entry).
	Exchange *Exchange
	Stdout   io.Writer
	Stderr   io.Writer
	// Verbose logs each decision on Stderr.
	Verbose bool
	// Logf, when set, takes the log lines instead (the CLI passes klog's
	// -v 1 logger; the lines on the warm path are kubelogin's).
	Logf func(format string, args ...any)
	// Rerun is the command to suggest when a login is required and not
	// allowed.
	Rerun string
}

// Exchanger gets exchanged tokens (RFC 8693) from the issuer; flow.Exchanger
// is the real one.
type Exchanger interface {
	// Exchange exchanges a login's ID token for the cluster's.
	Exchange(ctx context.Context, subject string) (oidcclient.TokenSet, error)
	// ExchangeSubject exchanges a CI job's own token, taken from its
	// source.
	ExchangeSubject(ctx context.Context) (oidcclient.TokenSet, error)
}

// Exchange turns get-token into a token exchange. The printed token is
// cached under Key, with no refresh token: a new one is another exchange.
type Exchange struct {
	Key       tokencache.Key
	Exchanger Exchanger
	// CI: the subject token is the job's own (no login, no browser);
	// else it is the login's ID token, cached under GetToken.Key (one
	// login per issuer and client, however many clusters).
	CI bool
}

// producer makes a new token for an entry, given what the entry held.
type producer func(ctx context.Context, cached tokencache.Entry) (oidcclient.TokenSet, error)

// Run executes the use case.
func (u *GetToken) Run(ctx context.Context) error {
	now := u.Now
	if now == nil {
		now = time.Now
	}
	u.logf("WARNING: log may contain your secrets such as token or password")
	u.logf("credential plugin is called with apiVersion: %s", u.Info.APIVersion)
	if c, ok := u.Auth.(io.Closer); ok {
		defer c.Close()
	}
	key, produce := u.Key, producer(u.login(now))
	if x := u.Exchange; x != nil {
		key = x.Key
		produce = func(ctx context.Context, cached tokencache.Entry) (ts oidcclient.TokenSet, err error) {
			if x.CI {
				u.logf("exchanging the job's token")
				ts, err = x.Exchanger.ExchangeSubject(ctx)
			} else {
				var subject string
				if subject, _, err = u.token(ctx, u.Key, u.login(now), now); err != nil {
					return oidcclient.TokenSet{}, err
				}
				u.logf("exchanging the ID token for the cluster's audience")
				ts, err = x.Exchanger.Exchange(ctx, subject)
			}
			// An outage keeps the exchanged token while it is valid, as
			// a refresh's does the login's.
			var unavailable *oidcclient.UnavailableError
			if errors.As(err, &unavailable) {
				return ts, u.keepSession(now(), cached, unavailable)
			}
			return ts, err
		}
	}
	tok, exp, err := u.token(ctx, key, produce, now)
	if err != nil {
		return err
	}
	return execcredential.Write(u.Stdout, u.Info, tok, exp)
}

// token returns key's token from the cache, or from produce under the
// entry's lock, saved.
func (u *GetToken) token(ctx context.Context, key tokencache.Key, produce producer, now func() time.Time) (string, time.Time, error) {
	// Warm path: entries are replaced by rename, so reading without the
	// lock sees a whole entry.
	if u.ForceRefresh {
		u.logf("forcing refresh of the existing token")
	} else {
		u.logf("finding a token cache")
		if e, err := u.Cache.Load(key); err == nil {
			u.logf("checking expiration of the existing token")
			if exp, ok := u.usable(e, now()); ok {
				u.logf("you already have a valid token until %s", exp.Local())
				return e.IDToken, exp, nil
			}
		} else {
			u.logf("could not find a token cache: %v", err)
		}
	}

	u.logf("acquiring the lock of token cache")
	unlock, err := u.Cache.Lock(ctx, key, u.LockTimeout)
	if err != nil {
		return "", time.Time{}, err
	}
	defer func() {
		u.logf("releasing the lock of token cache")
		_ = unlock()
	}()

	// Another run may have logged in or refreshed while we waited.
	cached, err := u.Cache.Load(key)
	if err == nil && !u.ForceRefresh {
		if exp, ok := u.usable(cached, now()); ok {
			u.logf("using the token another run cached (valid until %s)", exp.Format(time.RFC3339))
			return cached.IDToken, exp, nil
		}
	}
	ts, err := produce(ctx, cached)
	var keep *keepCached
	if errors.As(err, &keep) {
		return cached.IDToken, keep.exp, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	exp, err := jwtpayload.Expiry(ts.IDToken)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("the issuer returned a token without a usable exp: %w", err)
	}
	if err := u.Cache.Save(key, tokencache.Entry{IDToken: ts.IDToken, RefreshToken: ts.RefreshToken}); err != nil {
		return "", time.Time{}, err
	}
	return ts.IDToken, exp, nil
}

// login refreshes the cached entry's token, or logs in.
func (u *GetToken) login(now func() time.Time) producer {
	return func(ctx context.Context, cached tokencache.Entry) (oidcclient.TokenSet, error) {
		var ts oidcclient.TokenSet
		var refreshErr error
		if cached.RefreshToken != "" {
			u.logf("refreshing the token")
			ts, refreshErr = u.Auth.Refresh(ctx, cached.RefreshToken)
			if refreshErr == nil {
				return ts, nil
			}
			u.logf("refresh failed: %v", refreshErr)
		}
		var unavailable *oidcclient.UnavailableError
		if errors.As(refreshErr, &unavailable) {
			return ts, u.keepSession(now(), cached, unavailable)
		}
		// spec.interactive: false (interactiveMode: Never, or kubectl's
		// stdin is not a terminal) means only that kubectl gives the plugin
		// no standard input. A browser login needs none, so it goes ahead
		// (as with kubelogin, which ignores the field); only a login that
		// reads standard input is refused, saying what would make it work.
		if why := u.Auth.NeedsStdin(); why != "" && !u.Info.Interactive {
			reason := "no cached token"
			if refreshErr != nil {
				reason = "the refresh failed: " + oneLine(refreshErr.Error())
			} else if cached.IDToken != "" {
				reason = "the cached token expired and there is no refresh token"
			}
			return ts, fmt.Errorf("%w (%s), but %s and kubectl runs this plugin without it "+
				"(the kubeconfig's exec interactiveMode is Never, or kubectl's standard input is not a terminal); "+
				"log in through the browser instead (--grant-type=authcode, the default, or device-code), "+
				"or set interactiveMode: IfAvailable and run kubectl in a terminal, or run once in a terminal: %s",
				ErrLoginRequired, reason, why, u.Rerun)
		}
		if err := u.recentRefusal(now()); err != nil {
			return ts, err
		}
		if refreshErr != nil {
			termsafe.Fprintf(u.Stderr, "The refresh token was refused (%s); logging in again.\n", oneLine(refreshErr.Error()))
		}
		ts, err := u.Auth.Interactive(ctx)
		if err != nil {
			var r refusal
			if errors.As(err, &r) && r.Refused() {
				u.rememberRefusal(now(), err)
			}
			return ts, fmt.Errorf("login: %w", err)
		}
		u.forgetRefusal()
		return ts, nil
	}
}

// keepSession answers a refresh that the issuer could not do now (its
// upstream is down, it is busy or unreachable): the refresh token was not
// used up, so the cache stays as it is and no new login starts, which
// would meet the same outage (and, run by kubectl without a terminal,
// could only open a browser nobody watches). While the cached ID token
// has not expired it is used, with a one-line warning, unless
// --force-refresh asked for a new one (then, as kubelogin, it fails);
// otherwise the error says to run the command again later.
// It returns a *keepCached when the cached token is to be used.
func (u *GetToken) keepSession(now time.Time, cached tokencache.Entry, err *oidcclient.UnavailableError) error {
	retry := ""
	if err.RetryAfter > 0 {
		retry = " in " + err.RetryAfter.String()
	}
	if exp, xerr := jwtpayload.Expiry(cached.IDToken); xerr == nil && now.Before(exp) && !u.ForceRefresh {
		// The reason holds the issuer's error_description: termsafe.
		termsafe.Fprintf(u.Stderr, "warning: cannot refresh the token now (%s); using the cached token, valid until %s\n", oneLine(err.Error()), exp.Local().Format(time.TimeOnly))
		return &keepCached{exp: exp}
	}
	return fmt.Errorf("cannot refresh the token now (%s); your login is kept: try again%s", oneLine(err.Error()), retry)
}

// keepCached is keepSession's answer that the entry's cached token, valid
// until exp, is to be used as it is (not saved again).
type keepCached struct{ exp time.Time }

func (k *keepCached) Error() string {
	return "using the cached token until " + k.exp.Format(time.RFC3339)
}

// usable returns the token's expiry and whether it outlives the margin.
func (u *GetToken) usable(e tokencache.Entry, now time.Time) (time.Time, bool) {
	exp, ok, err := warm.Usable(e, now, u.Margin)
	switch {
	case err != nil:
		u.logf("cached token unreadable (%v): it will be replaced", err)
	case !ok && e.IDToken != "" && !now.Before(exp):
		u.logf("you have an expired token at %s", exp.Local())
	case !ok && e.IDToken != "":
		u.logf("cached token expires at %s, within the %s margin", exp.Format(time.RFC3339), u.Margin)
	}
	return exp, ok
}

func (u *GetToken) logf(format string, args ...any) {
	if u.Logf != nil {
		u.Logf(format, args...)
		return
	}
	if u.Verbose {
		fmt.Fprintf(u.Stderr, "get-token: "+format+"\n", args...)
	}
}

func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// refusal is implemented by login errors that are the issuer's answer
// (flow.AuthorizationError): the person was refused, not timed out.
type refusal interface{ Refused() bool }

// RefusalWindow is how long a refused login is answered from memory.
// kubectl calls a failing exec plugin again for each request it retries
// (five times for kubectl get's discovery), and tools like k9s poll: each
// call would open the browser again only to be refused again.
const RefusalWindow = 15 * time.Second

type refusalNote struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// refusalPath is next to the entry's file: <name>.refused, 0600, holding
// the time and the issuer's reason (no secrets). "" without a disk cache.
func (u *GetToken) refusalPath() string {
	if u.Cache.Storage != tokencache.StorageDisk && u.Cache.Storage != "" {
		return ""
	}
	return filepath.Join(u.Cache.Dir, u.Key.Checksum()+".refused")
}

// recentRefusal answers with the issuer's refusal of a login less than
// RefusalWindow ago, without opening the browser again.
func (u *GetToken) recentRefusal(now time.Time) error {
	p := u.refusalPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var n refusalNote
	if json.Unmarshal(b, &n) != nil || n.Reason == "" {
		return nil
	}
	age := now.Sub(n.At)
	if age < 0 || age >= RefusalWindow {
		return nil
	}
	return fmt.Errorf("login: %s (%s ago; the browser opens again %s after that refusal)", n.Reason, age.Round(time.Second), RefusalWindow)
}

func (u *GetToken) rememberRefusal(now time.Time, err error) {
	p := u.refusalPath()
	if p == "" {
		return
	}
	b, _ := json.Marshal(refusalNote{At: now, Reason: oneLine(err.Error())})
	// The cache folder exists: the entry's lock file is in it.
	tmp := p + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, p)
	}
}

func (u *GetToken) forgetRefusal() {
	if p := u.refusalPath(); p != "" {
		_ = os.Remove(p)
	}
}
