// Package kubernetes is the storage backend that keeps everything in
// custom resources of the API server gatehouse runs in (Dex's `storage:
// {type: kubernetes}`): no database to operate, and several replicas
// coordinate through the API server's optimistic concurrency (every
// update is a read and a PUT conditional on the resourceVersion read; a
// lost race reads again and retries).
//
// It uses Dex's group (dex.coreos.com/v1), Dex's kinds and object layout
// for what both models share (the SigningKey object, Password objects),
// and reads Dex's RefreshToken, OfflineSessions, OAuth2Client and
// Connector objects in place, so a Dex installation switches to gatehouse
// on the same API server without anyone logging in again. What gatehouse
// models differently lives in kinds of its own in the same group
// (GatehouseRefreshFamily and the short-lived requests and codes); see
// docs/deploy.md.
//
// Requests go through client-go's REST client with plain structs encoded
// as JSON: no generated clientset, no scheme of API groups.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
)

// Storage is the custom resources of one namespace. It is safe for
// concurrent use, also by several processes on one namespace.
type Storage struct {
	c      *client
	now    func() time.Time
	log    *slog.Logger
	closed atomic.Bool

	// read holds the families GetRefreshFamily read last, by id, so that
	// the update that follows in a refresh grant starts from them instead
	// of reading again: its PUT is conditional on the resourceVersion read,
	// so a stale entry only costs a retry. Bounded by readCacheSize.
	readMu sync.Mutex
	read   map[string]*object[storage.RefreshFamily]
}

// readCacheSize bounds Storage.read; past it the cache starts over.
const readCacheSize = 4096

var _ storage.Storage = (*Storage)(nil)

// Open connects to the API server, checks (and with CRDEnsure creates) the
// custom resource definitions, and returns the store.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	switch cfg.CRDHandling {
	case "":
		cfg.CRDHandling = CRDEnsure
	case CRDEnsure, CRDCheck:
	default:
		return nil, fmt.Errorf("kubernetes storage: crdHandling %q: use ensure or check", cfg.CRDHandling)
	}
	s, err := OpenSource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.ensureCRDs(ctx, cfg.CRDHandling); err != nil {
		return nil, err
	}
	s.log.Info("kubernetes storage", "server", s.c.host, "namespace", s.c.namespace)
	return s, nil
}

// OpenSource connects to the API server and checks that it answers,
// nothing more: for reading a Dex installation (`migrate from-dex`), it
// checks and creates no definitions.
func OpenSource(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rc, ns, err := cfg.restConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes storage: %w", err)
	}
	c, err := newClient(rc, ns)
	if err != nil {
		return nil, err
	}
	s := &Storage{c: c, now: time.Now, log: cfg.Logger, read: map[string]*object[storage.RefreshFamily]{}}
	if err := s.Ping(ctx); err != nil {
		return nil, fmt.Errorf("kubernetes storage: API server %s: %w", rc.Host, err)
	}
	return s, nil
}

// Namespace is where the objects are.
func (s *Storage) Namespace() string { return s.c.namespace }

// Close marks the store closed; the HTTP connections close when idle.
func (s *Storage) Close() error {
	s.closed.Store(true)
	return nil
}

var errClosed = errors.New("kubernetes storage: closed")

// Ping asks the API server whether it is ready (/readyz, as health
// checks do; any authenticated user may read it).
func (s *Storage) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return s.c.rest.Get().AbsPath("/readyz").Do(ctx).Error()
}

// retries bounds the read-modify-write attempts of one update. Each lost
// attempt means another writer succeeded, so the bound is only reached
// under heavier contention on one object than any grant produces.
const retries = 100

// retry runs attempt until it does not lose a race, backing off with
// jitter between attempts.
func retry(ctx context.Context, attempt func() error) error {
	for i := 0; ; i++ {
		err := attempt()
		if !errors.Is(err, errConflict) {
			return err
		}
		if i >= retries {
			return fmt.Errorf("kubernetes storage: %d concurrent updates in a row won over this one: %w", retries, storage.ErrConflict)
		}
		backoff := time.Duration(1+min(i, 5)) * time.Millisecond
		backoff += rand.N(backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// create stores spec as a new object of resource under key.
func create[T any](ctx context.Context, s *Storage, resource, key string, spec T, labels map[string]string) error {
	name, err := objectName(key)
	if err != nil {
		return err
	}
	o := newObject(resource, name, spec)
	o.Labels = labels
	return s.c.create(ctx, resource, o)
}

// get reads the object of resource under key.
func get[T any](ctx context.Context, s *Storage, resource, key string) (*object[T], error) {
	name, err := objectName(key)
	if err != nil {
		return nil, storage.ErrNotFound
	}
	var o object[T]
	if err := s.c.get(ctx, resource, name, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// update is the read-modify-write loop of the Update methods: live says
// whether the stored value may be updated (false: ErrNotFound), apply runs
// the updater and returns the new value (with its key restored) and its
// labels. first, if not nil, is a recent read to start from.
func update[T any](ctx context.Context, s *Storage, resource, key string, first *object[T], live func(T) bool,
	apply func(T) (T, map[string]string, error)) error {
	return retry(ctx, func() error {
		o := first
		first = nil
		if o == nil {
			var err error
			if o, err = get[T](ctx, s, resource, key); err != nil {
				return err
			}
		}
		if live != nil && !live(o.Spec) {
			return storage.ErrNotFound
		}
		n, labels, err := apply(o.Spec)
		if err != nil {
			return err
		}
		o.Spec, o.Labels = n, labels
		return s.c.update(ctx, resource, o.Name, o)
	})
}

// remove deletes the object of resource under key.
func remove(ctx context.Context, s *Storage, resource, key string) error {
	name, err := objectName(key)
	if err != nil {
		return storage.ErrNotFound
	}
	return s.c.remove(ctx, resource, name, "")
}

func (s *Storage) expired(t time.Time) bool { return s.now().After(t) }

// expiring is one of gatehouse's kinds whose records expire: its
// resource, expiry, canonical form and key field.
type expiring[T any] struct {
	resource string
	expiry   func(T) time.Time
	canon    func(T) T
	setKey   func(*T, string)
}

var (
	authRequests = expiring[storage.AuthRequest]{resAuthRequests, func(a storage.AuthRequest) time.Time { return a.Expiry },
		canon.AuthRequest, func(a *storage.AuthRequest, k string) { a.ID = k }}
	authCodes = expiring[storage.AuthCode]{resAuthCodes, func(c storage.AuthCode) time.Time { return c.Expiry },
		canon.AuthCode, func(c *storage.AuthCode, k string) { c.ID = k }}
	deviceRequests = expiring[storage.DeviceRequest]{resDeviceRequests, func(d storage.DeviceRequest) time.Time { return d.Expiry },
		canon.DeviceRequest, func(d *storage.DeviceRequest, k string) { d.DeviceCodeHash = k }}
)

// getLive returns the unexpired record of kind under key.
func getLive[T any](ctx context.Context, s *Storage, kind expiring[T], key string) (T, error) {
	var zero T
	o, err := get[T](ctx, s, kind.resource, key)
	if err != nil {
		return zero, err
	}
	if s.expired(kind.expiry(o.Spec)) {
		return zero, storage.ErrNotFound
	}
	return kind.canon(o.Spec), nil
}

// updateLive applies updater to the unexpired record of kind under key.
func updateLive[T any](ctx context.Context, s *Storage, kind expiring[T], key string, updater func(T) (T, error)) error {
	return update(ctx, s, kind.resource, key, nil, func(v T) bool { return !s.expired(kind.expiry(v)) },
		func(v T) (T, map[string]string, error) {
			n, err := updater(kind.canon(v))
			kind.setKey(&n, key)
			return kind.canon(n), nil, err
		})
}

// CreateAuthRequest stores a new auth request.
func (s *Storage) CreateAuthRequest(ctx context.Context, a storage.AuthRequest) error {
	return create(ctx, s, resAuthRequests, a.ID, canon.AuthRequest(a), nil)
}

// GetAuthRequest returns an unexpired auth request.
func (s *Storage) GetAuthRequest(ctx context.Context, id string) (storage.AuthRequest, error) {
	return getLive(ctx, s, authRequests, id)
}

// UpdateAuthRequest applies updater to an unexpired auth request.
func (s *Storage) UpdateAuthRequest(ctx context.Context, id string, updater func(storage.AuthRequest) (storage.AuthRequest, error)) error {
	return updateLive(ctx, s, authRequests, id, updater)
}

// DeleteAuthRequest removes an auth request.
func (s *Storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return remove(ctx, s, resAuthRequests, id)
}

// CreateAuthCode stores a new code.
func (s *Storage) CreateAuthCode(ctx context.Context, c storage.AuthCode) error {
	return create(ctx, s, resAuthCodes, c.ID, canon.AuthCode(c), nil)
}

// GetAuthCode returns an unexpired code.
func (s *Storage) GetAuthCode(ctx context.Context, id string) (storage.AuthCode, error) {
	return getLive(ctx, s, authCodes, id)
}

// UpdateAuthCode applies updater to an unexpired code.
func (s *Storage) UpdateAuthCode(ctx context.Context, id string, updater func(storage.AuthCode) (storage.AuthCode, error)) error {
	return updateLive(ctx, s, authCodes, id, updater)
}

// CreateRefreshFamily stores a new family.
func (s *Storage) CreateRefreshFamily(ctx context.Context, f storage.RefreshFamily) error {
	f = canon.RefreshFamily(f)
	return create(ctx, s, resFamilies, f.ID, f, familyLabels(f))
}

// GetRefreshFamily returns a family.
func (s *Storage) GetRefreshFamily(ctx context.Context, id string) (storage.RefreshFamily, error) {
	o, err := get[storage.RefreshFamily](ctx, s, resFamilies, id)
	if err != nil {
		return storage.RefreshFamily{}, err
	}
	out := canon.RefreshFamily(o.Spec) // a copy: o stays the store's
	s.readMu.Lock()
	if len(s.read) >= readCacheSize {
		clear(s.read)
	}
	s.read[id] = o
	s.readMu.Unlock()
	return out, nil
}

// UpdateRefreshFamily applies updater; a concurrent update makes it read
// the family again and run updater on what the other writer stored.
func (s *Storage) UpdateRefreshFamily(ctx context.Context, id string, updater func(storage.RefreshFamily) (storage.RefreshFamily, error)) error {
	s.readMu.Lock()
	first := s.read[id]
	delete(s.read, id)
	s.readMu.Unlock()
	return update(ctx, s, resFamilies, id, first, nil,
		func(f storage.RefreshFamily) (storage.RefreshFamily, map[string]string, error) {
			n, err := updater(canon.RefreshFamily(f))
			n.ID = id
			n = canon.RefreshFamily(n)
			return n, familyLabels(n), err
		})
}

// DeleteRefreshFamily removes a family.
func (s *Storage) DeleteRefreshFamily(ctx context.Context, id string) error {
	return remove(ctx, s, resFamilies, id)
}

// listFamilies returns the families whose label matches value and that
// keep satisfies, newest first (then by id, as the SQL backends order).
func (s *Storage) listFamilies(ctx context.Context, label, value string, keep func(storage.RefreshFamily) bool) ([]storage.RefreshFamily, error) {
	var out []storage.RefreshFamily
	err := s.c.list(ctx, resFamilies, label+"="+value, func(item []byte) error {
		var o object[storage.RefreshFamily]
		if err := decode(item, &o); err != nil {
			return err
		}
		if keep(o.Spec) {
			out = append(out, canon.RefreshFamily(o.Spec))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storage.RefreshFamily) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// ListRefreshFamilies lists a user's families, newest first.
func (s *Storage) ListRefreshFamilies(ctx context.Context, connectorID, userID string) ([]storage.RefreshFamily, error) {
	return s.listFamilies(ctx, labelUser, labelHash(connectorID, userID), func(f storage.RefreshFamily) bool {
		return f.ConnectorID == connectorID && f.Claims.UserID == userID
	})
}

// ListRefreshFamiliesByClaim lists the families whose claim equals value,
// newest first, at most limit.
func (s *Storage) ListRefreshFamiliesByClaim(ctx context.Context, claim, value string, limit int) ([]storage.RefreshFamily, error) {
	if err := storage.CheckListByClaim(claim, limit); err != nil {
		return nil, err
	}
	out, err := s.listFamilies(ctx, claimLabel[claim], labelHash(value), func(f storage.RefreshFamily) bool {
		v, _ := f.Claims.ClaimValue(claim)
		return v == value
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// CreateDeviceRequest stores a device request. Its user code is reserved
// first by an object of its own, so two requests never share one.
func (s *Storage) CreateDeviceRequest(ctx context.Context, d storage.DeviceRequest) error {
	d = canon.DeviceRequest(d)
	if err := s.reserveUserCode(ctx, d.UserCode, d.DeviceCodeHash, d.Expiry); err != nil {
		return err
	}
	if err := create(ctx, s, resDeviceRequests, d.DeviceCodeHash, d, nil); err != nil {
		s.releaseUserCode(ctx, d.UserCode, d.DeviceCodeHash)
		return err
	}
	return nil
}

// reserveUserCode creates the user code's reservation for the device
// request hash. A reservation left behind by a request that no longer
// exists (a crash between the two creates) is taken over.
func (s *Storage) reserveUserCode(ctx context.Context, code, hash string, expiry time.Time) error {
	for range 3 {
		err := create(ctx, s, resDeviceUserCodes, code, deviceUserCode{DeviceCodeHash: hash, Expiry: expiry}, nil)
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return err
		}
		held, err := get[deviceUserCode](ctx, s, resDeviceUserCodes, code)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d, err := get[storage.DeviceRequest](ctx, s, resDeviceRequests, held.Spec.DeviceCodeHash)
		if err == nil && d.Spec.UserCode == code || err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storage.ErrAlreadyExists
		}
		if held.Spec.DeviceCodeHash == hash {
			return storage.ErrAlreadyExists // our own request exists under another code
		}
		if err := s.c.remove(ctx, resDeviceUserCodes, held.Name, held.ResourceVersion); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, errConflict) {
			return err
		}
	}
	return storage.ErrAlreadyExists
}

// releaseUserCode deletes the reservation of code if hash holds it.
func (s *Storage) releaseUserCode(ctx context.Context, code, hash string) {
	held, err := get[deviceUserCode](ctx, s, resDeviceUserCodes, code)
	if err != nil || held.Spec.DeviceCodeHash != hash {
		return
	}
	if err := s.c.remove(ctx, resDeviceUserCodes, held.Name, held.ResourceVersion); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("kubernetes storage: could not release a device user code", "err", err)
	}
}

// GetDeviceRequestByUserCode finds an unexpired request by user code.
func (s *Storage) GetDeviceRequestByUserCode(ctx context.Context, userCode string) (storage.DeviceRequest, error) {
	held, err := get[deviceUserCode](ctx, s, resDeviceUserCodes, userCode)
	if err != nil {
		return storage.DeviceRequest{}, err
	}
	d, err := s.GetDeviceRequest(ctx, held.Spec.DeviceCodeHash)
	if err != nil {
		return storage.DeviceRequest{}, err
	}
	if d.UserCode != userCode {
		return storage.DeviceRequest{}, storage.ErrNotFound
	}
	return d, nil
}

// GetDeviceRequest finds an unexpired request by device code hash.
func (s *Storage) GetDeviceRequest(ctx context.Context, deviceCodeHash string) (storage.DeviceRequest, error) {
	return getLive(ctx, s, deviceRequests, deviceCodeHash)
}

// UpdateDeviceRequest applies updater; expired requests are still handed
// to it (the token endpoint answers expired_token). An updater that
// changes the user code moves its reservation.
func (s *Storage) UpdateDeviceRequest(ctx context.Context, deviceCodeHash string, updater func(storage.DeviceRequest) (storage.DeviceRequest, error)) error {
	var moved []string // user codes reserved by attempts, released unless kept
	err := update(ctx, s, resDeviceRequests, deviceCodeHash, nil, nil,
		func(d storage.DeviceRequest) (storage.DeviceRequest, map[string]string, error) {
			n, err := updater(canon.DeviceRequest(d))
			if err != nil {
				return n, nil, err
			}
			n.DeviceCodeHash = deviceCodeHash
			n = canon.DeviceRequest(n)
			if n.UserCode != d.UserCode && !slices.Contains(moved, n.UserCode) {
				if err := s.reserveUserCode(ctx, n.UserCode, deviceCodeHash, n.Expiry); err != nil {
					return n, nil, err
				}
				moved = append(moved, n.UserCode)
			}
			return n, nil, nil
		})
	var kept string
	if err == nil {
		if d, gerr := get[storage.DeviceRequest](ctx, s, resDeviceRequests, deviceCodeHash); gerr == nil {
			kept = d.Spec.UserCode
		}
	}
	for _, code := range moved {
		if code != kept {
			s.releaseUserCode(ctx, code, deviceCodeHash)
		}
	}
	return err
}

// CreatePassword stores a password as Dex's Password object.
func (s *Storage) CreatePassword(ctx context.Context, p storage.Password) error {
	p = canon.Password(p)
	o := &passwordObject{Email: p.Email, Hash: p.Hash, Username: p.Username, UserID: p.UserID}
	// o.Name is Dex's "name" field; the object's name is in ObjectMeta.
	o.APIVersion, o.Kind, o.ObjectMeta.Name = apiVersion, kinds[resPasswords], dexIDToName(p.Email)
	return s.c.create(ctx, resPasswords, o)
}

// getPassword reads the Password object of email, checking that the
// name (a hash) did not collide.
func (s *Storage) getPassword(ctx context.Context, email string) (*passwordObject, error) {
	email = canon.Email(email)
	var o passwordObject
	if err := s.c.get(ctx, resPasswords, dexIDToName(email), &o); err != nil {
		return nil, err
	}
	if canon.Email(o.Email) != email {
		return nil, fmt.Errorf("kubernetes storage: the password object of %q holds %q", email, o.Email)
	}
	return &o, nil
}

func (o *passwordObject) storage() storage.Password {
	return canon.Password(storage.Password{Email: o.Email, Hash: o.Hash, Username: o.Username, UserID: o.UserID})
}

// GetPassword returns a password by email, in any case.
func (s *Storage) GetPassword(ctx context.Context, email string) (storage.Password, error) {
	o, err := s.getPassword(ctx, email)
	if err != nil {
		return storage.Password{}, err
	}
	return o.storage(), nil
}

// UpdatePassword applies updater; Dex's fields that gatehouse does not
// model stay as they are.
func (s *Storage) UpdatePassword(ctx context.Context, email string, updater func(storage.Password) (storage.Password, error)) error {
	return retry(ctx, func() error {
		o, err := s.getPassword(ctx, email)
		if err != nil {
			return err
		}
		n, err := updater(o.storage())
		if err != nil {
			return err
		}
		n = canon.Password(n)
		o.Hash, o.Username, o.UserID = n.Hash, n.Username, n.UserID
		return s.c.update(ctx, resPasswords, o.ObjectMeta.Name, o)
	})
}

// DeletePassword removes a password.
func (s *Storage) DeletePassword(ctx context.Context, email string) error {
	o, err := s.getPassword(ctx, email)
	if err != nil {
		return err
	}
	return s.c.remove(ctx, resPasswords, o.ObjectMeta.Name, "")
}

// ListPasswords lists passwords by email.
func (s *Storage) ListPasswords(ctx context.Context) ([]storage.Password, error) {
	var out []storage.Password
	err := s.c.list(ctx, resPasswords, "", func(item []byte) error {
		var o passwordObject
		if err := decode(item, &o); err != nil {
			return err
		}
		out = append(out, o.storage())
		return nil
	})
	slices.SortFunc(out, func(a, b storage.Password) int { return strings.Compare(a.Email, b.Email) })
	return out, err
}

// GarbageCollect removes expired requests and codes, and refresh families
// that are revoked or past the cut-offs.
func (s *Storage) GarbageCollect(ctx context.Context, now, idleBefore, createdBefore time.Time) (storage.GCResult, error) {
	var r storage.GCResult
	var err error
	if r.AuthRequests, err = collect(ctx, s, resAuthRequests, func(a storage.AuthRequest) bool { return now.After(a.Expiry) }); err != nil {
		return r, err
	}
	if r.AuthCodes, err = collect(ctx, s, resAuthCodes, func(c storage.AuthCode) bool { return now.After(c.Expiry) }); err != nil {
		return r, err
	}
	if r.DeviceRequests, err = collect(ctx, s, resDeviceRequests, func(d storage.DeviceRequest) bool { return now.After(d.Expiry) }); err != nil {
		return r, err
	}
	// A reservation goes with its request: once expired, when the
	// request it names is gone or expired too.
	if _, err = collect(ctx, s, resDeviceUserCodes, func(u deviceUserCode) bool {
		if !now.After(u.Expiry) {
			return false
		}
		d, err := get[storage.DeviceRequest](ctx, s, resDeviceRequests, u.DeviceCodeHash)
		return errors.Is(err, storage.ErrNotFound) || err == nil && now.After(d.Spec.Expiry)
	}); err != nil {
		return r, err
	}
	r.RefreshTokens, err = collect(ctx, s, resFamilies, func(f storage.RefreshFamily) bool {
		return f.Revoked || !idleBefore.IsZero() && f.LastUsed.Before(idleBefore) || !createdBefore.IsZero() && f.CreatedAt.Before(createdBefore)
	})
	return r, err
}

// collect deletes the objects of resource that match, each only in the
// version that matched (a concurrent update keeps it), and counts them.
func collect[T any](ctx context.Context, s *Storage, resource string, match func(T) bool) (int64, error) {
	var doomed []*object[T]
	err := s.c.list(ctx, resource, "", func(item []byte) error {
		var o object[T]
		if err := decode(item, &o); err != nil {
			return err
		}
		if match(o.Spec) {
			doomed = append(doomed, &o)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range doomed {
		err := s.c.remove(ctx, resource, o.Name, o.ResourceVersion)
		switch {
		case err == nil:
			n++
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, errConflict):
			// Collected by another replica, or changed since listed.
		default:
			return n, err
		}
	}
	return n, nil
}
