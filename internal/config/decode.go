package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// FieldError is one problem with one key of the configuration.
type FieldError struct {
	// File is the config file, when the config came from one.
	File string
	// Line is the line of the key in the file (0: unknown).
	Line int
	// Path is the full key path, e.g. staticClients[1].redirectURIs[0].
	Path string
	// Err says what is wrong and what to do.
	Err error
}

// Error formats the error as "file:line: path: problem".
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors returns the FieldErrors inside err (as joined by Load,
// Parse, Validate and DecodeStrict), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	return out
}

func joinFieldErrors(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// DecodeStrict decodes the JSON raw into v (a pointer) strictly: a key
// that v's type does not have is an error naming its full path under
// keyPath ("connectors[0].config.orgs[0].teamz: unknown key; did you mean
// teams?"), and so is a value of the wrong type. All errors are returned
// together. Keys match json tags, exactly or else case-insensitively as
// encoding/json (and so Dex) does. An empty or null raw leaves v alone.
func DecodeStrict(raw json.RawMessage, v any, keyPath string) error {
	return decodeStrict(raw, v, keyPath, nil, nil)
}

// decodeStrict decodes raw into v. With warn set (the lenient mode of
// UnknownFieldsEnvVar), unknown keys are handed to warn instead of
// failing.
func decodeStrict(raw json.RawMessage, v any, keyPath string, src *source, warn *warnings) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: DecodeStrict needs a non-nil pointer, not %T", v)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	tree, err := decodeGeneric(raw)
	if err != nil {
		return &FieldError{Path: keyPath, Err: fmt.Errorf("not valid JSON: %w", err)}
	}
	d := &decoder{lenient: warn != nil}
	d.decode(keyPath, tree, rv.Elem())
	src.addLines(d.errs)
	if warn != nil {
		src.addLines(d.warns)
		warn.add(d.warns)
	}
	return joinFieldErrors(d.errs)
}

func decodeGeneric(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return tree, nil
}

// decoder sets a Go value from a generic JSON tree (maps, slices, strings,
// json.Number, bools, nil), collecting an error per bad key instead of
// stopping at the first.
type decoder struct {
	errs []*FieldError
	// lenient turns unknown keys into warnings (Dex's
	// DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=false, see UnknownFieldsEnvVar).
	lenient bool
	warns   []*FieldError
}

func (d *decoder) fail(path string, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

// customDecoder is implemented by types whose shape depends on a value
// (storage and signer: the config's keys depend on its type).
type customDecoder interface {
	decodeConfig(d *decoder, path string, v any)
}

var (
	customDecoderType   = reflect.TypeFor[customDecoder]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	slogLevelType       = reflect.TypeFor[slog.Level]()
)

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) decode(path string, v any, rv reflect.Value) {
	if v == nil {
		return // null or an empty YAML value: keep the zero value
	}
	if rv.CanAddr() {
		pv := rv.Addr()
		switch {
		case pv.Type().Implements(customDecoderType):
			pv.Interface().(customDecoder).decodeConfig(d, path, v)
			return
		case pv.Type().Implements(jsonUnmarshalerType):
			raw, err := json.Marshal(v)
			if err == nil {
				err = pv.Interface().(json.Unmarshaler).UnmarshalJSON(raw)
			}
			if err != nil {
				if rv.Type() == slogLevelType {
					d.fail(path, "%s is not a log level; use debug, info, warn or error", raw)
				} else {
					d.fail(path, "%s", cleanJSONError(err))
				}
			}
			return
		case pv.Type().Implements(textUnmarshalerType):
			s, ok := v.(string)
			if !ok {
				d.fail(path, "must be a string, not %s", kindName(v))
				return
			}
			if err := pv.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.fail(path, "%q: %s", s, cleanJSONError(err))
			}
			return
		}
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		d.decode(path, v, rv.Elem())
	case reflect.Struct:
		d.decodeStruct(path, v, rv)
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			d.fail(path, "must be a list, not %s", kindName(v))
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(arr), len(arr))
		for i, e := range arr {
			d.decode(path+"["+strconv.Itoa(i)+"]", e, s.Index(i))
		}
		rv.Set(s)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || rv.Type().Key().Kind() != reflect.String {
			d.fail(path, "must be a mapping, not %s", kindName(v))
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		for _, k := range sortedKeys(m) {
			ev := reflect.New(rv.Type().Elem()).Elem()
			d.decode(joinPath(path, k), m[k], ev)
			out.SetMapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()), ev)
		}
		rv.Set(out)
	case reflect.String:
		s, ok := scalarString(v)
		if !ok {
			d.fail(path, "must be a string, not %s", kindName(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.fail(path, "must be true or false, not %s", kindName(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			d.fail(path, "must be a whole number, not %s", kindName(v))
			return
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || rv.OverflowInt(i) {
			d.fail(path, "%s is not a whole number in range", n)
			return
		}
		rv.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			d.fail(path, "must be a whole number, not %s", kindName(v))
			return
		}
		i, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil || rv.OverflowUint(i) {
			d.fail(path, "%s is not a whole number in range 0-%d", n, maxUint(rv.Type()))
			return
		}
		rv.SetUint(i)
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			d.fail(path, "must be a number, not %s", kindName(v))
			return
		}
		f, err := n.Float64()
		if err != nil {
			d.fail(path, "%s is not a number", n)
			return
		}
		rv.SetFloat(f)
	case reflect.Interface:
		if rv.NumMethod() != 0 {
			d.fail(path, "cannot be decoded into %s", rv.Type())
			return
		}
		rv.Set(reflect.ValueOf(v))
	default:
		d.fail(path, "cannot be decoded into %s", rv.Type())
	}
}

// scalarString reads a string key's value as Dex's YAML reader
// (ghodss/yaml) does: an unquoted number or boolean where a string is
// expected becomes its text (tlsMinVersion: 1.2 is "1.2", clientID: 1234
// is "1234"; YAML 1.1 reads 0123 as the number 83, so quote such values).
// A float is written with 32-bit precision, as ghodss/yaml writes it.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			return string(x), true
		}
		f, err := x.Float64()
		if err != nil {
			return "", false
		}
		return strconv.FormatFloat(f, 'g', -1, 32), true
	}
	return "", false
}

func maxUint(t reflect.Type) uint64 {
	return uint64(1)<<(t.Bits()-1)*2 - 1
}

// cleanJSONError drops encoding/json's "json: " prefix.
func cleanJSONError(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type fieldInfo struct {
	name  string
	index []int
}

// structFields lists the JSON keys of t the way encoding/json does for the
// cases this package uses: the json tag name (or the field name), fields
// tagged "-" and unexported fields skipped, untagged embedded structs
// flattened.
func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for _, sub := range structFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, fieldInfo{name: name, index: []int{i}})
	}
	return out
}

// matchKey finds the field for key: exact first, then case-insensitive
// (encoding/json's rule, which Dex configs rely on).
func matchKey(fields []fieldInfo, key string) (fieldInfo, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return fieldInfo{}, false
}

func (d *decoder) decodeStruct(path string, v any, rv reflect.Value) {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "must be a mapping, not %s", kindName(v))
		return
	}
	fields := structFields(rv.Type())
	for _, k := range sortedKeys(m) {
		f, ok := matchKey(fields, k)
		if !ok {
			d.unknownKey(path, k, m[k], names(fields))
			continue
		}
		d.decode(joinPath(path, k), m[k], rv.FieldByIndex(f.index))
	}
}

func names(fields []fieldInfo) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}

// unsupported are keys Dex has and gatehouse refuses, by path pattern
// (indexes written as []), with what to do instead.
var unsupported = map[string]string{
	"grpc":     "Dex's gRPC API is not supported by gatehouse: clients, users and connectors are configured in this file (staticClients, staticPasswords, connectors); remove the grpc section",
	"sessions": "Dex's browser sessions are not supported by gatehouse; remove the sessions section",
	"mfa":      "Dex's multi-factor authentication is not supported by gatehouse (require MFA at the upstream provider, e.g. GitHub); remove the mfa section",
	// Keys of Dex releases after v2.45.
	"oauth2.pkce.enforce":                       "gatehouse always requires PKCE (S256) of public clients and checks it whenever a client sends it; remove this key",
	"oauth2.pkce.codeChallengeMethodsSupported": "S256 is always supported; to accept plain as well set oauth2.pkce.allowPlain: true, and remove this key",
	"logger.excludeFields":                      "not supported by gatehouse; remove it",
	"connectors[].grantTypes":                   "per-connector grant types are not supported; restrict clients instead with staticClients[].allowedGrantTypes and allowedConnectors",
}

func patternOf(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
			b.WriteString("[]")
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isEmptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func (d *decoder) unknownKey(path, key string, value any, known []string) {
	full := joinPath(path, key)
	if advice, ok := unsupported[patternOf(full)]; ok {
		if !isEmptyValue(value) {
			d.fail(full, "not supported: %s", advice)
		}
		return
	}
	fail := d.fail
	if d.lenient {
		fail = func(path, format string, args ...any) {
			d.warns = append(d.warns, &FieldError{Path: path, Err: fmt.Errorf(format+"; ignored because "+UnknownFieldsEnvVar+"=false", args...)})
		}
	}
	if s := suggest(key, known); s != "" {
		fail(full, "unknown key; did you mean %s?", s)
		return
	}
	known = slices.Clone(known)
	sort.Strings(known)
	if len(known) == 0 {
		fail(full, "unknown key (this section takes no keys)")
		return
	}
	fail(full, "unknown key (known keys here: %s)", strings.Join(known, ", "))
}

// suggest returns the known key closest to key, if close enough to be a typo.
func suggest(key string, known []string) string {
	best, bestDist := "", -1
	lk := strings.ToLower(key)
	for _, k := range known {
		dist := levenshtein(lk, strings.ToLower(k))
		if bestDist < 0 || dist < bestDist {
			best, bestDist = k, dist
		}
	}
	limit := max(2, len(key)/4)
	if bestDist < 0 || bestDist > limit || bestDist >= len(key) {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// object checks that v is a mapping whose keys are all in known (matched
// case-insensitively as well) and returns it keyed by the canonical names.
func (d *decoder) object(path string, v any, known []string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "must be a mapping, not %s", kindName(v))
		return nil, false
	}
	fields := make([]fieldInfo, len(known))
	for i, k := range known {
		fields[i] = fieldInfo{name: k}
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		f, ok := matchKey(fields, k)
		if !ok {
			d.unknownKey(path, k, m[k], known)
			continue
		}
		out[f.name] = m[k]
	}
	return out, true
}

// decodeConfig reads Dex's {type, config} storage section.
func (s *Storage) decodeConfig(d *decoder, path string, v any) {
	m, ok := d.object(path, v, []string{"type", "config"})
	if !ok {
		return
	}
	d.decode(joinPath(path, "type"), m["type"], reflect.ValueOf(&s.Type).Elem())
	cfgPath := joinPath(path, "config")
	cfg := m["config"]
	switch s.Type {
	case StorageSQLite3:
		d.decode(cfgPath, cfg, reflect.ValueOf(&s.SQLite3).Elem())
	case StoragePostgres:
		d.decode(cfgPath, cfg, reflect.ValueOf(&s.Postgres).Elem())
	case StorageKubernetes:
		d.decode(cfgPath, cfg, reflect.ValueOf(&s.Kubernetes).Elem())
	case StorageMemory:
		var none struct{}
		d.decode(cfgPath, cfg, reflect.ValueOf(&none).Elem())
	case "":
		// Validate reports the missing type.
	default:
		d.errs = append(d.errs, &FieldError{Path: joinPath(path, "type"), Err: storageTypeError(s.Type)})
	}
}

// MarshalJSON writes Dex's {type, config} shape.
func (s Storage) MarshalJSON() ([]byte, error) {
	var cfg any = struct{}{}
	switch s.Type {
	case StorageSQLite3:
		cfg = s.SQLite3
	case StoragePostgres:
		cfg = s.Postgres
	case StorageKubernetes:
		cfg = s.Kubernetes
	}
	return json.Marshal(struct {
		Type   string `json:"type"`
		Config any    `json:"config"`
	}{s.Type, cfg})
}

// decodeConfig reads Dex's {type, config} signer section.
func (s *Signer) decodeConfig(d *decoder, path string, v any) {
	m, ok := d.object(path, v, []string{"type", "config"})
	if !ok {
		return
	}
	d.decode(joinPath(path, "type"), m["type"], reflect.ValueOf(&s.Type).Elem())
	switch s.Type {
	case "local", "":
		d.decode(joinPath(path, "config"), m["config"], reflect.ValueOf(&s.Local).Elem())
	case "vault":
		d.fail(joinPath(path, "type"), "the vault signer is not supported by gatehouse; use type local (keys are generated, rotated and kept in the storage), or remove the signer section")
	default:
		d.fail(joinPath(path, "type"), "%q is not a signer type; use local", s.Type)
	}
}

// MarshalJSON writes Dex's {type, config} shape.
func (s Signer) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type   string      `json:"type"`
		Config LocalSigner `json:"config"`
	}{s.Type, s.Local})
}
