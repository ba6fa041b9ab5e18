// Package termsafetest holds the attacks that every human-readable output
// of gatehouse is tested with, and the check that the output survived
// them.
package termsafetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Attacks are names an attacker can get into data gatehouse shows: any
// user can make kube-apiserver audit an object name of their choosing (a
// request that 404s), and upstream identity providers choose user names,
// group names and error messages.
var Attacks = map[string]string{
	"osc title":         "café-\x1b]0;pwned\x07",
	"osc 8 link":        "x\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
	"csi clear":         "a\x1b[2J\x1b[H",
	"csi color":         "\x1b[31mred\x1b[0m",
	"bel":               "ding\x07",
	"cr overwrite":      "innocent\rEVIL",
	"lf forged row":     "x\n2026-12-04T00:00:00Z  admin  delete  secrets",
	"crlf":              "x\r\ny",
	"tab":               "col\tshift",
	"vt ff":             "a\vb\fc",
	"nul":               "a\x00b",
	"del":               "a\x7fb",
	"c1 csi":            "a\u009b2Jb",
	"c1 range":          "\u0080\u0085\u008d\u009d\u009f",
	"raw c1 byte":       "a\x9b2Jb",
	"invalid utf8":      "a\xff\xfeb",
	"bidi lre":          "\u202aab",
	"bidi rle":          "\u202bab",
	"bidi pdf":          "ab\u202c",
	"bidi lro":          "\u202dab",
	"bidi rlo":          "admin\u202egnp.exe",
	"bidi isolates":     "\u2066a\u2067b\u2068c\u2069",
	"line separator":    "a\u2028b\u2029c",
	"zero width joiner": "ad\u200dmin",
	"zero width space":  "ad\u200bmin",
	"bom":               "\ufeffadmin",
	"nbsp":              "ad\u00a0min",
}

// Visible is a name that must reach the output unchanged.
const Visible = "café-ünïcødé-名前-ok"

// ViaJSON is s after a trip through encoding/json, which replaces invalid
// UTF-8 with U+FFFD: what a name becomes once kube-apiserver or an
// upstream sent it as JSON.
func ViaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// CheckOutput fails t if out holds a rune a terminal could act on: every
// byte must be valid UTF-8 and every rune printable (unicode.IsPrint) or a
// line feed, the only control a human-readable output of ours writes.
func CheckOutput(t testing.TB, out string) {
	t.Helper()
	if err := Check(out); err != nil {
		t.Errorf("%v in output:\n%s", err, out)
	}
}

// Check is CheckOutput's test: nil when out is safe.
func Check(out string) error {
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Errorf("invalid UTF-8 byte %#x at %d", out[i], i)
		case r == '\n':
		case !unicode.IsPrint(r):
			return fmt.Errorf("raw %U at %d", r, i)
		}
		i += size
	}
	return nil
}
