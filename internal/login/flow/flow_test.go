package flow

import "testing"

func TestNoDesktop(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DISPLAY": ":0"}, ""},
		{map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, ""},
		{map[string]string{"BROWSER": "/vscode/helpers/browser.sh", "SSH_CONNECTION": "a b c d"}, ""},
		{map[string]string{"WSL_DISTRO_NAME": "Ubuntu"}, ""},
		{map[string]string{}, "no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (no desktop session)"},
		{map[string]string{"SSH_CONNECTION": "192.0.2.1 5 192.0.2.2 22"}, "no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (an SSH session)"},
		{map[string]string{"SSH_TTY": "/dev/pts/3"}, "no DISPLAY, WAYLAND_DISPLAY or BROWSER is set (an SSH session)"},
	}
	for _, tt := range tests {
		if got := noDesktop(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"Not a member of exampleorg", 100, "Not a member of exampleorg"},
		{"é ü 日本", 100, "é ü 日本"},
		{"a\x1b[31mred\x1b[0m", 100, `"a\x1b[31mred\x1b[0m"`},
		{"line\nnext\r", 100, `"line\nnext\r"`},
		{"abc\u202edef", 100, `"abc\u202edef"`},
		{"\x7f\u0085", 100, `"\x7f\u0085"`},
		{"abcdef", 3, "abc..."},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := Printable(tt.in, tt.max); got != tt.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
