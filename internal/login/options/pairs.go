package options

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// pairsValue is pflag's stringToString flag value (kubelogin's
// --oidc-request-header and --oidc-auth-request-extra-params): the same
// syntax, errors, type name and printed default, and the same merging of
// repeated flags (a later value of a key replaces the earlier one in its
// place). It also keeps the order in which keys first appear, which pflag's
// map forgets and kubelogin's cache file name depends on (see
// tokencache.Key.Checksum).
type pairsValue struct {
	p       *tokencache.Pairs
	changed bool
}

func newPairsValue(p *tokencache.Pairs) *pairsValue { return &pairsValue{p: p} }

// Set parses "k=v" or a CSV record "k1=v1,k2=v2", as pflag does.
func (v *pairsValue) Set(val string) error {
	var ss []string
	switch strings.Count(val, "=") {
	case 0:
		return fmt.Errorf("%s must be formatted as key=value", val)
	case 1:
		ss = []string{strings.Trim(val, `"`)}
	default:
		var err error
		if ss, err = csv.NewReader(strings.NewReader(val)).Read(); err != nil {
			return err
		}
	}
	parsed := make(tokencache.Pairs, 0, len(ss))
	for _, pair := range ss {
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("%s must be formatted as key=value", pair)
		}
		parsed = parsed.With(k, val)
	}
	if !v.changed {
		*v.p = parsed
	} else {
		for _, kv := range parsed {
			*v.p = v.p.With(kv.Key, kv.Value)
		}
	}
	v.changed = true
	return nil
}

// Type is pflag's name for the flag's type (shown in help).
func (v *pairsValue) Type() string { return "stringToString" }

// String is pflag's: "[k1=v1,k2=v2]", keys sorted.
func (v *pairsValue) String() string {
	m := v.p.Map()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	records := make([]string, 0, len(keys))
	for _, k := range keys {
		records = append(records, k+"="+m[k])
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(records); err != nil {
		return "[]"
	}
	w.Flush()
	return "[" + strings.TrimSpace(buf.String()) + "]"
}

// GetSlice returns the entries as "k=v", in order (pflag.SliceValue, so
// that setup repeats them as one flag each).
func (v *pairsValue) GetSlice() []string {
	out := make([]string, len(*v.p))
	for i, kv := range *v.p {
		out[i] = kv.Key + "=" + kv.Value
	}
	return out
}

// Append adds one "k=v" entry (pflag.SliceValue).
func (v *pairsValue) Append(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%s must be formatted as key=value", s)
	}
	*v.p = v.p.With(k, val)
	v.changed = true
	return nil
}

// Replace replaces all entries (pflag.SliceValue).
func (v *pairsValue) Replace(ss []string) error {
	*v.p = nil
	v.changed = false
	for _, s := range ss {
		if err := v.Append(s); err != nil {
			return err
		}
	}
	return nil
}
