// Package warm is get-token's warm path: a cached ID token that outlives
// the margin is written as the ExecCredential. It links only the cache,
// the JWT payload decoder and the ExecCredential writer, so that the
// one-file plugin's front end (cmd/kubectl-gatehouse/internal/front) can
// run it without linking the HTTPS client.
package warm

import (
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/login/execcredential"
	"github.com/gatehouse-dev/gatehouse/internal/login/jwtpayload"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// Usable returns the ID token's expiry and whether it is valid for longer
// than margin at now. An unreadable token is not usable.
func Usable(e tokencache.Entry, now time.Time, margin time.Duration) (time.Time, bool, error) {
	if e.IDToken == "" {
		return time.Time{}, false, nil
	}
	exp, err := jwtpayload.Expiry(e.IDToken)
	if err != nil {
		return time.Time{}, false, err
	}
	return exp, now.Add(margin).Before(exp), nil
}

// Serve writes the ExecCredential for key's cached token when it is usable,
// reading the entry without the lock (entries are replaced by rename, so a
// reader sees a whole one). It reports whether it wrote; on false the
// caller goes the cold way (lock, refresh, login).
func Serve(w io.Writer, store tokencache.Store, key tokencache.Key, info execcredential.Info, now time.Time, margin time.Duration) (bool, error) {
	e, err := store.Load(key)
	if err != nil {
		return false, nil
	}
	exp, ok, _ := Usable(e, now, margin)
	if !ok {
		return false, nil
	}
	return true, execcredential.Write(w, info, e.IDToken, exp)
}
