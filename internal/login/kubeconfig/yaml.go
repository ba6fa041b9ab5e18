package kubeconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// writeYAML writes a decoded JSON value (maps, slices, strings,
// json.Number, bools, nil) as block YAML with sorted keys: the layout
// clientcmd writes kubeconfigs in. Written by hand for the reason in the
// package comment; the tests read every output back with yaml.v3 and
// compare.
func writeYAML(w *bytes.Buffer, v any, indent int) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			w.WriteString("{}\n")
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				w.WriteString(strings.Repeat(" ", indent))
			}
			w.WriteString(scalar(k))
			w.WriteByte(':')
			writeValue(w, x[k], indent)
		}
	case []any:
		if len(x) == 0 {
			w.WriteString("[]\n")
			return
		}
		for i, e := range x {
			if i > 0 {
				w.WriteString(strings.Repeat(" ", indent))
			}
			w.WriteString("- ")
			writeYAML(w, e, indent+2)
		}
	default:
		w.WriteString(scalarValue(v))
		w.WriteByte('\n')
	}
}

// writeValue writes a mapping's value after "key:".
func writeValue(w *bytes.Buffer, v any, indent int) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			w.WriteString(" {}\n")
			return
		}
		w.WriteByte('\n')
		w.WriteString(strings.Repeat(" ", indent+2))
		writeYAML(w, x, indent+2)
	case []any:
		if len(x) == 0 {
			w.WriteString(" []\n")
			return
		}
		// clientcmd (yaml.v2) writes a mapping's sequence at the key's
		// indentation.
		w.WriteByte('\n')
		w.WriteString(strings.Repeat(" ", indent))
		writeYAML(w, x, indent)
	default:
		w.WriteByte(' ')
		w.WriteString(scalarValue(v))
		w.WriteByte('\n')
	}
}

func scalarValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		return x.String()
	case string:
		return scalar(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// scalar writes s plain when YAML (1.1, which kubectl's YAML reader
// follows, and 1.2) reads it back as the same string, else double-quoted,
// with YAML's escapes for what YAML does not allow as it is.
func scalar(s string) string {
	if plainSafe(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfeff || r == 0xfffe || r == 0xffff || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func plainSafe(s string) bool {
	if s == "" || strings.ContainsAny(s[:1], ",[]{}#&*!|>'\"%@`~=<.+0123456789 ") || strings.HasSuffix(s, " ") || strings.HasSuffix(s, ":") ||
		strings.HasPrefix(s, "---") {
		return false
	}
	// "-", "?" and ":" start a plain scalar unless a space follows (or, for
	// "-", a number: -1, -.5).
	if strings.ContainsAny(s[:1], "-?:") && (len(s) == 1 || strings.ContainsAny(s[1:2], " \t0123456789.")) {
		return false
	}
	if strings.Contains(s, ": ") || strings.Contains(s, " #") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "true", "false", "on", "off", "null":
		return false
	}
	return true
}
