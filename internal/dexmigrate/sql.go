package dexmigrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
)

// readSQL reads a Dex SQL database (SQLite or PostgreSQL): the tables of
// Dex's own SQL storage, or of its ent storage (DEX_ENT_ENABLED), which
// keep the same table and column names. Columns are read by name, so the
// columns that Dex versions added later may be missing.
func readSQL(ctx context.Context, db queryer) (*dexcompat.Snapshot, error) {
	snap := &dexcompat.Snapshot{}
	if err := eachRow(ctx, db, "password", func(r row) error {
		p := dexcompat.Password{Email: strings.ToLower(r.str("email")), Hash: r.bytes("hash"), Username: r.str("username"),
			UserID: r.str("user_id"), Name: r.str("name"), PreferredUsername: r.str("preferred_username")}
		if v, ok := r.boolOK("email_verified"); ok {
			p.EmailVerified = &v
		}
		if err := r.json("groups", &p.Groups); err != nil {
			return err
		}
		snap.Passwords = append(snap.Passwords, p)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachRow(ctx, db, "client", func(r row) error {
		c := dexcompat.Client{ID: r.str("id"), Secret: r.str("secret"), Public: r.bool("public"), Name: r.str("name"), LogoURL: r.str("logo_url")}
		if err := r.json("redirect_uris", &c.RedirectURIs); err != nil {
			return err
		}
		if err := r.json("trusted_peers", &c.TrustedPeers); err != nil {
			return err
		}
		snap.Clients = append(snap.Clients, c)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachRow(ctx, db, "connector", func(r row) error {
		snap.Connectors = append(snap.Connectors, dexcompat.Connector{ID: r.str("id"), Type: r.str("type"), Name: r.str("name"), Config: r.bytes("config")})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachRow(ctx, db, "keys", func(r row) error {
		k := &dexcompat.Keys{SigningKey: r.bytes("signing_key"), SigningKeyPub: r.bytes("signing_key_pub")}
		var err error
		if k.NextRotation, err = r.time("next_rotation"); err != nil {
			return err
		}
		if err := r.json("verification_keys", &k.VerificationKeys); err != nil {
			return err
		}
		snap.Keys = k
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachRow(ctx, db, "refresh_token", func(r row) error {
		t := dexcompat.RefreshToken{ID: r.str("id"), Token: r.str("token"), ObsoleteToken: r.str("obsolete_token"),
			ClientID: r.str("client_id"), ConnectorID: r.str("connector_id"), ConnectorData: r.bytes("connector_data"), Nonce: r.str("nonce"),
			Claims: dexcompat.Claims{UserID: r.str("claims_user_id"), Username: r.str("claims_username"), PreferredUsername: r.str("claims_preferred_username"),
				Email: r.str("claims_email"), EmailVerified: r.bool("claims_email_verified")}}
		var err error
		if t.CreatedAt, err = r.time("created_at"); err != nil {
			return err
		}
		if t.LastUsed, err = r.time("last_used"); err != nil {
			return err
		}
		if err := r.json("scopes", &t.Scopes); err != nil {
			return err
		}
		if err := r.json("claims_groups", &t.Claims.Groups); err != nil {
			return err
		}
		snap.RefreshTokens = append(snap.RefreshTokens, t)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachRow(ctx, db, "offline_session", func(r row) error {
		o := dexcompat.OfflineSession{UserID: r.str("user_id"), ConnID: r.str("conn_id"), ConnectorData: r.bytes("connector_data")}
		if err := r.json("refresh", &o.Refresh); err != nil {
			return err
		}
		snap.OfflineSessions = append(snap.OfflineSessions, o)
		return nil
	}); err != nil {
		return nil, err
	}
	snap.Sort()
	return snap, nil
}

// queryer is a database or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// row is one table row, by column name.
type row struct {
	table string
	cols  map[string]any
}

// eachRow calls f with every row of table. Table names come from this
// file only.
func eachRow(ctx context.Context, db queryer, table string, f func(row) error) error {
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+table)
	if err != nil {
		return fmt.Errorf("read Dex table %s: %w (is this Dex's database? Dex creates its tables at its first start)", table, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read Dex table %s: %w", table, err)
		}
		r := row{table: table, cols: make(map[string]any, len(names))}
		for i, n := range names {
			r.cols[strings.ToLower(n)] = vals[i]
		}
		if err := f(r); err != nil {
			return fmt.Errorf("read Dex table %s: %w", table, err)
		}
	}
	return rows.Err()
}

func (r row) str(col string) string {
	switch v := r.cols[col].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (r row) bytes(col string) []byte {
	switch v := r.cols[col].(type) {
	case string:
		return []byte(v)
	case []byte:
		return append([]byte(nil), v...)
	}
	return nil
}

func (r row) boolOK(col string) (bool, bool) {
	switch v := r.cols[col].(type) {
	case bool:
		return v, true
	case int64:
		return v != 0, true
	case string:
		return v == "1" || strings.EqualFold(v, "true"), true
	}
	return false, false
}

func (r row) bool(col string) bool {
	v, _ := r.boolOK(col)
	return v
}

// json decodes a column that Dex keeps as JSON (bytea, blob or jsonb);
// NULL or empty leaves v alone.
func (r row) json(col string, v any) error {
	b := r.bytes(col)
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("column %s: %w", col, err)
	}
	return nil
}

// sqliteTimes are the layouts SQLite drivers write times in (mattn's
// go-sqlite3, which Dex uses, writes the first).
var sqliteTimes = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05 MST",
	"2006-01-02",
}

func (r row) time(col string) (time.Time, error) {
	var s string
	switch v := r.cols[col].(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return v.UTC(), nil
	case string:
		s = v
	case []byte:
		s = string(v)
	case int64:
		return time.Unix(v, 0).UTC(), nil
	default:
		return time.Time{}, fmt.Errorf("column %s: a %T is not a time", col, v)
	}
	// Dex's default for rows older than the column.
	if s == "" || strings.HasPrefix(s, "0001-01-01 00:00:00") {
		return time.Time{}, nil
	}
	// mattn's driver appends " m=+..." monotonic readings when given a
	// time.Time with one.
	if i := strings.Index(s, " m="); i > 0 {
		s = s[:i]
	}
	for _, layout := range sqliteTimes {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("column %s: %q is not a time", col, s)
}
