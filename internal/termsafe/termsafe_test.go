package termsafe_test

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

func TestStringAttacks(t *testing.T) {
	seen := map[string]string{}
	for name, s := range termsafetest.Attacks {
		t.Run(name, func(t *testing.T) {
			got := termsafe.String(s)
			termsafetest.CheckOutput(t, got)
			if !strings.HasPrefix(got, `"`) {
				t.Errorf("String(%q) = %s: not quoted", s, got)
			}
			back, err := strconv.Unquote(got)
			if err != nil || back != s && strings.ToValidUTF8(s, "\ufffd") != back {
				t.Errorf("String(%q) = %s does not unquote to the input (%q, %v)", s, got, back, err)
			}
		})
		if other, dup := seen[termsafe.String(s)]; dup {
			t.Errorf("%q and %q render alike", s, other)
		}
		seen[termsafe.String(s)] = s
	}
}

func TestStringKeepsPrintable(t *testing.T) {
	for _, s := range []string{termsafetest.Visible, "café", "alice@example.com", `DOMAIN\user`, "a b", `say "hi"`, "👍", ""} {
		if got := termsafe.String(s); got != s {
			t.Errorf("String(%q) = %q, want it unchanged", s, got)
		}
	}
	// A printable string that looks quoted is quoted, so that it cannot
	// pass for the rendering of another.
	if got, want := termsafe.String(`"\x1b"`), strconv.Quote(`"\x1b"`); got != want {
		t.Errorf("String of a quoted-looking name = %s, want %s", got, want)
	}
	if termsafe.String(`"\x1b"`) == termsafe.String("\x1b") {
		t.Error("a name spelling an escape renders like the escape")
	}
}

func TestSafe(t *testing.T) {
	if !termsafe.Safe(termsafetest.Visible) {
		t.Errorf("Safe(%q) = false", termsafetest.Visible)
	}
	for name, s := range termsafetest.Attacks {
		if termsafe.Safe(s) {
			t.Errorf("%s: Safe(%q) = true", name, s)
		}
	}
}

type named string

type stringer struct{}

func (stringer) String() string { return "s\x1b[2J" }

func TestArgs(t *testing.T) {
	got := termsafe.Sprintf("%s|%v|%s|%s|%d|%s|%q|%q|%-6s|", "a\nb", errors.New("e\x1b]0;x\x07"), stringer{}, named("n\u202e"), 42, "ok", "q\x1b", "fine", "w")
	want := `"a\nb"|"e\x1b]0;x\a"|"s\x1b[2J"|"n\u202e"|42|ok|"q\x1b"|"fine"|w     |`
	if got != want {
		t.Errorf("Sprintf = %s\nwant      %s", got, want)
	}
}

func TestJSON(t *testing.T) {
	in := []byte("{\n  \"name\": \"caf\u00e9 \u009b2J \u202egnp \U000e0001 \u200d\",\n\t\"ok\": true\r\n}")
	got := string(termsafe.JSON(in))
	termsafetest.CheckOutput(t, strings.ReplaceAll(strings.ReplaceAll(got, "\t", " "), "\r", ""))
	want := "{\n  \"name\": \"caf\u00e9 \\u009b2J \\u202egnp \\udb40\\udc01 \\u200d\",\n\t\"ok\": true\r\n}"
	if got != want {
		t.Errorf("JSON = %q, want %q", got, want)
	}
	if ok := []byte(`{"a":"café"}`); string(termsafe.JSON(ok)) != string(ok) {
		t.Error("JSON changed printable JSON")
	}
}

func TestShellQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"café", "café"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
		{"a\x1b]0;x\x07", `$'a\x1b]0;x\x07'`},
		{"o'k\n", `$'o\'k\x0a'`},
		{`back\slash` + "\t", `$'back\\slash\x09'`},
		{"rlo\u202e", `$'rlo\u202e'`},
		{"c1\u009b", `$'c1\u009b'`},
		{"tag\U000e0001", `$'tag\U000e0001'`},
		{"bad\xff", `$'bad\xff'`},
	} {
		if got := termsafe.ShellQuote(c.in); got != c.want {
			t.Errorf("ShellQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Log("no bash: the quoted words are not run")
	}
	for name, s := range termsafetest.Attacks {
		q := termsafe.ShellQuote(s)
		termsafetest.CheckOutput(t, q)
		if bash == "" || strings.ContainsRune(s, 0) {
			continue // an argument cannot hold NUL
		}
		// The word a person copies gives the command the exact name.
		out, err := exec.Command(bash, "-c", "printf %s "+q).Output()
		if err != nil || string(out) != s {
			t.Errorf("%s: bash made %q of %s, want %q (%v)", name, out, q, s, err)
		}
	}
}

func TestCheckCatches(t *testing.T) {
	for name, s := range termsafetest.Attacks {
		if termsafetest.Check("x"+s) == nil && name != "lf forged row" { // a line feed is caught by counting rows
			t.Errorf("%s: Check(%q) = nil", name, s)
		}
	}
}

func TestLines(t *testing.T) {
	for in, want := range map[string]string{
		"two\nlines":                "two\nlines",
		"kubectl: error\nx\x1b[2Jy": "kubectl: error\n\"x\\x1b[2Jy\"",
		"\"quoted\" start\nok":      "\"quoted\" start\nok", // nothing to escape: as it is
	} {
		if got := termsafe.Lines(in); got != want {
			t.Errorf("Lines(%q) = %q, want %q", in, got, want)
		}
	}
}
