package cli_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

// newOutageRig is newRig with an issuer whose user's upstream can go down.
func newOutageRig(t *testing.T) (*rig, *issuertest.Flaky) {
	t.Helper()
	clock := newClock()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	up := &issuertest.Flaky{Connector: issuertest.LocalConnector(t, store)}
	srv := issuertest.Start(t, issuertest.Options{Now: clock.Now, IDTokenTTL: time.Hour, Storage: store,
		Connectors: []issuer.Connector{{ID: local.ID, Type: "local", Name: "Corp Directory", Impl: up}}})
	return &rig{t: t, srv: srv, clock: clock, dir: filepath.Join(t.TempDir(), "cache"), br: &httpBrowser{t: t, srv: srv}}, up
}

// cacheContents lists the cache folder's entries with their contents (locks left out).
func cacheContents(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"="+string(b))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestRefreshDuringOutage: the issuer answers 503 temporarily_unavailable
// while the user's identity provider is down. The plugin keeps its cache
// (the refresh token was not used up), says so in one line, opens no
// browser, in a terminal or not; once the provider is back, the same
// refresh token refreshes.
func TestRefreshDuringOutage(t *testing.T) {
	down := &connector.UserError{Status: http.StatusServiceUnavailable, Description: "Corp Directory cannot be reached", RetryAfter: 42 * time.Second}
	for _, execInfo := range []string{execInfoV1NonInteract, execInfoV1} {
		t.Run("expired token "+execInfo[len(execInfo)-20:], func(t *testing.T) {
			r, dir := newOutageRig(t)
			ctx := context.Background()
			first := r.mustLogin(ctx)
			before := cacheContents(t, r.dir)
			r.clock.Add(2 * time.Hour)
			dir.Fail(down)
			res := r.run(ctx, execInfo, r.args())
			if res.code == 0 || res.stdout != "" {
				t.Fatalf("exit %d with stdout %q during the outage", res.code, res.stdout)
			}
			if lines := strings.Count(strings.TrimSpace(res.stderr), "\n") + 1; lines != 1 {
				t.Errorf("stderr has %d lines, want 1: %q", lines, res.stderr)
			}
			for _, want := range []string{"503 temporarily_unavailable", "Corp Directory cannot be reached", "your login is kept", "try again in 42s"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr does not say %q: %q", want, res.stderr)
				}
			}
			if r.br.opened.Load() != 1 {
				t.Fatal("the outage opened the browser")
			}
			if after := cacheContents(t, r.dir); after != before {
				t.Fatalf("the cache changed during the outage:\n%s\nwas\n%s", after, before)
			}
			dir.Fail(nil)
			res = r.run(ctx, execInfo, r.args())
			if res.code != 0 {
				t.Fatalf("after the outage: exit %d: %s", res.code, res.stderr)
			}
			if tok, exp := tokenV1(t, res.stdout); tok == first || !exp.After(r.clock.Now()) {
				t.Fatal("after the outage the token was not refreshed")
			}
			if r.br.opened.Load() != 1 {
				t.Fatal("the refresh after the outage opened the browser")
			}
		})
	}
	t.Run("token still valid inside the margin", func(t *testing.T) {
		r, dir := newOutageRig(t)
		ctx := context.Background()
		first := r.mustLogin(ctx)
		r.clock.Add(59*time.Minute + 30*time.Second)
		dir.Fail(down)
		res := r.run(ctx, execInfoV1NonInteract, r.args())
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		if tok, _ := tokenV1(t, res.stdout); tok != first {
			t.Error("the still valid cached token was not used")
		}
		if !strings.HasPrefix(res.stderr, "warning: cannot refresh the token now") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
			t.Errorf("stderr = %q, want one warning line", res.stderr)
		}
	})
}
