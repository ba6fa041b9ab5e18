// Package sqlrow maps storage objects to table rows for the SQL backends
// (sqlite, postgres). Each object has one field list (a func over a
// Binder) that names its columns in order and either reads the values out
// as query arguments or scans a row into them, so column names, arguments
// and scan destinations cannot drift apart.
//
// Scalars are real columns; lists and structs (scopes, groups, response
// types, verification keys) are JSON text; byte slices are blobs (NULL
// when empty). How times are stored is the backend's Dialect.
package sqlrow

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row or pgx.Rows.
type Scanner interface {
	Scan(dest ...any) error
}

// Dialect is what differs between the backends.
type Dialect struct {
	// Param is the placeholder of the i-th argument, from 1.
	Param func(i int) string
	// TimeArg is the query argument for a canonical time.
	TimeArg func(t time.Time) any
	// TimeScan returns a scan destination for a time column and a function
	// that, after the scan, sets *p to the canonical time read.
	TimeScan func(p *time.Time) (dest any, done func())
}

// Binder walks an object's fields: in write mode it collects query
// arguments, in read mode scan destinations. Names are collected in both.
type Binder struct {
	d     *Dialect
	write bool
	names []string
	vals  []any // arguments (write) or destinations (read)
	post  []func() error
	err   error
}

func (b *Binder) add(name string, v any, post func() error) {
	b.names = append(b.names, name)
	b.vals = append(b.vals, v)
	if post != nil {
		b.post = append(b.post, post)
	}
}

// String is a TEXT column.
func (b *Binder) String(name string, p *string) {
	if b.write {
		b.add(name, *p, nil)
	} else {
		b.add(name, p, nil)
	}
}

// Bool is a boolean column (INTEGER 0/1 in SQLite).
func (b *Binder) Bool(name string, p *bool) {
	if b.write {
		b.add(name, *p, nil)
	} else {
		b.add(name, p, nil)
	}
}

// Int64 is an integer column.
func (b *Binder) Int64(name string, p *int64) {
	if b.write {
		b.add(name, *p, nil)
	} else {
		b.add(name, p, nil)
	}
}

// Int is an integer column.
func (b *Binder) Int(name string, p *int) {
	if b.write {
		b.add(name, int64(*p), nil)
		return
	}
	var v int64
	b.add(name, &v, func() error { *p = int(v); return nil })
}

// Duration is an integer column of nanoseconds.
func (b *Binder) Duration(name string, p *time.Duration) {
	if b.write {
		b.add(name, int64(*p), nil)
		return
	}
	var v int64
	b.add(name, &v, func() error { *p = time.Duration(v); return nil })
}

// Bytes is a blob column; an empty slice is stored as NULL and read as nil.
func (b *Binder) Bytes(name string, p *[]byte) {
	if b.write {
		if len(*p) == 0 {
			b.add(name, nil, nil)
		} else {
			b.add(name, *p, nil)
		}
		return
	}
	b.add(name, p, func() error { *p = canon.Bytes(*p); return nil })
}

// Time is a time column, stored as the Dialect says, at microsecond
// precision in UTC.
func (b *Binder) Time(name string, p *time.Time) {
	if b.write {
		b.add(name, b.d.TimeArg(canon.Time(*p)), nil)
		return
	}
	dest, done := b.d.TimeScan(p)
	b.add(name, dest, func() error { done(); return nil })
}

// Strings is a JSON array column; empty is stored as [] and read as nil.
func (b *Binder) Strings(name string, p *[]string) {
	if b.write {
		if len(*p) == 0 {
			b.add(name, "[]", nil)
			return
		}
		j, err := json.Marshal(*p)
		if err != nil && b.err == nil {
			b.err = fmt.Errorf("encode %s: %w", name, err)
		}
		b.add(name, string(j), nil)
		return
	}
	var s string
	b.add(name, &s, func() error {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return fmt.Errorf("decode %s: %w", name, err)
		}
		*p = canon.Strings(v)
		return nil
	})
}

// Claims are the claim columns; groups are a JSON array.
func (b *Binder) Claims(c *storage.Claims) {
	b.String("user_id", &c.UserID)
	b.String("username", &c.Username)
	b.String("preferred_username", &c.PreferredUsername)
	b.String("email", &c.Email)
	b.Bool("email_verified", &c.EmailVerified)
	b.Strings("claim_groups", &c.Groups)
}

// VerificationKeys is a JSON array column of public keys.
func (b *Binder) VerificationKeys(name string, p *[]storage.VerificationKey) {
	if b.write {
		vks := canon.Keys(storage.Keys{VerificationKeys: *p}).VerificationKeys
		if vks == nil {
			vks = []storage.VerificationKey{}
		}
		j, err := json.Marshal(vks)
		if err != nil && b.err == nil {
			b.err = fmt.Errorf("encode %s: %w", name, err)
		}
		b.add(name, string(j), nil)
		return
	}
	var s string
	b.add(name, &s, func() error {
		var v []storage.VerificationKey
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return fmt.Errorf("decode %s: %w", name, err)
		}
		*p = canon.Keys(storage.Keys{VerificationKeys: v}).VerificationKeys
		return nil
	})
}

// Table describes how one kind of object is stored. Its field list must
// bind the key column first.
type Table[T any] struct {
	Name   string
	Fields func(b *Binder, v *T)
	// Expiry returns the object's expiry, or is nil for objects that do
	// not expire.
	Expiry func(v *T) time.Time
}

// Columns returns the column names in field order; the first is the key.
func (t *Table[T]) Columns() []string {
	b := &Binder{d: &Dialect{TimeArg: func(time.Time) any { return nil }}, write: true}
	var v T
	t.Fields(b, &v)
	return b.names
}

// Args returns the query arguments for v in column order.
func (t *Table[T]) Args(d *Dialect, v *T) ([]any, error) {
	b := &Binder{d: d, write: true}
	t.Fields(b, v)
	return b.vals, b.err
}

// Scan reads one row selected with the columns in order.
func (t *Table[T]) Scan(d *Dialect, row Scanner) (T, error) {
	var v T
	b := &Binder{d: d}
	t.Fields(b, &v)
	if err := row.Scan(b.vals...); err != nil {
		return v, err
	}
	for _, f := range b.post {
		if err := f(); err != nil {
			return v, fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	return v, nil
}

// Expired reports whether v has an expiry before now.
func (t *Table[T]) Expired(v *T, now time.Time) bool {
	return t.Expiry != nil && now.After(t.Expiry(v))
}

// Queries are the statements for one table in one dialect.
type Queries struct {
	Select string // ... WHERE key = p1
	Insert string
	Update string // key is p1, the other columns follow
	Delete string
	Cols   string // the column list, for other SELECTs
}

// NewQueries builds the statements for t in dialect d.
func NewQueries[T any](t *Table[T], d *Dialect) Queries {
	cols := t.Columns()
	params := make([]string, len(cols))
	sets := make([]string, 0, len(cols)-1)
	for i, c := range cols {
		params[i] = d.Param(i + 1)
		if i > 0 {
			sets = append(sets, c+" = "+params[i])
		}
	}
	list := strings.Join(cols, ", ")
	return Queries{
		Select: "SELECT " + list + " FROM " + t.Name + " WHERE " + cols[0] + " = " + d.Param(1),
		Insert: "INSERT INTO " + t.Name + " (" + list + ") VALUES (" + strings.Join(params, ", ") + ")",
		Update: "UPDATE " + t.Name + " SET " + strings.Join(sets, ", ") + " WHERE " + cols[0] + " = " + params[0],
		Delete: "DELETE FROM " + t.Name + " WHERE " + cols[0] + " = " + d.Param(1),
		Cols:   list,
	}
}

// NumberedParam is SQLite's ?N placeholder.
func NumberedParam(i int) string { return "?" + strconv.Itoa(i) }

// DollarParam is PostgreSQL's $N placeholder.
func DollarParam(i int) string { return "$" + strconv.Itoa(i) }

// The tables. Column names are those of the migrations.
var (
	AuthRequests = &Table[storage.AuthRequest]{
		Name: "auth_requests",
		Fields: func(b *Binder, a *storage.AuthRequest) {
			b.String("id", &a.ID)
			b.String("client_id", &a.ClientID)
			b.Strings("response_types", &a.ResponseTypes)
			b.Strings("scopes", &a.Scopes)
			b.String("redirect_uri", &a.RedirectURI)
			b.String("nonce", &a.Nonce)
			b.String("state", &a.State)
			b.String("code_challenge", &a.PKCE.CodeChallenge)
			b.String("code_challenge_method", &a.PKCE.CodeChallengeMethod)
			b.String("prompt", &a.Prompt)
			b.Int("max_age", &a.MaxAge)
			b.Bytes("hmac_key", &a.HMACKey)
			b.String("connector_id", &a.ConnectorID)
			b.Bytes("connector_data", &a.ConnectorData)
			b.Bool("logged_in", &a.LoggedIn)
			b.Claims(&a.Claims)
			b.Time("auth_time", &a.AuthTime)
			b.String("client_ip", &a.ClientIP)
			b.Time("expiry", &a.Expiry)
		},
		Expiry: func(a *storage.AuthRequest) time.Time { return a.Expiry },
	}
	AuthCodes = &Table[storage.AuthCode]{
		Name: "auth_codes",
		Fields: func(b *Binder, c *storage.AuthCode) {
			b.String("id", &c.ID)
			b.String("client_id", &c.ClientID)
			b.String("redirect_uri", &c.RedirectURI)
			b.String("nonce", &c.Nonce)
			b.Strings("scopes", &c.Scopes)
			b.String("code_challenge", &c.PKCE.CodeChallenge)
			b.String("code_challenge_method", &c.PKCE.CodeChallengeMethod)
			b.String("connector_id", &c.ConnectorID)
			b.Bytes("connector_data", &c.ConnectorData)
			b.Claims(&c.Claims)
			b.Time("auth_time", &c.AuthTime)
			b.Time("expiry", &c.Expiry)
			b.Time("redeemed_at", &c.RedeemedAt)
			b.String("family_id", &c.FamilyID)
		},
		Expiry: func(c *storage.AuthCode) time.Time { return c.Expiry },
	}
	RefreshFamilies = &Table[storage.RefreshFamily]{
		Name: "refresh_families",
		Fields: func(b *Binder, f *storage.RefreshFamily) {
			b.String("id", &f.ID)
			b.String("client_id", &f.ClientID)
			b.String("connector_id", &f.ConnectorID)
			b.Strings("scopes", &f.Scopes)
			b.String("nonce", &f.Nonce)
			b.Claims(&f.Claims)
			b.Bytes("connector_data", &f.ConnectorData)
			b.Time("claims_refreshed_at", &f.ClaimsRefreshedAt)
			b.Time("auth_time", &f.AuthTime)
			b.Int64("generation", &f.Generation)
			b.Bytes("current_hash", &f.CurrentHash)
			b.Bytes("previous_hash", &f.PreviousHash)
			b.Time("rotated_at", &f.RotatedAt)
			b.Bytes("rotation_key", &f.RotationKey)
			b.Time("created_at", &f.CreatedAt)
			b.Time("last_used", &f.LastUsed)
			b.String("client_ip", &f.ClientIP)
			b.Bool("revoked", &f.Revoked)
		},
	}
	DeviceRequests = &Table[storage.DeviceRequest]{
		Name: "device_requests",
		Fields: func(b *Binder, d *storage.DeviceRequest) {
			b.String("device_code_hash", &d.DeviceCodeHash)
			b.String("user_code", &d.UserCode)
			b.String("client_id", &d.ClientID)
			b.Strings("scopes", &d.Scopes)
			b.Time("expiry", &d.Expiry)
			b.Duration("poll_interval_ns", &d.Interval)
			b.Time("last_poll", &d.LastPoll)
			b.String("status", &d.Status)
			b.String("connector_id", &d.ConnectorID)
			b.Bytes("connector_data", &d.ConnectorData)
			b.Claims(&d.Claims)
			b.Time("auth_time", &d.AuthTime)
			b.String("nonce", &d.Nonce)
		},
		Expiry: func(d *storage.DeviceRequest) time.Time { return d.Expiry },
	}
	Passwords = &Table[storage.Password]{
		Name: "passwords",
		Fields: func(b *Binder, p *storage.Password) {
			b.String("email", &p.Email)
			b.Bytes("hash", &p.Hash)
			b.String("username", &p.Username)
			b.String("user_id", &p.UserID)
		},
	}
	// Keys is one row whose id is always 1; id is not one of its fields,
	// so the backends write its statements themselves (not NewQueries).
	Keys = &Table[storage.Keys]{
		Name: "signing_keys",
		Fields: func(b *Binder, k *storage.Keys) {
			b.Bytes("signing_key", &k.SigningKey)
			b.VerificationKeys("verification_keys", &k.VerificationKeys)
			b.Time("next_rotation", &k.NextRotation)
			b.Int64("version", &k.Version)
		},
	}
)
