package config

import (
	"strconv"
	"strings"
	"sync"

	yaml3 "go.yaml.in/yaml/v3"
)

// source is the YAML a Config was parsed from. It finds the line of a key
// path for error messages; the YAML is only parsed again (for its node
// positions) when there is an error to place.
type source struct {
	data []byte
	once sync.Once
	root *yaml3.Node
}

func newSource(data []byte) *source { return &source{data: data} }

// addLines sets Line on each error whose path can be found.
func (s *source) addLines(errs []*FieldError) {
	if s == nil {
		return
	}
	for _, e := range errs {
		if e.Line == 0 {
			e.Line = s.line(e.Path)
		}
	}
}

// line returns the line of the deepest node of path that exists in the
// YAML (a missing key gives the line of its parent mapping), or 0.
func (s *source) line(path string) int {
	if s == nil || path == "" {
		return 0
	}
	s.once.Do(func() {
		var doc yaml3.Node
		if err := yaml3.Unmarshal(s.data, &doc); err == nil {
			s.root = &doc
		}
	})
	if s.root == nil {
		return 0
	}
	n := s.root
	if n.Kind == yaml3.DocumentNode {
		if len(n.Content) == 0 {
			return 0
		}
		n = n.Content[0]
	}
	line := 0
	for _, seg := range splitPath(path) {
		for n.Kind == yaml3.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next, at *yaml3.Node
		switch {
		case seg.index >= 0 && n.Kind == yaml3.SequenceNode:
			if seg.index < len(n.Content) {
				next, at = n.Content[seg.index], n.Content[seg.index]
			}
		case seg.index < 0 && n.Kind == yaml3.MappingNode:
			next, at = mappingValue(n, seg.key)
		}
		if next == nil {
			return line
		}
		line = at.Line
		n = next
	}
	return line
}

// mappingValue finds key in a mapping node: exact match first, then
// case-insensitive. It returns the value node and the key node.
func mappingValue(n *yaml3.Node, key string) (value, keyNode *yaml3.Node) {
	for pass := 0; pass < 2; pass++ {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value == key || (pass == 1 && strings.EqualFold(k.Value, key)) {
				return n.Content[i+1], k
			}
		}
	}
	return nil, nil
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// splitPath splits "a.b[1].c" into a, b, [1], c. A key containing a dot
// cannot be told apart; the line is best effort.
func splitPath(path string) []pathSeg {
	var out []pathSeg
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, pathSeg{key: key, index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			if !ok {
				break
			}
			i, err := strconv.Atoi(num)
			if err != nil {
				break
			}
			out = append(out, pathSeg{index: i})
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}
