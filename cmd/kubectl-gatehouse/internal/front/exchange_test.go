package front

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/options"
	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// fakeJWT is a token that expires in 2100, marked so the test sees which
// entry was served.
func fakeJWT(mark string) string {
	p := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"iss":"https://login.example.com","sub":%q,"exp":4102444800}`, mark)))
	return "eyJhbGciOiJSUzI1NiJ9." + p + ".c2ln"
}

// seed caches token under the key get-token computes for args.
func seed(t testing.TB, dir string, args []string, token string) {
	t.Helper()
	var o options.Flags
	f := pflag.NewFlagSet("get-token", pflag.ContinueOnError)
	o.Add(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	key, err := o.TokenKey(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := (tokencache.Store{Dir: dir}).Save(key, tokencache.Entry{IDToken: token}); err != nil {
		t.Fatal(err)
	}
}

// serve runs the front's warm path for args and returns what it printed.
func serve(t testing.TB, args []string) (bool, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done, err := warmGetToken(args)
	os.Stdout = stdout
	w.Close()
	b := make([]byte, 64<<10)
	n, _ := r.Read(b)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return done, string(b[:n])
}

// The front serves an exchanged token from its own entry: the cluster's
// for --exchange-audience, the job's for --subject-token-source; never the
// login's entry for them, and never another job's.
func TestWarmExchange(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBERNETES_EXEC_INFO", "")
	base := []string{"--oidc-issuer-url=https://login.example.com", "--oidc-client-id=kubernetes", "--token-cache-dir=" + dir}
	ci := append(append([]string{}, base...), "--subject-token-source=github-actions", "--connector-id=github-actions")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://actions.example/token?api-version=2.0")

	seed(t, dir, base, fakeJWT("login"))
	seed(t, dir, append(base, "--exchange-audience=prod"), fakeJWT("prod"))
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-1")
	seed(t, dir, ci, fakeJWT("job-1"))

	for _, tt := range []struct {
		name     string
		args     []string
		reqToken string
		want     string // "" : handed to the engine
	}{
		{"login", base, "job-1", "login"},
		{"cluster prod", append(base, "--exchange-audience=prod"), "job-1", "prod"},
		{"cluster staging: not cached", append(base, "--exchange-audience=staging"), "job-1", ""},
		{"the job", ci, "job-1", "job-1"},
		{"another job", ci, "job-2", ""},
		{"no request variables", ci, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", tt.reqToken)
			done, out := serve(t, tt.args)
			if done != (tt.want != "") {
				t.Fatalf("served = %v, want %v (%s)", done, tt.want != "", out)
			}
			if tt.want != "" && !strings.Contains(out, fakeJWT(tt.want)) {
				t.Errorf("served %s, want the %s entry", out, tt.want)
			}
		})
	}
}

// BenchmarkWarm: the front's warm path (parse, key, read, print) for the
// login's token, a cluster's exchanged token, and a CI job's (which also
// reads the environment and digests GitHub's request token).
func BenchmarkWarm(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("KUBERNETES_EXEC_INFO", "")
	b.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://actions.example/token?api-version=2.0")
	b.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", strings.Repeat("r", 1200)) // GitHub's are JWTs of about this size
	base := []string{"--oidc-issuer-url=https://login.example.com", "--oidc-client-id=kubernetes", "--oidc-extra-scope=groups,profile", "--token-cache-dir=" + dir}
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"login", base},
		{"exchange-audience", append(append([]string{}, base...), "--exchange-audience=k8s-prod-eu")},
		{"github-actions", append(append([]string{}, base...), "--subject-token-source=github-actions", "--connector-id=github-actions", "--subject-token-audience=https://login.example.com")},
	} {
		seed(b, dir, bc.args, fakeJWT(bc.name))
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			stdout := os.Stdout
			os.Stdout = devnull
			defer func() { os.Stdout = stdout }()
			for b.Loop() {
				if done, err := warmGetToken(bc.args); !done || err != nil {
					b.Fatal("not served", err)
				}
			}
		})
		devnull.Close()
	}
}
