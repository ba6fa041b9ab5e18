package config

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in Go syntax ("24h", "30m", "3s"),
// the way Dex's config spells every duration.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string. A bare 0 is accepted as "0s";
// any other number is refused because its unit would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		if string(b) == "0" {
			*d = 0
			return nil
		}
		return fmt.Errorf("%s is not a duration (use Go syntax in quotes such as \"24h\" or \"30m\")", b)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use Go syntax such as 24h or 30m)", s)
	}
	*d = Duration(v)
	return nil
}

// DurationPtr returns a pointer to d, for optional Duration fields built in code.
func DurationPtr(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

// TLSVersion is "1.2" or "1.3". The YAML may write it unquoted (1.2), which
// Dex rejects with a type error; gatehouse takes both.
type TLSVersion string

// TLS versions gatehouse accepts for web.tlsMinVersion and web.tlsMaxVersion.
const (
	TLS12 TLSVersion = "1.2"
	TLS13 TLSVersion = "1.3"
)

// UnmarshalJSON accepts a string or a number.
func (v *TLSVersion) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = TLSVersion(strings.TrimSpace(s))
		return nil
	}
	var f json.Number
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("must be a string such as \"1.2\" or \"1.3\"")
	}
	x, err := f.Float64()
	if err != nil {
		return fmt.Errorf("%s is not a TLS version (use \"1.2\" or \"1.3\")", b)
	}
	*v = TLSVersion(strconv.FormatFloat(x, 'f', -1, 64))
	return nil
}

// Uint16 returns the crypto/tls constant for v (tls.VersionTLS12 or
// tls.VersionTLS13), or 0 when v is empty or unknown.
func (v TLSVersion) Uint16() uint16 {
	switch v {
	case TLS12:
		return tls.VersionTLS12
	case TLS13:
		return tls.VersionTLS13
	}
	return 0
}
