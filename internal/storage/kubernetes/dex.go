package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
)

var _ storage.DexRefreshImporter = (*Storage)(nil)

// ImportDexRefreshToken turns Dex's RefreshToken object id into a
// refresh family with the same id (see dexcompat.Family), so the token
// its client holds refreshes with gatehouse. The connector data comes
// from the token or, as Dex reads it, from the user's OfflineSessions
// object. Of concurrent imports one creates the family and the others get
// ErrAlreadyExists; the winner then deletes Dex's object (only in the
// version it read: if a Dex replica rotated it meanwhile, it stays, and
// its new secret no longer matches the family).
func (s *Storage) ImportDexRefreshToken(ctx context.Context, id string) error {
	if !validName(id) {
		return storage.ErrNotFound
	}
	var rt refreshTokenObject
	if err := s.c.get(ctx, resRefreshTokens, id, &rt); err != nil {
		return err
	}
	var session offlineSessionsObject
	err := s.c.get(ctx, resOfflineSessions, dexOfflineSessionName(rt.Claims.UserID, rt.ConnectorID), &session)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return err
	case session.UserID != rt.Claims.UserID || session.ConnID != rt.ConnectorID:
		session.ConnectorData = nil // a name collision: not this user's
	}
	f, err := dexcompat.Family(rt.dex(), session.ConnectorData)
	if err != nil {
		return err
	}
	if err := s.CreateRefreshFamily(ctx, f); err != nil {
		return err
	}
	if err := s.c.remove(ctx, resRefreshTokens, id, rt.ResourceVersion); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("kubernetes storage: imported a Dex refresh token but could not delete it", "id", id, "err", err)
	}
	s.log.Info("kubernetes storage: Dex refresh token now a gatehouse session", "id", id, "client_id", rt.ClientID, "connector_id", rt.ConnectorID)
	return nil
}

// DexClients returns the OAuth2 clients a Dex installation kept in this
// namespace (created through Dex's API; static clients are in the config
// file), ordered by id.
func (s *Storage) DexClients(ctx context.Context) ([]dexcompat.Client, error) {
	var out []dexcompat.Client
	err := s.listDex(ctx, resClients, func(item []byte) error {
		var o clientObject
		if err := decode(item, &o); err != nil {
			return err
		}
		out = append(out, dexcompat.Client{ID: o.ID, Secret: o.Secret, RedirectURIs: o.RedirectURIs, TrustedPeers: o.TrustedPeers,
			Public: o.Public, Name: o.Name, LogoURL: o.LogoURL})
		return nil
	})
	slices.SortFunc(out, func(a, b dexcompat.Client) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// DexConnectors returns the connectors a Dex installation kept in this
// namespace, ordered by id.
func (s *Storage) DexConnectors(ctx context.Context) ([]dexcompat.Connector, error) {
	var out []dexcompat.Connector
	err := s.listDex(ctx, resConnectors, func(item []byte) error {
		var o connectorObject
		if err := decode(item, &o); err != nil {
			return err
		}
		out = append(out, dexcompat.Connector{ID: o.ID, Type: o.Type, Name: o.Name, Config: o.Config})
		return nil
	})
	slices.SortFunc(out, func(a, b dexcompat.Connector) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// DexSnapshot reads a Dex installation's objects for `migrate from-dex`:
// everything gatehouse copies, as Dex holds it.
func (s *Storage) DexSnapshot(ctx context.Context) (*dexcompat.Snapshot, error) {
	snap := &dexcompat.Snapshot{}
	var err error
	if snap.Clients, err = s.DexClients(ctx); err != nil {
		return nil, err
	}
	if snap.Connectors, err = s.DexConnectors(ctx); err != nil {
		return nil, err
	}
	err = s.listDex(ctx, resPasswords, func(item []byte) error {
		var o passwordObject
		if err := decode(item, &o); err != nil {
			return err
		}
		snap.Passwords = append(snap.Passwords, dexcompat.Password{Email: canon.Email(o.Email), Hash: o.Hash, Username: o.Username, UserID: o.UserID,
			Name: o.Name, PreferredUsername: o.PreferredUsername, EmailVerified: o.EmailVerified, Groups: o.Groups})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.listDex(ctx, resRefreshTokens, func(item []byte) error {
		var o refreshTokenObject
		if err := decode(item, &o); err != nil {
			return err
		}
		snap.RefreshTokens = append(snap.RefreshTokens, o.dex())
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.listDex(ctx, resOfflineSessions, func(item []byte) error {
		var o offlineSessionsObject
		if err := decode(item, &o); err != nil {
			return err
		}
		snap.OfflineSessions = append(snap.OfflineSessions, dexcompat.OfflineSession{UserID: o.UserID, ConnID: o.ConnID, Refresh: o.Refresh, ConnectorData: o.ConnectorData})
		return nil
	})
	if err != nil {
		return nil, err
	}
	o, err := s.getKeys(ctx)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, err
	case o.Gatehouse != nil:
		return nil, fmt.Errorf("kubernetes storage: the SigningKey object was last written by gatehouse, not Dex: this namespace is already gatehouse's storage")
	default:
		snap.Keys = &dexcompat.Keys{SigningKey: o.SigningKey, SigningKeyPub: o.SigningKeyPub, VerificationKeys: o.VerificationKeys, NextRotation: o.NextRotation}
	}
	snap.Sort()
	return snap, nil
}

// listDex lists a resource of Dex's; one the API server does not serve
// (Dex never created its definition) is empty.
func (s *Storage) listDex(ctx context.Context, resource string, each func(item []byte) error) error {
	err := s.c.list(ctx, resource, "", each)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// decode reads one listed object.
func decode(item []byte, v any) error {
	if err := json.Unmarshal(item, v); err != nil {
		return fmt.Errorf("kubernetes storage: decode listed object: %w", err)
	}
	return nil
}
