// Package dexfixture builds, for tests, a Dex database as Dex v2.45
// writes it: Dex's SQL tables (dex-schema.sql) holding a signing key set,
// a password, refresh tokens with an offline session, a client and a
// connector, each column encoded the way Dex's SQL storage encodes it.
package dexfixture

import (
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"
)

//go:embed dex-schema.sql
var schema string

// Fixture is what the database holds.
type Fixture struct {
	// SigningKey is Dex's current private key; OldKey a rotated-out one
	// still published.
	SigningKey, OldKey jose.JSONWebKey
	NextRotation       time.Time
	// Password of the user Email in Dex's password database.
	Email, Password, UserID string
	// Refresh tokens Dex handed out: Tokens[id] is the client's token.
	Tokens map[string]string
	// LocalRefreshID is alice's session through the password database;
	// GitHubRefreshID a session whose connector data is in the offline
	// session (as Dex keeps it after a refresh).
	LocalRefreshID, GitHubRefreshID string
	// SessionConnectorData is the GitHub offline session's.
	SessionConnectorData []byte
	Now                  time.Time
}

// New generates a fixture.
func New(t testing.TB) *Fixture {
	t.Helper()
	key := func(kid string) jose.JSONWebKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "RS256", Use: "sig"}
	}
	now := time.Now().UTC().Truncate(time.Second)
	f := &Fixture{
		SigningKey: key("dex-current-kid"), OldKey: key("dex-old-kid"), NextRotation: now.Add(5 * time.Hour),
		Email: "alice@example.com", Password: "alice-password", UserID: "alice-user-id",
		LocalRefreshID: "dexlocalrefresh0000000000", GitHubRefreshID: "dexgithubrefresh000000000",
		SessionConnectorData: []byte(`{"AccessToken":"gho_fixture"}`),
		Now:                  now,
	}
	f.Tokens = map[string]string{
		f.LocalRefreshID:  Token(f.LocalRefreshID, "local-secret-2"),
		f.GitHubRefreshID: Token(f.GitHubRefreshID, "github-secret-1"),
	}
	return f
}

// Token is the refresh token Dex hands a client: base64url of the
// protobuf {refresh_id = 1, token = 2} (Dex's server/internal).
func Token(id, secret string) string {
	var b []byte
	for i, v := range []string{id, secret} {
		b = append(b, byte((i+1)<<3|2), byte(len(v)))
		b = append(b, v...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Flavor is the database the fixture is written to.
type Flavor int

// Flavors.
const (
	SQLite Flavor = iota
	Postgres
)

// Write creates Dex's tables in db and fills them.
func (f *Fixture) Write(t testing.TB, db *sql.DB, flavor Flavor) {
	t.Helper()
	ddl := schema
	if flavor == SQLite {
		ddl = strings.NewReplacer("bytea", "blob", "timestamptz", "timestamp", "boolean", "integer").Replace(ddl)
	}
	for _, stmt := range strings.Split(ddl, ";") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("Dex schema: %v\n%s", err, stmt)
		}
	}
	// Dex's SQLite driver (mattn/go-sqlite3) stores times as text in
	// this layout, and booleans as integers.
	tm := func(v time.Time) any {
		if flavor == SQLite {
			return v.Format("2006-01-02 15:04:05.999999999-07:00")
		}
		return v
	}
	bl := func(v bool) any {
		if flavor == SQLite {
			if v {
				return 1
			}
			return 0
		}
		return v
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q := func(s string) string {
		if flavor == SQLite {
			return s
		}
		var out strings.Builder
		n := 0
		for _, r := range s {
			if r == '?' {
				n++
				fmt.Fprintf(&out, "$%d", n)
				continue
			}
			out.WriteRune(r)
		}
		return out.String()
	}
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q(stmt), args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	priv, _ := f.SigningKey.MarshalJSON()
	pub, _ := f.SigningKey.Public().MarshalJSON()
	oldPub := f.OldKey.Public()
	exec(`insert into keys (id, verification_keys, signing_key, signing_key_pub, next_rotation) values (?, ?, ?, ?, ?)`,
		"keys", js([]map[string]any{{"publicKey": &oldPub, "expiry": f.Now.Add(20 * time.Hour)}}), priv, pub, tm(f.NextRotation))

	hash, err := bcrypt.GenerateFromPassword([]byte(f.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	exec(`insert into password (email, hash, username, user_id, preferred_username, groups, name, email_verified) values (?, ?, ?, ?, ?, ?, ?, ?)`,
		f.Email, hash, "alice", f.UserID, "", []byte("[]"), "", nil)

	insertRefresh := func(id, secret, obsolete, connID string, data []byte, userID, email string, groups []string, created, used time.Time) {
		exec(`insert into refresh_token (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email, claims_email_verified, claims_groups,
			connector_id, connector_data, token, created_at, last_used, claims_preferred_username, obsolete_token) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, "kubernetes", js([]string{"openid", "offline_access", "email", "groups", "profile"}), "", userID, "Alice", email, bl(true), js(groups),
			connID, data, secret, tm(created), tm(used), "alice", obsolete)
	}
	insertRefresh(f.LocalRefreshID, "local-secret-2", "local-secret-1", "local", nil, f.UserID, f.Email, nil, f.Now.Add(-3*time.Hour), f.Now.Add(-time.Hour))
	insertRefresh(f.GitHubRefreshID, "github-secret-1", "", "github", nil, "1234", "alice@github.example", []string{"exampleorg:infra-team"}, f.Now.Add(-2*time.Hour), f.Now.Add(-2*time.Hour))
	ref := func(id string, created, used time.Time) map[string]any {
		return map[string]any{"kubernetes": map[string]any{"ID": id, "ClientID": "kubernetes", "CreatedAt": created, "LastUsed": used}}
	}
	exec(`insert into offline_session (user_id, conn_id, refresh, connector_data) values (?, ?, ?, ?)`,
		f.UserID, "local", js(ref(f.LocalRefreshID, f.Now.Add(-3*time.Hour), f.Now.Add(-time.Hour))), nil)
	exec(`insert into offline_session (user_id, conn_id, refresh, connector_data) values (?, ?, ?, ?)`,
		"1234", "github", js(ref(f.GitHubRefreshID, f.Now.Add(-2*time.Hour), f.Now.Add(-2*time.Hour))), f.SessionConnectorData)

	exec(`insert into client (id, secret, redirect_uris, trusted_peers, public, name, logo_url) values (?, ?, ?, ?, ?, ?, ?)`,
		"grafana", "grafana-secret", js([]string{"https://grafana.example.com/login/generic_oauth"}), js([]string{}), bl(false), "Grafana", "")
	exec(`insert into connector (id, type, name, resource_version, config) values (?, ?, ?, ?, ?)`,
		"gitlab", "oidc", "GitLab", "1", js(map[string]any{"issuer": "https://gitlab.example.com", "clientID": "gl", "clientSecret": "gl-secret", "redirectURI": "https://login.example.com/dex/callback"}))
	exec(`insert into migrations (num, at) values (?, ?)`, 17, tm(f.Now))
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
