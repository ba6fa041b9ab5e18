// Package jwtpayload reads a JWT's payload without verifying its
// signature. The plugin uses it on the warm path, for a token that was
// verified when it was cached: the issuer signed it and the API server
// verifies it at every request, so checking it again here would only cost
// a discovery round trip.
package jwtpayload

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Payload returns the decoded JSON payload of a compact JWS.
func Payload(token string) ([]byte, error) {
	first := strings.IndexByte(token, '.')
	if first < 0 {
		return nil, errors.New("jwt: not a compact JWS (no '.')")
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 {
		return nil, errors.New("jwt: not a compact JWS (2 segments)")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return nil, fmt.Errorf("jwt: payload: %w", err)
	}
	return b, nil
}

// Expiry returns the token's exp claim.
func Expiry(token string) (time.Time, error) {
	b, err := Payload(token)
	if err != nil {
		return time.Time{}, err
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return time.Time{}, fmt.Errorf("jwt: payload: %w", err)
	}
	if c.Exp == nil {
		return time.Time{}, errors.New("jwt: no exp claim")
	}
	f, err := c.Exp.Float64()
	if err != nil {
		return time.Time{}, fmt.Errorf("jwt: exp: %w", err)
	}
	return time.Unix(int64(f), 0), nil
}
