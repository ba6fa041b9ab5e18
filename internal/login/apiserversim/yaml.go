package apiserversim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseYAML reads the block YAML that Kubernetes configuration files use
// into maps, slices, strings and nils: block mappings and sequences,
// plain, single- and double-quoted scalars, literal and folded block
// scalars, flow sequences and mappings of scalars, comments. Scalars stay
// strings (the decoded structs hold only strings). Anything else (anchors,
// tags, multi-line flow collections, several documents) is an error that
// suggests JSON.
//
// A YAML library would do, but its package initialisation (0.1 ms for
// go.yaml.in/yaml/v3, measured with GODEBUG=inittrace=1) would be paid by
// every get-token; the tests check this parser against yaml.v3.
func parseYAML(src []byte) (any, error) {
	p := &yamlParser{}
	for i, raw := range strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n") {
		p.lines = append(p.lines, yamlLine{no: i + 1, raw: raw})
	}
	p.prepare()
	if len(p.lines) == 0 {
		return nil, nil
	}
	v, err := p.block(p.lines[0].indent)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.lines) {
		return nil, p.errf(p.lines[p.pos], "unexpected indentation")
	}
	return v, nil
}

type yamlLine struct {
	no      int
	raw     string
	indent  int
	text    string // without indentation and comment
	literal bool   // part of a block scalar: kept raw
}

type yamlParser struct {
	lines []yamlLine
	pos   int
}

var errUnsupportedYAML = errors.New("unsupported YAML (give the file as JSON instead)")

func (p *yamlParser) errf(l yamlLine, format string, args ...any) error {
	return fmt.Errorf("line %d: %s: %w", l.no, fmt.Sprintf(format, args...), errUnsupportedYAML)
}

// prepare drops blank and comment lines, strips comments and measures
// indentation; block scalar bodies are kept as they are.
func (p *yamlParser) prepare() {
	var out []yamlLine
	blockIndent := -1 // the indentation of the key that opened a block scalar
	for _, l := range p.lines {
		trimmed := strings.TrimLeft(l.raw, " ")
		indent := len(l.raw) - len(trimmed)
		if blockIndent >= 0 {
			if strings.TrimSpace(l.raw) == "" || indent > blockIndent {
				l.literal, l.indent, l.text = true, indent, l.raw
				out = append(out, l)
				continue
			}
			blockIndent = -1
		}
		text := strings.TrimRight(stripComment(trimmed), " \t")
		if text == "" || text == "---" {
			continue
		}
		l.indent, l.text = indent, text
		if strings.HasSuffix(text, "|") || strings.HasSuffix(text, "|-") || strings.HasSuffix(text, ">") || strings.HasSuffix(text, ">-") {
			blockIndent = indent
			if strings.HasPrefix(text, "- ") {
				blockIndent = indent + 2
			}
		}
		out = append(out, l)
	}
	// Trailing blank literal lines belong to no scalar.
	for len(out) > 0 && out[len(out)-1].literal && strings.TrimSpace(out[len(out)-1].raw) == "" {
		out = out[:len(out)-1]
	}
	p.lines = out
}

func stripComment(s string) string {
	inS, inD := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' && !inD:
			inS = !inS
		case c == '"' && !inS && (i == 0 || s[i-1] != '\\'):
			inD = !inD
		case c == '#' && !inS && !inD && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i]
		}
	}
	return s
}

// block parses the mapping or sequence whose lines start at indent.
func (p *yamlParser) block(indent int) (any, error) {
	l := p.lines[p.pos]
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) sequence(indent int) (any, error) {
	out := []any{}
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent != indent || !(l.text == "-" || strings.HasPrefix(l.text, "- ")) {
			if l.indent > indent {
				return nil, p.errf(l, "unexpected indentation in a sequence")
			}
			break
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.pos++
			if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
				v, err := p.block(p.lines[p.pos].indent)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			} else {
				out = append(out, nil)
			}
			continue
		}
		// "- key: value" opens a mapping whose keys sit at the item's column.
		col := indent + (len(l.text) - len(rest))
		if _, _, isKey := splitKey(rest); isKey && !isQuotedScalar(rest) {
			p.lines[p.pos].indent, p.lines[p.pos].text = col, rest
			v, err := p.mapping(col)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		v, err := p.value(l, rest, indent)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent < indent {
			break
		}
		if l.indent > indent {
			return nil, p.errf(l, "unexpected indentation in a mapping")
		}
		if l.text == "-" || strings.HasPrefix(l.text, "- ") {
			break
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, p.errf(l, "expected key: value")
		}
		k, err := scalar(key)
		if err != nil {
			return nil, p.errf(l, "%v", err)
		}
		ks, _ := k.(string)
		if _, dup := out[ks]; dup {
			return nil, p.errf(l, "duplicate key %q", ks)
		}
		if rest == "" {
			p.pos++
			// A nested block, or a sequence at the key's own indentation.
			if p.pos < len(p.lines) {
				next := p.lines[p.pos]
				if next.indent > indent || (next.indent == indent && (next.text == "-" || strings.HasPrefix(next.text, "- "))) {
					v, err := p.block(next.indent)
					if err != nil {
						return nil, err
					}
					out[ks] = v
					continue
				}
			}
			out[ks] = nil
			continue
		}
		v, err := p.value(l, rest, indent)
		if err != nil {
			return nil, err
		}
		out[ks] = v
	}
	return out, nil
}

// value parses the text after "key:" or "- ", consuming the line (and a
// block scalar's body).
func (p *yamlParser) value(l yamlLine, s string, parentIndent int) (any, error) {
	p.pos++
	switch {
	case s == "|" || s == "|-" || s == ">" || s == ">-":
		return p.blockScalar(s, parentIndent), nil
	case strings.HasPrefix(s, "&") || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "!"):
		return nil, p.errf(l, "anchors, aliases and tags")
	case strings.HasPrefix(s, "["):
		return flow(l, s, p)
	case strings.HasPrefix(s, "{"):
		return flow(l, s, p)
	}
	v, err := scalar(s)
	if err != nil {
		return nil, p.errf(l, "%v", err)
	}
	return v, nil
}

func (p *yamlParser) blockScalar(style string, parentIndent int) string {
	var body []string
	indent := -1
	for p.pos < len(p.lines) && p.lines[p.pos].literal {
		raw := p.lines[p.pos].raw
		if strings.TrimSpace(raw) != "" && indent < 0 {
			indent = len(raw) - len(strings.TrimLeft(raw, " "))
		}
		body = append(body, raw)
		p.pos++
	}
	for i, b := range body {
		if len(b) >= indent && indent > 0 {
			body[i] = b[indent:]
		} else {
			body[i] = strings.TrimLeft(b, " ")
		}
	}
	var s string
	if strings.HasPrefix(style, ">") {
		s = strings.Join(body, " ")
	} else {
		s = strings.Join(body, "\n")
	}
	if !strings.HasSuffix(style, "-") {
		s += "\n"
	}
	return s
}

func flow(l yamlLine, s string, p *yamlParser) (any, error) {
	open, close := s[0], map[byte]byte{'[': ']', '{': '}'}[s[0]]
	if s[len(s)-1] != close {
		return nil, p.errf(l, "flow collections must end on their line")
	}
	inner := strings.TrimSpace(s[1 : len(s)-1])
	items, err := splitFlow(inner)
	if err != nil {
		return nil, p.errf(l, "%v", err)
	}
	if open == '[' {
		out := []any{}
		for _, it := range items {
			v, err := scalar(it)
			if err != nil {
				return nil, p.errf(l, "%v", err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	out := map[string]any{}
	for _, it := range items {
		k, v, ok := splitKey(it)
		if !ok {
			return nil, p.errf(l, "expected key: value in a flow mapping")
		}
		ks, err := scalar(k)
		if err != nil {
			return nil, p.errf(l, "%v", err)
		}
		vs, err := scalar(v)
		if err != nil {
			return nil, p.errf(l, "%v", err)
		}
		key, _ := ks.(string)
		out[key] = vs
	}
	return out, nil
}

func splitFlow(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	inS, inD, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' && !inD:
			inS = !inS
		case c == '"' && !inS && (i == 0 || s[i-1] != '\\'):
			inD = !inD
		case (c == '[' || c == '{') && !inS && !inD:
			return nil, errors.New("nested flow collections")
		case c == ',' && !inS && !inD:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" {
		out = append(out, last)
	}
	return out, nil
}

// splitKey splits "key: value" (or "key:") at the first ": " outside quotes.
func splitKey(s string) (key, rest string, ok bool) {
	inS, inD := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' && !inD:
			inS = !inS
		case c == '"' && !inS && (i == 0 || s[i-1] != '\\'):
			inD = !inD
		case c == ':' && !inS && !inD && (i == len(s)-1 || s[i+1] == ' ' || s[i+1] == '\t'):
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
		}
	}
	return "", "", false
}

func isQuotedScalar(s string) bool {
	if len(s) < 2 {
		return false
	}
	q := s[0]
	if q != '\'' && q != '"' {
		return false
	}
	_, err := scalar(s)
	return err == nil
}

// scalar decodes a plain or quoted scalar; plain null, ~ and the empty
// value are nil, everything else a string.
func scalar(s string) (any, error) {
	switch {
	case s == "" || s == "null" || s == "Null" || s == "NULL" || s == "~":
		return nil, nil
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, errors.New("unterminated single-quoted scalar")
		}
		inner := s[1 : len(s)-1]
		if strings.Count(strings.ReplaceAll(inner, "''", ""), "'") > 0 {
			return nil, errors.New("unterminated single-quoted scalar")
		}
		return strings.ReplaceAll(inner, "''", "'"), nil
	case s[0] == '"':
		var out string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			// YAML escapes JSON lacks (\x41, \e ...): try Go's.
			u, err2 := strconv.Unquote(s)
			if err2 != nil {
				return nil, fmt.Errorf("double-quoted scalar: %w", err)
			}
			return u, nil
		}
		return out, nil
	}
	return s, nil
}
