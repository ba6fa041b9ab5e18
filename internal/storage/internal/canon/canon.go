// Package canon puts storage values into the one canonical form every
// backend returns (see storage.Storage): times in UTC truncated to the
// microsecond, empty slices as nil, e-mail keys lower-cased. Each function
// returns a deep copy, so a backend that keeps values in memory never
// shares a slice with its caller.
package canon

import (
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// Precision is the resolution at which times are stored: PostgreSQL's
// timestamptz keeps microseconds, and every backend keeps the same.
const Precision = time.Microsecond

// Time returns t in UTC, truncated to Precision, without a monotonic
// clock reading. The zero time stays zero.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(Precision)
}

// Strings returns a copy of s, or nil when s is empty.
func Strings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// Bytes returns a copy of b, or nil when b is empty.
func Bytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// Email is the key of a password: lower-cased.
func Email(e string) string { return strings.ToLower(e) }

// Claims returns a canonical copy of c.
func Claims(c storage.Claims) storage.Claims {
	c.Groups = Strings(c.Groups)
	return c
}

// AuthRequest returns a canonical copy of a.
func AuthRequest(a storage.AuthRequest) storage.AuthRequest {
	a.ResponseTypes, a.Scopes = Strings(a.ResponseTypes), Strings(a.Scopes)
	a.HMACKey, a.ConnectorData = Bytes(a.HMACKey), Bytes(a.ConnectorData)
	a.Claims = Claims(a.Claims)
	a.AuthTime, a.Expiry = Time(a.AuthTime), Time(a.Expiry)
	return a
}

// AuthCode returns a canonical copy of c.
func AuthCode(c storage.AuthCode) storage.AuthCode {
	c.Scopes, c.ConnectorData, c.Claims = Strings(c.Scopes), Bytes(c.ConnectorData), Claims(c.Claims)
	c.AuthTime, c.Expiry, c.RedeemedAt = Time(c.AuthTime), Time(c.Expiry), Time(c.RedeemedAt)
	return c
}

// RefreshFamily returns a canonical copy of f.
func RefreshFamily(f storage.RefreshFamily) storage.RefreshFamily {
	f.Scopes, f.ConnectorData, f.Claims = Strings(f.Scopes), Bytes(f.ConnectorData), Claims(f.Claims)
	f.CurrentHash, f.PreviousHash, f.RotationKey = Bytes(f.CurrentHash), Bytes(f.PreviousHash), Bytes(f.RotationKey)
	f.ClaimsRefreshedAt, f.AuthTime, f.RotatedAt = Time(f.ClaimsRefreshedAt), Time(f.AuthTime), Time(f.RotatedAt)
	f.CreatedAt, f.LastUsed = Time(f.CreatedAt), Time(f.LastUsed)
	return f
}

// DeviceRequest returns a canonical copy of d.
func DeviceRequest(d storage.DeviceRequest) storage.DeviceRequest {
	d.Scopes, d.ConnectorData, d.Claims = Strings(d.Scopes), Bytes(d.ConnectorData), Claims(d.Claims)
	d.Expiry, d.LastPoll, d.AuthTime = Time(d.Expiry), Time(d.LastPoll), Time(d.AuthTime)
	return d
}

// Password returns a canonical copy of p.
func Password(p storage.Password) storage.Password {
	p.Email, p.Hash = Email(p.Email), Bytes(p.Hash)
	return p
}

// Keys returns a canonical copy of k.
func Keys(k storage.Keys) storage.Keys {
	k.SigningKey = Bytes(k.SigningKey)
	k.NextRotation = Time(k.NextRotation)
	if len(k.VerificationKeys) == 0 {
		k.VerificationKeys = nil
	} else {
		vks := make([]storage.VerificationKey, len(k.VerificationKeys))
		for i, v := range k.VerificationKeys {
			vks[i] = storage.VerificationKey{PublicKey: Bytes(v.PublicKey), Expiry: Time(v.Expiry)}
		}
		k.VerificationKeys = vks
	}
	return k
}
