package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
	"github.com/gatehouse-dev/gatehouse/internal/storage/internal/canon"
)

// GetKeys returns the key set from Dex's SigningKey object: gatehouse's
// own set when gatehouse wrote it last, else the set Dex wrote (version
// 1, so that the first rotation keeps Dex's key published).
func (s *Storage) GetKeys(ctx context.Context) (storage.Keys, error) {
	o, err := s.getKeys(ctx)
	if err != nil {
		return storage.Keys{}, err
	}
	return o.keys()
}

func (s *Storage) getKeys(ctx context.Context) (*keysObject, error) {
	var o keysObject
	if err := s.c.get(ctx, resKeys, keysName, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

func (o *keysObject) version() int64 {
	if o.Gatehouse != nil {
		return o.Gatehouse.Version
	}
	return 1
}

func (o *keysObject) keys() (storage.Keys, error) {
	if g := o.Gatehouse; g != nil {
		return canon.Keys(storage.Keys{SigningKey: g.SigningKey, VerificationKeys: g.VerificationKeys, NextRotation: o.NextRotation, Version: g.Version}), nil
	}
	k, err := dexcompat.Keys{SigningKey: o.SigningKey, SigningKeyPub: o.SigningKeyPub, VerificationKeys: o.VerificationKeys, NextRotation: o.NextRotation}.Storage()
	if err != nil {
		return storage.Keys{}, fmt.Errorf("kubernetes storage: %s/%s: %w", resKeys, keysName, err)
	}
	k = canon.Keys(k)
	k.Version = 1
	return k, nil
}

// UpdateKeys replaces the key set if its version is still expected: the
// read version is checked, and the write is conditional on the
// resourceVersion read, so of several replicas rotating at once exactly
// one wins.
func (s *Storage) UpdateKeys(ctx context.Context, expected int64, k storage.Keys) error {
	k = canon.Keys(k)
	o, err := s.getKeys(ctx)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if expected != 0 {
			return storage.ErrConflict
		}
		o = &keysObject{}
		o.APIVersion, o.Kind, o.Name = apiVersion, kinds[resKeys], keysName
	case err != nil:
		return err
	case o.version() != expected:
		return storage.ErrConflict
	}
	o.Gatehouse = &gatehouseKeys{Version: expected + 1, SigningKey: k.SigningKey, VerificationKeys: k.VerificationKeys}
	o.NextRotation = k.NextRotation
	o.SigningKey, o.SigningKeyPub, o.VerificationKeys = dexKeyFields(k)
	if expected == 0 {
		err = s.c.create(ctx, resKeys, o)
	} else {
		err = s.c.update(ctx, resKeys, keysName, o)
	}
	if errors.Is(err, storage.ErrAlreadyExists) || errors.Is(err, errConflict) {
		return storage.ErrConflict
	}
	return err
}

// dexKeyFields writes k in Dex's layout: the first private JWK of the set
// (the ID token key) as signingKey, and the verification keys. A set that
// is not made of JWKs leaves them empty.
func dexKeyFields(k storage.Keys) (signing, signingPub json.RawMessage, verification []dexcompat.VerificationKey) {
	var first jose.JSONWebKey
	var set jose.JSONWebKeySet
	switch {
	case json.Unmarshal(k.SigningKey, &set) == nil && len(set.Keys) > 0:
		first = set.Keys[0]
	case first.UnmarshalJSON(k.SigningKey) == nil:
	default:
		return nil, nil, nil
	}
	if first.IsPublic() {
		return nil, nil, nil
	}
	priv, err := first.MarshalJSON()
	if err != nil {
		return nil, nil, nil
	}
	pub, err := first.Public().MarshalJSON()
	if err != nil {
		return nil, nil, nil
	}
	for _, v := range k.VerificationKeys {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(v.PublicKey) != nil {
			return nil, nil, nil
		}
		verification = append(verification, dexcompat.VerificationKey{PublicKey: bytes.Clone(v.PublicKey), Expiry: v.Expiry})
	}
	return priv, pub, verification
}
