// Package query describes a search of the audit trail (filters, keyset
// pagination) and writes results as a table, JSON or JSON lines.
package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultLimit and MaxLimit bound how many events one page returns.
const (
	DefaultLimit = 50
	MaxLimit     = 10000
)

// Filter selects events. Empty fields match everything. Results are newest
// first (by request time, then by store id).
type Filter struct {
	User      string
	Group     string
	Verb      string
	Resource  string
	Namespace string
	Name      string
	Source    string
	AuditID   string
	// Code is the HTTP response code; zero matches all.
	Code  int
	Since time.Time // inclusive
	Until time.Time // exclusive
	// Limit is the page size (DefaultLimit when zero).
	Limit int
	// Before continues a previous page: only events strictly older than
	// the cursor are returned.
	Before *Cursor
	// IncludeRaw asks for each event's full JSON.
	IncludeRaw bool
}

// Cursor is a position in the newest-first order: the request time (Unix
// nanoseconds) and store id of the last event of a page.
type Cursor struct {
	Time int64
	ID   int64
}

// String encodes the cursor for a URL or a --before flag.
func (c Cursor) String() string {
	return strconv.FormatInt(c.Time, 10) + "-" + strconv.FormatInt(c.ID, 10)
}

// ParseCursor decodes Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	a, b, ok := strings.Cut(s, "-")
	t, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || id < 0 {
		return Cursor{}, fmt.Errorf("invalid cursor %q", s)
	}
	return Cursor{Time: t, ID: id}, nil
}

// EffectiveLimit returns the page size to use.
func (f Filter) EffectiveLimit() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// ParseTime reads a --since/--until value: an RFC 3339 time, a date
// (2006-01-02, UTC), or a duration before now such as 15m, 2h or 7d.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (90m, 2h, 7d)", s)
}

// ParseCode reads a --code value (an HTTP status such as 403).
func ParseCode(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	c, err := strconv.Atoi(s)
	if err != nil || c < 100 || c > 599 {
		return 0, fmt.Errorf("invalid response code %q: want an HTTP status such as 403", s)
	}
	return c, nil
}

// ErrBadFilter marks a filter that cannot be run.
var ErrBadFilter = errors.New("invalid filter")

// Validate checks the filter's consistency.
func (f Filter) Validate() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("%w: since (%s) is not before until (%s)", ErrBadFilter, f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}
