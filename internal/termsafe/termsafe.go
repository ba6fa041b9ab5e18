// Package termsafe renders text that gatehouse did not write itself (object
// and user names, group names, messages from upstreams and from the API
// server) so that it cannot act on the terminal that shows it: no escape
// sequence (OSC, CSI, C1 controls), no line break that forges a row, no
// bidirectional override that reorders what follows. It is the defence
// against kubectl's CVE-2021-25743 class of bug.
//
// The escaping itself is the standard library's: strconv.Quote shows every
// rune that unicode.IsPrint refuses as a Go escape (\x1b, \n, \u202e) and
// leaves printable Unicode such as "café" as it is. What is written here by
// hand is only the decision of when to quote, which log/slog's text handler
// also makes (its needsQuoting is unexported); golang.org/x/text has no
// such function (its bidi and width packages classify runes, they do not
// render text for a terminal). The package has no dependencies besides the
// standard library, so that the kubectl plugin can link it.
//
// Zero-width joiners, zero-width spaces and the other format characters
// (Unicode category Cf) are harmless to a terminal but invisible: they make
// two different names look alike. They are escaped like controls, as
// strconv.Quote and slog do, so that the difference shows; the cost is that
// an emoji sequence joined by U+200D shows as its escapes.
package termsafe

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Safe reports whether s can be written to a terminal as it is: valid
// UTF-8 made only of printable runes (unicode.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space).
func Safe(s string) bool { return printable(s, "") }

// printable reports whether s is valid UTF-8 of printable runes and the
// ASCII controls in allow.
func printable(s, allow string) bool {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if (b < 0x20 || b == 0x7f) && strings.IndexByte(allow, b) < 0 {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// String returns s as it is when it is Safe and does not begin with a
// double quote; otherwise it returns s quoted by strconv.Quote, with every
// control, format or invalid byte shown as an escape. A rendered string
// therefore begins with `"` exactly when it was quoted, and two different
// strings never render alike.
func String(s string) string {
	if Safe(s) && !strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

// Lines renders each line of s with String and keeps the line breaks:
// for a message of ours that may hold data, such as an error, whose lines
// may be several.
func Lines(s string) string {
	if Safe(strings.ReplaceAll(s, "\n", "")) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = String(l)
	}
	return strings.Join(lines, "\n")
}

// Strings renders each element of ss with String.
func Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return out
}

// Text is text already rendered for a terminal: Args passes it as it is.
type Text string

// Join renders each element with String and joins them with sep.
func Join(ss []string, sep string) Text {
	return Text(strings.Join(Strings(ss), sep))
}

// Args returns a copy of args for a fmt format in which every string,
// error, fmt.Stringer and value of a string type other than Text is
// replaced by a value
// that prints as its String rendering with %s and %v, and as
// strconv.Quote would with %q (which escapes the same runes: it is not
// quoted twice). Other values (numbers, times) print nothing a terminal
// would act on. Use it where a message mixes text of ours, which may hold
// line breaks, with data: the data's line breaks and escapes show, ours
// still break lines.
func Args(args ...any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case Text:
			out[i] = string(v)
		case string:
			out[i] = arg(v)
		case error:
			out[i] = arg(v.Error())
		case fmt.Stringer:
			out[i] = arg(v.String())
		default:
			if v := reflect.ValueOf(a); v.Kind() == reflect.String {
				out[i] = arg(v.String())
			} else {
				out[i] = a
			}
		}
	}
	return out
}

// Sprintf is fmt.Sprintf(format, Args(args...)...): the format is ours,
// the args are data.
func Sprintf(format string, args ...any) string {
	return fmt.Sprintf(format, Args(args...)...)
}

// Fprintf is fmt.Fprintf(w, format, Args(args...)...).
func Fprintf(w io.Writer, format string, args ...any) (int, error) {
	return fmt.Fprintf(w, format, Args(args...)...)
}

// arg is a string from Args.
type arg string

// Format implements fmt.Formatter.
func (a arg) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, fmt.FormatString(f, verb), string(a))
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, 's'), String(string(a)))
}

// JSON makes indented or compact JSON from encoding/json safe to show: it
// escapes, as \uXXXX, every rune that is not printable and not the
// whitespace encoding/json writes between tokens. encoding/json already
// escapes the C0 controls inside strings, but leaves C1 controls (U+009B is
// a CSI) and bidi overrides (U+202E) raw. The result is still valid JSON
// with the same meaning, since such runes can only occur inside strings.
func JSON(b []byte) []byte {
	if printable(string(b), "\n\t\r") {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == '\n' || r == '\t' || r == '\r' || r == ' ':
			out = append(out, b[i])
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r < utf8.RuneSelf && (r < 0x20 || r == 0x7f), r >= utf8.RuneSelf && !unicode.IsPrint(r):
			if r > 0xffff {
				hi, lo := utf16.EncodeRune(r)
				out = appendU(appendU(out, hi), lo)
			} else {
				out = appendU(out, r)
			}
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

// ShellQuote quotes s as one word for a POSIX shell, for commands printed
// for a person to copy: as it is when it needs no quoting, in single
// quotes when it is printable, and in bash's $'...' (ANSI-C quoting, also
// understood by zsh and ksh) with escapes when it holds anything a
// terminal would act on.
func ShellQuote(s string) string {
	if s != "" && Safe(s) && !strings.ContainsAny(s, " \t\n'\"$`\\|&;<>()*?[]#~{}!") {
		return s
	}
	if Safe(s) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < utf8.RuneSelf && (r < 0x20 || r == 0x7f):
			b.WriteString(`\x` + strconv.FormatUint(uint64(r)|0x100, 16)[1:])
		case r >= utf8.RuneSelf && !unicode.IsPrint(r):
			if r > 0xffff {
				b.WriteString(`\U` + strconv.FormatUint(uint64(r)|1<<32, 16)[1:])
			} else {
				b.WriteString(`\u` + strconv.FormatUint(uint64(r)|0x10000, 16)[1:])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('\'')
	return b.String()
}
