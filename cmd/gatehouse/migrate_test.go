package main

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/dexmigrate/dexfixture"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/pgtest"
)

// TestMigrateFromDexThenRefresh copies a Dex database (Dex's SQL tables
// as Dex writes them) with `gatehouse migrate from-dex`, then serves from
// the copy: the refresh token Dex handed out refreshes, the ID token
// keeps Dex's subject and is signed with Dex's key, and Dex's previous
// token, presented again, revokes the session.
func TestMigrateFromDexThenRefresh(t *testing.T) {
	for _, tc := range []struct {
		name string
		// open writes the fixture and returns Dex's storage block.
		open func(t *testing.T, fx *dexfixture.Fixture) string
	}{
		{"sqlite3", func(t *testing.T, fx *dexfixture.Fixture) string {
			file := filepath.Join(t.TempDir(), "dex.db")
			db, err := sql.Open("sqlite", "file:"+file)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fx.Write(t, db, dexfixture.SQLite)
			return "  type: sqlite3\n  config:\n    file: " + file
		}},
		{"postgres", func(t *testing.T, fx *dexfixture.Fixture) string {
			dsn := pgtest.DSN(t)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fx.Write(t, db, dexfixture.Postgres)
			return dexPostgresBlock(t, dsn)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := dexfixture.New(t)
			dir := t.TempDir()
			dexConfig, _ := writeConfig(t, filepath.Join(dir, "dex"), tc.open(t, fx))
			ghConfig, s := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"))

			out, _, err := runCLI(t, "migrate", "from-dex", "--dex-config", dexConfig, "--config", ghConfig, "--dry-run")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"would copy refresh token " + fx.LocalRefreshID, "would copy password alice@example.com", "would copy signing keys dex-current-kid", "dry run: nothing was written"} {
				if !strings.Contains(out, want) {
					t.Errorf("dry run says nothing of %q:\n%s", want, out)
				}
			}
			out, _, err = runCLI(t, "migrate", "from-dex", "--dex-config", dexConfig, "--config", ghConfig, "--dry-run")
			if err != nil || !strings.Contains(out, "refresh tokens: 2 would copy") {
				t.Fatalf("the dry run wrote something (a second dry run: %v):\n%s", err, out)
			}
			clientsOut := filepath.Join(dir, "dex-clients.yaml")
			out, _, err = runCLI(t, "migrate", "from-dex", "--dex-config", dexConfig, "--config", ghConfig, "--config-out", clientsOut)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "refresh tokens: 2 copy") || !strings.Contains(out, "passwords:      1 copy") {
				t.Fatalf("copy:\n%s", out)
			}
			snippet, err := os.ReadFile(clientsOut)
			if err != nil || !strings.Contains(string(snippet), "id: grafana") || !strings.Contains(string(snippet), "secret: grafana-secret") ||
				!strings.Contains(string(snippet), "issuer: https://gitlab.example.com") {
				t.Fatalf("clients and connectors for the config (%v):\n%s", err, snippet)
			}
			out, _, err = runCLI(t, "migrate", "from-dex", "--dex-config", dexConfig, "--config", ghConfig)
			if err != nil || !strings.Contains(out, "refresh tokens: 2 unchanged") || strings.Contains(out, "\ncopy ") {
				t.Fatalf("a second copy is not a no-op (%v):\n%s", err, out)
			}

			stop := run(t, ghConfig, s)
			defer stop()
			r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fx.Tokens[fx.LocalRefreshID]}})
			if r["status"] != 200 {
				t.Fatalf("refresh with the token Dex handed out: %v", r)
			}
			idt := r["id_token"].(string)
			if kid := jwtPart(t, idt, 0)["kid"]; kid != fx.SigningKey.KeyID {
				t.Errorf("ID token signed with key %v, want Dex's %s", kid, fx.SigningKey.KeyID)
			}
			claims := jwtClaims(t, idt)
			if sub, conn, _ := issuer.DecodeSubject(claims["sub"].(string)); sub != fx.UserID || conn != "local" || claims["email"] != fx.Email {
				t.Errorf("ID token claims: %v", claims)
			}
			keys := get(t, s, "/keys")
			for _, kid := range []string{fx.SigningKey.KeyID, fx.OldKey.KeyID} {
				if !strings.Contains(keys, strconv.Quote(kid)) {
					t.Errorf("/keys does not publish Dex's key %s: %s", kid, keys)
				}
			}
			next, _ := r["refresh_token"].(string)
			if strings.Count(next, ".") != 1 {
				t.Errorf("the new refresh token is not in gatehouse's format: %q", next)
			}
			// Dex's token again: a replay (reuseInterval is 0s here), so
			// the session ends, the new token with it.
			if r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fx.Tokens[fx.LocalRefreshID]}}); r["status"] != 400 || r["error"] != "invalid_grant" {
				t.Fatalf("Dex's token presented again: %v", r)
			}
			if r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}}); r["status"] != 400 {
				t.Fatalf("the successor after a replay: %v", r)
			}
			// Dex's previous token (its obsolete one) never works.
			if r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {dexfixture.Token(fx.LocalRefreshID, "local-secret-1")}}); r["status"] != 400 {
				t.Fatalf("Dex's obsolete token: %v", r)
			}
		})
	}
}

// dexPostgresBlock writes a PostgreSQL URL as Dex's postgres keys (Dex
// has no dsn key).
func dexPostgresBlock(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return fmt.Sprintf("  type: postgres\n  config:\n    host: %s\n    port: %s\n    database: %s\n    user: %s\n    password: %q\n    ssl:\n      mode: disable",
		u.Hostname(), port, strings.TrimPrefix(u.Path, "/"), u.User.Username(), pw)
}

func TestMigrateFromDexErrors(t *testing.T) {
	dir := t.TempDir()
	dexMemory, _ := writeConfig(t, filepath.Join(dir, "dex"), "  type: memory")
	gh, _ := writeConfig(t, dir, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"))
	noStorage := filepath.Join(dir, "nostorage.yaml")
	if err := os.WriteFile(noStorage, []byte("issuer: https://x.example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", gh}, "--dex-config (Dex's config.yaml, to find its storage) and --config"},
		{[]string{"--dex-config", dexMemory, "--config", gh}, "nothing to copy: Dex's storage is memory"},
		{[]string{"--dex-config", noStorage, "--config", gh}, "no storage section"},
		{[]string{"--dex-config", filepath.Join(dir, "missing.yaml"), "--config", gh}, "no such file"},
	} {
		_, _, err := runCLI(t, append([]string{"migrate", "from-dex"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// startDex runs the Dex binary of DEX_BIN on path until the returned stop
// is called, and waits until it answers.
func startDex(t *testing.T, dexBin, path string, s served) (stop func()) {
	t.Helper()
	logf, err := os.Create(path + ".dex.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dexBin, "serve", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			deadline = time.Time{}
		default:
		}
		if resp, err := s.client.Get(s.issuer + "/.well-known/openid-configuration"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop
			}
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dex never answered:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMigrateFromRealDex has Dex v2.45.1 (DEX_BIN, built from its public
// source) hand out and rotate a session with its own SQLite or PostgreSQL
// storage, copies that storage with `migrate from-dex`, and refreshes the
// session with gatehouse on the same issuer URL.
func TestMigrateFromRealDex(t *testing.T) {
	dexBin := os.Getenv("DEX_BIN")
	if dexBin == "" {
		t.Skip("DEX_BIN not set: build Dex v2.45.1 from its source and point DEX_BIN at it")
	}
	for _, tc := range []struct {
		name  string
		block func(t *testing.T, dir string) string
	}{
		{"sqlite3", func(t *testing.T, dir string) string {
			return "  type: sqlite3\n  config:\n    file: " + filepath.Join(dir, "dex.db")
		}},
		{"postgres", func(t *testing.T, _ string) string { return dexPostgresBlock(t, pgtest.DSN(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dexBlock := tc.block(t, dir)
			dexConfig, s := writeConfig(t, filepath.Join(dir, "dex"), dexBlock)
			// Dex refuses bcrypt costs below 10 (writeConfig's is 4).
			data, _ := os.ReadFile(dexConfig)
			hash, _ := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.DefaultCost)
			data = regexp.MustCompile(`hash: ".*"`).ReplaceAllLiteral(data, []byte(fmt.Sprintf("hash: %q", hash)))
			if err := os.WriteFile(dexConfig, data, 0o600); err != nil {
				t.Fatal(err)
			}
			stopDex := startDex(t, dexBin, dexConfig, s)
			first := passwordGrant(t, s, url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid offline_access email profile"}})
			if first["status"] != 200 {
				stopDex()
				t.Fatalf("Dex password grant: %v", first)
			}
			second := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
			stopDex()
			if second["status"] != 200 {
				t.Fatalf("Dex refresh: %v", second)
			}
			dexID := second["id_token"].(string)

			// gatehouse takes over the same issuer URL, with its own store.
			ghConfig := filepath.Join(dir, "gatehouse.yaml")
			gh := strings.Replace(string(data), dexBlock, "  type: sqlite3\n  config:\n    file: "+filepath.Join(dir, "gatehouse.db"), 1)
			if err := os.WriteFile(ghConfig, []byte(gh), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _, err := runCLI(t, "migrate", "from-dex", "--dex-config", dexConfig, "--config", ghConfig)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "refresh tokens: 1 copy") || !strings.Contains(out, "signing keys:   1 copy") {
				t.Fatalf("copy:\n%s", out)
			}
			stop := run(t, ghConfig, s)
			defer stop()
			r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second["refresh_token"].(string)}})
			if r["status"] != 200 {
				t.Fatalf("gatehouse refreshing Dex's session: %v", r)
			}
			ours := jwtClaims(t, r["id_token"].(string))
			theirs := jwtClaims(t, dexID)
			for _, k := range []string{"iss", "sub", "aud", "email", "email_verified", "name"} {
				if fmt.Sprint(ours[k]) != fmt.Sprint(theirs[k]) {
					t.Errorf("claim %s: gatehouse %v, Dex %v", k, ours[k], theirs[k])
				}
			}
			if a, b := jwtPart(t, r["id_token"].(string), 0)["kid"], jwtPart(t, dexID, 0)["kid"]; a != b {
				t.Errorf("gatehouse signs with key %v, Dex signed with %v: kube-apiserver would have to fetch new keys", a, b)
			}
			// Dex's first token was rotated out by Dex: presenting it now
			// is a replay.
			if r := passwordGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}); r["status"] != 400 {
				t.Fatalf("Dex's rotated-out token: %v", r)
			}
		})
	}
}
