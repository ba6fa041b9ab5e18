// Package memory is the in-process storage backend (Dex's
// `storage: {type: memory}`): everything is lost on restart. For tests and
// throwaway runs; use sqlite3 or postgres for anything else.
package memory

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
)

// Storage keeps every object in maps under one mutex. Values are copied
// in and out so callers never share memory with the store.
type Storage struct {
	mu       sync.Mutex
	now      func() time.Time
	reqs     map[string]storage.AuthRequest
	codes    map[string]storage.AuthCode
	families map[string]storage.RefreshFamily
	devices  map[string]storage.DeviceRequest
	pwds     map[string]storage.Password
	keys     *storage.Keys
	closed   bool
}

var _ storage.Storage = (*Storage)(nil)

// New returns an empty store.
func New() *Storage {
	return &Storage{
		now:  time.Now,
		reqs: map[string]storage.AuthRequest{}, codes: map[string]storage.AuthCode{},
		families: map[string]storage.RefreshFamily{}, devices: map[string]storage.DeviceRequest{},
		pwds: map[string]storage.Password{},
	}
}

// Close marks the store closed.
func (s *Storage) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Ping answers unless closed.
func (s *Storage) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return nil
}

var errClosed = errors.New("memory storage: closed")

// CreateAuthRequest stores a new auth request.
func (s *Storage) CreateAuthRequest(_ context.Context, a storage.AuthRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reqs[a.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.reqs[a.ID] = canon.AuthRequest(a)
	return nil
}

// GetAuthRequest returns an unexpired auth request.
func (s *Storage) GetAuthRequest(_ context.Context, id string) (storage.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.reqs[id]
	if !ok || s.now().After(a.Expiry) {
		return storage.AuthRequest{}, storage.ErrNotFound
	}
	return canon.AuthRequest(a), nil
}

// UpdateAuthRequest applies updater atomically.
func (s *Storage) UpdateAuthRequest(_ context.Context, id string, updater func(storage.AuthRequest) (storage.AuthRequest, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.reqs[id]
	if !ok || s.now().After(a.Expiry) {
		return storage.ErrNotFound
	}
	n, err := updater(canon.AuthRequest(a))
	if err != nil {
		return err
	}
	n.ID = id
	s.reqs[id] = canon.AuthRequest(n)
	return nil
}

// DeleteAuthRequest removes an auth request.
func (s *Storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reqs[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.reqs, id)
	return nil
}

// CreateAuthCode stores a new code.
func (s *Storage) CreateAuthCode(_ context.Context, c storage.AuthCode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.codes[c.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.codes[c.ID] = canon.AuthCode(c)
	return nil
}

// GetAuthCode returns an unexpired code.
func (s *Storage) GetAuthCode(_ context.Context, id string) (storage.AuthCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[id]
	if !ok || s.now().After(c.Expiry) {
		return storage.AuthCode{}, storage.ErrNotFound
	}
	return canon.AuthCode(c), nil
}

// UpdateAuthCode applies updater atomically.
func (s *Storage) UpdateAuthCode(_ context.Context, id string, updater func(storage.AuthCode) (storage.AuthCode, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[id]
	if !ok || s.now().After(c.Expiry) {
		return storage.ErrNotFound
	}
	n, err := updater(canon.AuthCode(c))
	if err != nil {
		return err
	}
	n.ID = id
	s.codes[id] = canon.AuthCode(n)
	return nil
}

// CreateRefreshFamily stores a new family.
func (s *Storage) CreateRefreshFamily(_ context.Context, f storage.RefreshFamily) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.families[f.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.families[f.ID] = canon.RefreshFamily(f)
	return nil
}

// GetRefreshFamily returns a family.
func (s *Storage) GetRefreshFamily(_ context.Context, id string) (storage.RefreshFamily, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	if !ok {
		return storage.RefreshFamily{}, storage.ErrNotFound
	}
	return canon.RefreshFamily(f), nil
}

// UpdateRefreshFamily applies updater atomically.
func (s *Storage) UpdateRefreshFamily(_ context.Context, id string, updater func(storage.RefreshFamily) (storage.RefreshFamily, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	if !ok {
		return storage.ErrNotFound
	}
	n, err := updater(canon.RefreshFamily(f))
	if err != nil {
		return err
	}
	n.ID = id
	s.families[id] = canon.RefreshFamily(n)
	return nil
}

// DeleteRefreshFamily removes a family.
func (s *Storage) DeleteRefreshFamily(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.families[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.families, id)
	return nil
}

// ListRefreshFamilies lists a user's families, newest first.
func (s *Storage) ListRefreshFamilies(_ context.Context, connectorID, userID string) ([]storage.RefreshFamily, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.RefreshFamily
	for _, f := range s.families {
		if f.ConnectorID == connectorID && f.Claims.UserID == userID {
			out = append(out, canon.RefreshFamily(f))
		}
	}
	sortNewestFirst(out)
	return out, nil
}

// sortNewestFirst orders families as the SQL backends do: newest first,
// then by id.
func sortNewestFirst(fams []storage.RefreshFamily) {
	slices.SortFunc(fams, func(a, b storage.RefreshFamily) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// ListRefreshFamiliesByClaim lists the families whose claim equals
// value, newest first, at most limit.
func (s *Storage) ListRefreshFamiliesByClaim(_ context.Context, claim, value string, limit int) ([]storage.RefreshFamily, error) {
	if err := storage.CheckListByClaim(claim, limit); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.RefreshFamily
	for _, f := range s.families {
		if v, _ := f.Claims.ClaimValue(claim); v == value {
			out = append(out, canon.RefreshFamily(f))
		}
	}
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CreateDeviceRequest stores a device request; user codes are unique.
func (s *Storage) CreateDeviceRequest(_ context.Context, d storage.DeviceRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.devices[d.DeviceCodeHash]; ok {
		return storage.ErrAlreadyExists
	}
	for _, o := range s.devices {
		if o.UserCode == d.UserCode {
			return storage.ErrAlreadyExists
		}
	}
	s.devices[d.DeviceCodeHash] = canon.DeviceRequest(d)
	return nil
}

// GetDeviceRequestByUserCode finds an unexpired request by user code.
func (s *Storage) GetDeviceRequestByUserCode(_ context.Context, userCode string) (storage.DeviceRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.UserCode == userCode && !s.now().After(d.Expiry) {
			return canon.DeviceRequest(d), nil
		}
	}
	return storage.DeviceRequest{}, storage.ErrNotFound
}

// GetDeviceRequest finds an unexpired request by device code hash.
func (s *Storage) GetDeviceRequest(_ context.Context, h string) (storage.DeviceRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[h]
	if !ok || s.now().After(d.Expiry) {
		return storage.DeviceRequest{}, storage.ErrNotFound
	}
	return canon.DeviceRequest(d), nil
}

// UpdateDeviceRequest applies updater atomically. Expired requests are
// still handed to the updater, which reports expired_token.
func (s *Storage) UpdateDeviceRequest(_ context.Context, h string, updater func(storage.DeviceRequest) (storage.DeviceRequest, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[h]
	if !ok {
		return storage.ErrNotFound
	}
	n, err := updater(canon.DeviceRequest(d))
	if err != nil {
		return err
	}
	n.DeviceCodeHash = h
	s.devices[h] = canon.DeviceRequest(n)
	return nil
}

// CreatePassword stores a password (email key, case-insensitive).
func (s *Storage) CreatePassword(_ context.Context, p storage.Password) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p = canon.Password(p)
	if _, ok := s.pwds[p.Email]; ok {
		return storage.ErrAlreadyExists
	}
	s.pwds[p.Email] = p
	return nil
}

// GetPassword returns a password by email.
func (s *Storage) GetPassword(_ context.Context, email string) (storage.Password, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pwds[canon.Email(email)]
	if !ok {
		return storage.Password{}, storage.ErrNotFound
	}
	return canon.Password(p), nil
}

// UpdatePassword applies updater atomically.
func (s *Storage) UpdatePassword(_ context.Context, email string, updater func(storage.Password) (storage.Password, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := canon.Email(email)
	p, ok := s.pwds[key]
	if !ok {
		return storage.ErrNotFound
	}
	n, err := updater(canon.Password(p))
	if err != nil {
		return err
	}
	n = canon.Password(n)
	n.Email = key
	s.pwds[key] = n
	return nil
}

// DeletePassword removes a password.
func (s *Storage) DeletePassword(_ context.Context, email string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := canon.Email(email)
	if _, ok := s.pwds[key]; !ok {
		return storage.ErrNotFound
	}
	delete(s.pwds, key)
	return nil
}

// ListPasswords lists passwords by email.
func (s *Storage) ListPasswords(context.Context) ([]storage.Password, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Password, 0, len(s.pwds))
	for _, p := range s.pwds {
		out = append(out, canon.Password(p))
	}
	slices.SortFunc(out, func(a, b storage.Password) int { return strings.Compare(a.Email, b.Email) })
	return out, nil
}

// GetKeys returns the key set.
func (s *Storage) GetKeys(context.Context) (storage.Keys, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		return storage.Keys{}, storage.ErrNotFound
	}
	return canon.Keys(*s.keys), nil
}

// UpdateKeys is a compare-and-swap on Version.
func (s *Storage) UpdateKeys(_ context.Context, expected int64, k storage.Keys) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur int64
	if s.keys != nil {
		cur = s.keys.Version
	}
	if cur != expected {
		return storage.ErrConflict
	}
	k = canon.Keys(k)
	k.Version = expected + 1
	s.keys = &k
	return nil
}

// GarbageCollect removes expired objects.
func (s *Storage) GarbageCollect(_ context.Context, now, idleBefore, createdBefore time.Time) (storage.GCResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r storage.GCResult
	for id, a := range s.reqs {
		if now.After(a.Expiry) {
			delete(s.reqs, id)
			r.AuthRequests++
		}
	}
	for id, c := range s.codes {
		if now.After(c.Expiry) {
			delete(s.codes, id)
			r.AuthCodes++
		}
	}
	for id, d := range s.devices {
		if now.After(d.Expiry) {
			delete(s.devices, id)
			r.DeviceRequests++
		}
	}
	for id, f := range s.families {
		if f.Revoked || !idleBefore.IsZero() && f.LastUsed.Before(idleBefore) || !createdBefore.IsZero() && f.CreatedAt.Before(createdBefore) {
			delete(s.families, id)
			r.RefreshTokens++
		}
	}
	return r, nil
}
