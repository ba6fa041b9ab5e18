package config

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"unicode"
)

// IssuerPattern is the issuer rule of Validate as a regular expression
// (JSON Schema's dialect, which Go's regexp reads too): https, or http on
// a loopback host (localhost, 127.0.0.0/8, [::1]) for local testing; no
// user, query or fragment. TestIssuerPatternAgrees holds it to Validate.
const IssuerPattern = `^([hH][tT][tT][pP][sS]://[^/?#@\s]+|[hH][tT][tT][pP]://(` + localhostPattern + `|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])(:[0-9]*)?)(/[^?#\s]*)?$`

const localhostPattern = `[lL][oO][cC][aA][lL][hH][oO][sS][tT]`

// SchemaOptions says what Schema cannot know by itself.
type SchemaOptions struct {
	// Connectors maps a connector type to its config struct (a value or a
	// pointer), as the connector package decodes it with DecodeConfig.
	// Other types' config stays an open mapping.
	Connectors map[string]any
}

// storageConfigs are the storage types and their config structs, as
// Storage.decodeConfig reads them (TestSchemaStorageTypes checks that
// each decodes). A new storage type goes here too.
var storageConfigs = map[string]reflect.Type{
	StorageSQLite3:    reflect.TypeFor[SQLite3](),
	StoragePostgres:   reflect.TypeFor[Postgres](),
	StorageKubernetes: reflect.TypeFor[Kubernetes](),
	StorageMemory:     reflect.TypeFor[struct{}](),
}

// Schema returns a JSON Schema (draft-07) of the configuration file, built
// from the same types, key lists and rules the decoder uses: every key
// with its type, unknown keys refused (keys match case-insensitively, as
// in the decoder), Dex keys gatehouse does not support allowed only
// empty, storage and connector configs by type, and the issuer rule
// (IssuerPattern). The Helm chart's values.schema.json holds it as the
// schema of `config`, so a mistake fails `helm install` as it would fail
// `gatehouse serve`. It checks what decoding checks, plus the issuer; the
// rest of Validate (files, references between keys) runs at start-up.
func Schema(o SchemaOptions) map[string]any {
	g := &schemaGen{o: o}
	s := g.object("", reflect.TypeFor[Config]())
	s["description"] = "gatehouse's config.yaml (Dex's format): generated from gatehouse's config types (internal/config Schema); gatehouse checks the rest at start-up"
	props := s["properties"].(map[string]any)
	props["issuer"] = map[string]any{
		// null passes here so that the chart's templates, which know
		// whether existingSecret makes it optional, say it is missing.
		"type":        nullable("string"),
		"pattern":     IssuerPattern,
		"description": "https URL (http only on a loopback host, for local testing), without user, query or fragment; required",
	}
	return s
}

type schemaGen struct{ o SchemaOptions }

// SchemaProvider is implemented by a config type that decodes itself
// (json.Unmarshaler) to give Schema its JSON Schema, such as a key that
// takes a string or a list.
type SchemaProvider interface {
	ConfigSchema() map[string]any
}

var schemaProviderType = reflect.TypeFor[SchemaProvider]()

var (
	durationType   = reflect.TypeFor[Duration]()
	tlsVersionType = reflect.TypeFor[TLSVersion]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	storageType    = reflect.TypeFor[Storage]()
	signerType     = reflect.TypeFor[Signer]()
	connectorType  = reflect.TypeFor[Connector]()
)

// nullable: an empty YAML value (null) leaves any key at its default.
func nullable(types ...string) []any {
	out := make([]any, 0, len(types)+1)
	for _, t := range types {
		out = append(out, t)
	}
	return append(out, "null")
}

// caseInsensitive writes s as a regular expression that matches it in any
// case, with character classes (JSON Schema's regular expressions have
// no flags).
func caseInsensitive(s string) string {
	var b strings.Builder
	for _, r := range s {
		up, low := unicode.ToUpper(r), unicode.ToLower(r)
		switch {
		case up != low:
			b.WriteString("[" + string(up) + string(low) + "]")
		case strings.ContainsRune(`\.+*?()|[]{}^$-/`, r):
			b.WriteString(`\` + string(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// keysObject is a mapping with these properties and no others, keys
// matched in any case (the variant's value is then checked at start-up).
func keysObject(props map[string]any) map[string]any {
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, caseInsensitive(k))
	}
	sort.Strings(names)
	return map[string]any{
		"type":                 nullable("object"),
		"properties":           props,
		"patternProperties":    map[string]any{"^(" + strings.Join(names, "|") + ")$": true},
		"additionalProperties": false,
	}
}

// emptyOnly allows a key that gatehouse refuses when it has a value.
func emptyOnly(advice string) map[string]any {
	return map[string]any{
		"description": "not supported: " + advice,
		"anyOf": []any{
			map[string]any{"type": "null"},
			map[string]any{"type": "object", "maxProperties": 0},
			map[string]any{"type": "array", "maxItems": 0},
		},
	}
}

func (g *schemaGen) object(path string, t reflect.Type) map[string]any {
	props := map[string]any{}
	for _, f := range structFields(t) {
		props[f.name] = g.value(joinPath(path, f.name), t.FieldByIndex(f.index).Type)
	}
	for pattern, advice := range unsupported {
		if parent, key, ok := cutLast(pattern); ok && parent == patternOf(path) {
			props[key] = emptyOnly(advice)
		}
	}
	return keysObject(props)
}

// cutLast splits "a.b.c" into "a.b" and "c" ("grpc" into "" and "grpc").
func cutLast(pattern string) (string, string, bool) {
	i := strings.LastIndex(pattern, ".")
	if i < 0 {
		return "", pattern, true
	}
	return pattern[:i], pattern[i+1:], true
}

func (g *schemaGen) value(path string, t reflect.Type) map[string]any {
	switch t {
	case durationType:
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "string", "pattern": `^\s*[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)\s*$`},
			map[string]any{"enum": []any{0, nil}},
		}, "description": "a Go duration such as 24h or 30m"}
	case tlsVersionType:
		return map[string]any{"enum": []any{"1.2", "1.3", 1.2, 1.3, nil}}
	case slogLevelType:
		return map[string]any{"type": nullable("string"), "pattern": `^([dD][eE][bB][uU][gG]|[iI][nN][fF][oO]|[wW][aA][rR][nN]|[eE][rR][rR][oO][rR])([+-][0-9]+)?$`}
	case rawMessageType:
		return map[string]any{"type": nullable("object")}
	case storageType:
		return g.typed(path, "sqlite3, postgres, kubernetes or memory", storageConfigs)
	case signerType:
		return g.typed(path, "local", map[string]reflect.Type{"local": reflect.TypeFor[LocalSigner]()})
	case connectorType:
		return g.connector(path)
	}
	// A type that reads itself (as the decoder lets it) says its shapes
	// with ConfigSchema; else it takes any and is checked at start-up.
	if pt := reflect.PointerTo(t); pt.Implements(schemaProviderType) {
		return reflect.New(t).Interface().(SchemaProvider).ConfigSchema()
	} else if pt.Implements(jsonUnmarshalerType) {
		return map[string]any{}
	} else if pt.Implements(textUnmarshalerType) {
		return map[string]any{"type": nullable("string")}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.value(path, t.Elem())
	case reflect.Struct:
		return g.object(path, t)
	case reflect.Slice:
		return map[string]any{"type": nullable("array"), "items": g.value(path+"[]", t.Elem())}
	case reflect.Map:
		return map[string]any{"type": nullable("object"), "additionalProperties": g.value(path, t.Elem())}
	case reflect.String:
		// An unquoted number or boolean is read as its text, as in Dex.
		return map[string]any{"type": nullable("string", "number", "boolean")}
	case reflect.Bool:
		return map[string]any{"type": nullable("boolean")}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": nullable("integer")}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": nullable("integer"), "minimum": 0, "maximum": maxUint(t)}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": nullable("number")}
	}
	return map[string]any{} // any
}

// typed is Dex's {type, config} shape: config's keys depend on type.
func (g *schemaGen) typed(path, list string, configs map[string]reflect.Type) map[string]any {
	types := make([]string, 0, len(configs))
	for k := range configs {
		types = append(types, k)
	}
	sort.Strings(types)
	enum := make([]any, len(types))
	var cases []any
	for i, k := range types {
		enum[i] = k
		cases = append(cases, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": k}}, "required": []any{"type"}},
			"then": map[string]any{"properties": map[string]any{"config": g.object(path+".config", configs[k])}},
		})
	}
	s := keysObject(map[string]any{
		"type":   map[string]any{"enum": enum, "description": list},
		"config": map[string]any{"type": nullable("object")},
	})
	s["allOf"] = cases
	return s
}

// connector is one connectors[] entry; config by type when known.
func (g *schemaGen) connector(path string) map[string]any {
	s := g.object(path, connectorType)
	types := make([]string, 0, len(g.o.Connectors))
	for k := range g.o.Connectors {
		types = append(types, k)
	}
	sort.Strings(types)
	var cases []any
	for _, k := range types {
		t := reflect.TypeOf(g.o.Connectors[k])
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		cases = append(cases, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": k}}, "required": []any{"type"}},
			"then": map[string]any{"properties": map[string]any{"config": g.object(path+".config", t)}},
		})
	}
	if len(cases) > 0 {
		s["allOf"] = cases
	}
	return s
}
