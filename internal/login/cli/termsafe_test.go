package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// TestErrorEscapesForeignText: an error carries other programs' words
// (here kubectl's, which repeat the API server's); printed, they must not
// act on the terminal.
func TestErrorEscapesForeignText(t *testing.T) {
	dir := t.TempDir()
	kubectl := filepath.Join(dir, "kubectl")
	script := "#!/bin/sh\nprintf 'Error from server: pods \"x\\033]0;pwned\\007\" is forbidden\\n\\302\\233\\062J second line\\n' >&2\nexit 1\n"
	if err := os.WriteFile(kubectl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, clock: newClock(), br: &httpBrowser{t: t}}
	res := r.run(context.Background(), "", []string{"kubectl-gatehouse", "whoami", "--kubectl=" + kubectl})
	if res.code == 0 {
		t.Fatal("a failing kubectl did not fail whoami")
	}
	termsafetest.CheckOutput(t, res.stderr)
	for _, want := range []string{`\x1b]0;pwned\a`, `"\u009b2J second line"`} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr does not show %s: %q", want, res.stderr)
		}
	}
}
