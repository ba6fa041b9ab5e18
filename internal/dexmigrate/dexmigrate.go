// Package dexmigrate copies a Dex installation's data into gatehouse's
// storage: `gatehouse migrate from-dex`. It reads Dex's SQLite or
// PostgreSQL database, or Dex's custom resources, and writes passwords,
// the signing keys and refresh tokens (with their offline sessions'
// connector data) to any gatehouse backend, so that every session Dex
// handed out refreshes with gatehouse. Clients and connectors that Dex
// kept in its storage (created through its gRPC API) are returned for the
// config file, where gatehouse keeps them.
//
// Running it again copies what changed in Dex since (a refresh token Dex
// rotated, a password changed) and leaves alone what gatehouse has
// already used; a dry run says what it would do and writes nothing.
package dexmigrate

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
	"github.com/gatehouse-dev/gatehouse/internal/storage/postgres"
)

// Read reads the Dex installation whose storage section is src (from
// Dex's config file), without writing to it.
func Read(ctx context.Context, src config.Storage, kubeOpts kubernetes.Config) (*dexcompat.Snapshot, error) {
	switch src.Type {
	case config.StorageSQLite3:
		// Read-only: the file stays exactly as Dex left it.
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: src.SQLite3.File}).EscapedPath()+"?mode=ro&_busy_timeout=10000")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		snap, err := readSQL(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("read Dex's SQLite database %s: %w", src.SQLite3.File, err)
		}
		return snap, nil
	case config.StoragePostgres:
		p := src.Postgres
		cs := postgres.Config{DSN: p.DSN, Host: p.Host, Port: p.Port, Database: p.Database, User: p.User, Password: p.Password,
			SSL: postgres.SSL{Mode: p.SSL.Mode, CAFile: p.SSL.CAFile, KeyFile: p.SSL.KeyFile, CertFile: p.SSL.CertFile}, ConnectionTimeout: p.ConnectionTimeout}.ConnString()
		db, err := sql.Open("pgx", cs)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
		if err != nil {
			return nil, fmt.Errorf("read Dex's PostgreSQL database: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		snap, err := readSQL(ctx, tx)
		if err != nil {
			return nil, fmt.Errorf("read Dex's PostgreSQL database: %w", err)
		}
		return snap, nil
	case config.StorageKubernetes:
		k := kubeOpts
		k.InCluster, k.KubeConfigFile = src.Kubernetes.InCluster, src.Kubernetes.KubeConfigFile
		s, err := kubernetes.OpenSource(ctx, k)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		snap, err := s.DexSnapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("read Dex's custom resources in namespace %s: %w", s.Namespace(), err)
		}
		return snap, nil
	case config.StorageMemory:
		return nil, errors.New("nothing to copy: Dex's storage is memory (its data went when Dex stopped)")
	}
	return nil, fmt.Errorf("storage type %q: gatehouse copies from Dex's sqlite3, postgres and kubernetes storage", src.Type)
}

// Action is what the copy does with one object.
type Action string

// Actions.
const (
	Create    Action = "create"
	Update    Action = "update"
	Unchanged Action = "unchanged"
	// Skip: gatehouse already has its own version (a session it rotated,
	// a key set of its own) or the object cannot be copied.
	Skip Action = "skip"
)

// Item is one object of the plan.
type Item struct {
	Kind   string // "password", "refresh token", "signing keys"
	Key    string // email, refresh token id, key ids
	Action Action
	Note   string
	apply  func(context.Context, storage.Storage) error
}

// Plan is what copying a snapshot into a store does, object by object.
type Plan struct {
	Items []Item
	// Clients and Connectors are those Dex kept in storage: gatehouse
	// takes them from its config file (see ConfigSnippet).
	Clients    []dexcompat.Client
	Connectors []dexcompat.Connector
}

// Options tune the plan.
type Options struct {
	// DexIDTokenLifetime is Dex's expiry.idTokens (default 24h): how long
	// Dex's current key stays published when gatehouse already has keys
	// of its own.
	DexIDTokenLifetime time.Duration
	Now                func() time.Time
}

// NewPlan compares the snapshot with what the target store holds.
func NewPlan(ctx context.Context, snap *dexcompat.Snapshot, target storage.Storage, opts Options) (*Plan, error) {
	if opts.DexIDTokenLifetime <= 0 {
		opts.DexIDTokenLifetime = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Plan{Clients: snap.Clients, Connectors: snap.Connectors}
	for _, pw := range snap.Passwords {
		it, err := planPassword(ctx, pw.Storage(), target)
		if err != nil {
			return nil, err
		}
		p.Items = append(p.Items, it)
	}
	if snap.Keys != nil {
		it, err := planKeys(ctx, *snap.Keys, target, opts)
		if err != nil {
			return nil, err
		}
		p.Items = append(p.Items, it)
	}
	for _, t := range snap.RefreshTokens {
		it, err := planRefresh(ctx, t, snap.SessionConnectorData(t.Claims.UserID, t.ConnectorID), target)
		if err != nil {
			return nil, err
		}
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// Apply writes the plan's creates and updates.
func (p *Plan) Apply(ctx context.Context, target storage.Storage) error {
	for _, it := range p.Items {
		if it.apply == nil {
			continue
		}
		if err := it.apply(ctx, target); err != nil {
			return fmt.Errorf("%s %s: %w", it.Kind, it.Key, err)
		}
	}
	return nil
}

// Count returns how many items of kind have action a.
func (p *Plan) Count(kind string, a Action) int {
	n := 0
	for _, it := range p.Items {
		if it.Kind == kind && it.Action == a {
			n++
		}
	}
	return n
}

// Item kinds.
const (
	KindPassword = "password"
	KindKeys     = "signing keys"
	KindRefresh  = "refresh token"
)

func planPassword(ctx context.Context, want storage.Password, target storage.Storage) (Item, error) {
	it := Item{Kind: KindPassword, Key: want.Email}
	have, err := target.GetPassword(ctx, want.Email)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		it.Action = Create
		it.apply = func(ctx context.Context, s storage.Storage) error { return s.CreatePassword(ctx, want) }
	case err != nil:
		return it, err
	case bytes.Equal(have.Hash, want.Hash) && have.Username == want.Username && have.UserID == want.UserID:
		it.Action = Unchanged
	default:
		it.Action, it.Note = Update, "changed in Dex"
		it.apply = func(ctx context.Context, s storage.Storage) error {
			return s.UpdatePassword(ctx, want.Email, func(storage.Password) (storage.Password, error) { return want, nil })
		}
	}
	return it, nil
}

// planKeys copies Dex's key set into a store without keys: gatehouse
// signs with Dex's key until Dex's next rotation, so tokens signed before
// and after the switch verify with one key set. A store that has keys of
// its own keeps them and publishes Dex's public keys beside them until
// Dex's tokens have expired.
func planKeys(ctx context.Context, dk dexcompat.Keys, target storage.Storage, opts Options) (Item, error) {
	want, err := dk.Storage()
	if err != nil {
		return Item{Kind: KindKeys}, err
	}
	it := Item{Kind: KindKeys, Key: dexcompat.KeyID(dk.SigningKey)}
	have, err := target.GetKeys(ctx)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		it.Action, it.Note = Create, fmt.Sprintf("Dex's key set: gatehouse signs with it until %s, then rotates", want.NextRotation.UTC().Format(time.RFC3339))
		it.apply = func(ctx context.Context, s storage.Storage) error { return s.UpdateKeys(ctx, 0, want) }
		return it, nil
	case err != nil:
		return it, err
	}
	if bytes.Equal(have.SigningKey, want.SigningKey) {
		it.Action = Unchanged
		return it, nil
	}
	now := opts.Now()
	published := map[string]bool{}
	for _, v := range have.VerificationKeys {
		published[dexcompat.KeyID(v.PublicKey)] = true
	}
	var add []storage.VerificationKey
	if kid := dexcompat.KeyID(dk.SigningKeyPub); kid != "" && !published[kid] && len(dk.SigningKeyPub) > 0 {
		add = append(add, storage.VerificationKey{PublicKey: dk.SigningKeyPub, Expiry: now.Add(opts.DexIDTokenLifetime)})
	}
	for _, v := range want.VerificationKeys {
		if kid := dexcompat.KeyID(v.PublicKey); !published[kid] && v.Expiry.After(now) {
			add = append(add, v)
		}
	}
	if len(add) == 0 {
		it.Action, it.Note = Unchanged, "gatehouse has keys of its own and publishes Dex's"
		return it, nil
	}
	it.Action, it.Note = Update, fmt.Sprintf("gatehouse keeps its own key set and publishes Dex's %d public key(s) until Dex's tokens expire", len(add))
	it.apply = func(ctx context.Context, s storage.Storage) error {
		cur, err := s.GetKeys(ctx)
		if err != nil {
			return err
		}
		cur.VerificationKeys = append(cur.VerificationKeys, add...)
		return s.UpdateKeys(ctx, cur.Version, cur)
	}
	return it, nil
}

func planRefresh(ctx context.Context, t dexcompat.RefreshToken, sessionData []byte, target storage.Storage) (Item, error) {
	it := Item{Kind: KindRefresh, Key: t.ID, Note: fmt.Sprintf("client %s, user %s via %s", t.ClientID, userName(t.Claims), t.ConnectorID)}
	if t.Token == "" {
		it.Action, it.Note = Skip, "a Dex 2.0 token without a secret: its client must log in again"
		return it, nil
	}
	want, err := dexcompat.Family(t, sessionData)
	if err != nil {
		return it, err
	}
	have, err := target.GetRefreshFamily(ctx, t.ID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		it.Action = Create
		it.apply = func(ctx context.Context, s storage.Storage) error { return s.CreateRefreshFamily(ctx, want) }
	case err != nil:
		return it, err
	case have.Generation != dexcompat.ImportedGeneration:
		it.Action, it.Note = Skip, "already refreshed with gatehouse"
	case sameDexState(have, want):
		it.Action = Unchanged
	default:
		it.Action = Update
		it.Note += "; rotated by Dex since the last copy"
		it.apply = func(ctx context.Context, s storage.Storage) error {
			return s.UpdateRefreshFamily(ctx, t.ID, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
				if f.Generation != dexcompat.ImportedGeneration {
					return f, errors.New("gatehouse refreshed it meanwhile; left as it is")
				}
				n := want
				n.RotationKey = f.RotationKey
				return n, nil
			})
		}
	}
	return it, nil
}

// sameDexState reports whether a family copied earlier still holds what
// Dex holds now (the rotation key is gatehouse's own).
func sameDexState(have, want storage.RefreshFamily) bool {
	return bytes.Equal(have.CurrentHash, want.CurrentHash) && bytes.Equal(have.PreviousHash, want.PreviousHash) &&
		have.LastUsed.Equal(want.LastUsed.Truncate(time.Microsecond)) && bytes.Equal(have.ConnectorData, want.ConnectorData) &&
		have.Claims.Email == want.Claims.Email && have.Claims.PreferredUsername == want.Claims.PreferredUsername &&
		slices.Equal(have.Claims.Groups, want.Claims.Groups)
}

func userName(c dexcompat.Claims) string {
	for _, v := range []string{c.Email, c.PreferredUsername, c.Username, c.UserID} {
		if v != "" {
			return v
		}
	}
	return "?"
}
