package options

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

func parse(t *testing.T, args ...string) *Flags {
	t.Helper()
	o, _ := parseFlags(t, args)
	return o
}

func parseFlags(t *testing.T, args []string) (*Flags, *pflag.FlagSet) {
	t.Helper()
	var o Flags
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.Add(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o, f
}

// The flags are kubelogin's, so the seed article's arguments give the
// cache file name kubelogin gives them.
func TestSeedArgumentsKey(t *testing.T) {
	o := parse(t, "--oidc-issuer-url=https://dex.example.com", "--oidc-client-id=kubernetes", "--oidc-client-secret=s3cret", "--oidc-extra-scope=groups,profile")
	if got := o.Key().Checksum(); got != "2d6fe9601255cda839ec4e640ae843a0c96e74ae5c27e93893dbb70a74ada8d9" {
		t.Fatalf("checksum %s", got)
	}
	if o.TimeoutSec != 180 || o.GrantType != "auto" || o.PKCEMethod != "auto" || o.CacheStorage != "disk" ||
		len(o.ListenAddress) != 2 || o.ListenAddress[0] != "127.0.0.1:8000" || o.ListenAddress[1] != "127.0.0.1:18000" {
		t.Fatalf("kubelogin's defaults changed: %+v", o)
	}
}

func TestKeyByGrant(t *testing.T) {
	base := []string{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--oidc-auth-request-extra-params=prompt=login"}
	tests := []struct {
		args         []string
		wantUsername string
		wantExtra    bool
	}{
		{nil, "", true},
		{[]string{"--username=alice"}, "alice", false},
		{[]string{"--grant-type=password", "--username=alice"}, "alice", false},
		{[]string{"--grant-type=authcode-keyboard"}, "", true},
		{[]string{"--grant-type=device-code"}, "", false},
		{[]string{"--grant-type=client-credentials"}, "", true},
	}
	for _, tt := range tests {
		k := parse(t, append(append([]string{}, base...), tt.args...)...).Key()
		if k.Username != tt.wantUsername || (k.AuthRequestExtraParams != nil) != tt.wantExtra {
			t.Errorf("%v: key %+v", tt.args, k)
		}
	}
	// client-credentials without parameters: kubelogin's empty, non-nil map.
	k := parse(t, "--oidc-issuer-url=https://i", "--oidc-client-id=c", "--grant-type=client-credentials").Key()
	if k.AuthRequestExtraParams == nil || len(k.AuthRequestExtraParams) != 0 {
		t.Errorf("client-credentials key %+v", k)
	}
}

// The map flags parse as pflag's stringToString does (same entries, same
// errors) and keep the command line's order: first appearance of a key,
// its last value.
func TestPairsFlag(t *testing.T) {
	tests := []struct {
		args []string
		want tokencache.Pairs
	}{
		{nil, nil},
		{[]string{"--oidc-request-header=b=2"}, pairs("b", "2")},
		{[]string{"--oidc-request-header=b=2,a=1"}, pairs("b", "2", "a", "1")},
		{[]string{"--oidc-request-header=b=2", "--oidc-request-header=a=1"}, pairs("b", "2", "a", "1")},
		{[]string{"--oidc-request-header=b=2,a=1", "--oidc-request-header=b=3,c=4"}, pairs("b", "3", "a", "1", "c", "4")},
		{[]string{"--oidc-request-header=b=2,b=5"}, pairs("b", "5")},
		{[]string{`--oidc-request-header="X-A=x=y"`}, pairs("X-A", "x=y")},
		{[]string{`--oidc-request-header="a=1,2",b=3`}, pairs("a", "1,2", "b", "3")},
		{[]string{"--oidc-request-header", "k="}, pairs("k", "")},
	}
	for _, tt := range tests {
		o := parse(t, tt.args...)
		if !slices.Equal(o.RequestHeaders, tt.want) || (o.RequestHeaders == nil) != (tt.want == nil) {
			t.Errorf("%q: %#v, want %#v", tt.args, o.RequestHeaders, tt.want)
		}
		// pflag's own flag gives the same map.
		var m map[string]string
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.StringToStringVar(&m, "oidc-request-header", nil, "")
		if err := f.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(m, o.RequestHeaders.Map()) {
			t.Errorf("%q: %v, pflag gives %v", tt.args, o.RequestHeaders.Map(), m)
		}
		if got, want := f.Lookup("oidc-request-header").Value.String(), mustFlag(t, tt.args).Lookup("oidc-request-header").Value.String(); got != want {
			t.Errorf("%q: String() %q, pflag's %q", tt.args, want, got)
		}
	}
	after := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		_, msg, _ := strings.Cut(err.Error(), " flag: ")
		return msg
	}
	for _, bad := range []string{"novalue", "a=1,b", "a=1,b=2,c", `a=1,"b=2`} {
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var m map[string]string
		f.StringToStringVar(&m, "h", nil, "")
		pflagErr := f.Parse([]string{"--h=" + bad})
		var o Flags
		g := pflag.NewFlagSet("t", pflag.ContinueOnError)
		o.Add(g, true)
		ourErr := g.Parse([]string{"--oidc-request-header=" + bad})
		if after(ourErr) != after(pflagErr) {
			t.Errorf("%q: error %v, pflag's %v", bad, ourErr, pflagErr)
		}
	}
}

// pairs makes Pairs from keys and values.
func pairs(kv ...string) tokencache.Pairs {
	p := tokencache.Pairs{}
	for i := 0; i < len(kv); i += 2 {
		p = append(p, tokencache.Pair{Key: kv[i], Value: kv[i+1]})
	}
	return p
}

func mustFlag(t *testing.T, args []string) *pflag.FlagSet {
	t.Helper()
	_, f := parseFlags(t, args)
	return f
}

func TestValidate(t *testing.T) {
	for _, args := range [][]string{
		{"--oidc-client-id=c"},
		{"--oidc-issuer-url=https://i"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--oidc-pkce-method=plain"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--grant-type=magic"},
	} {
		if err := parse(t, args...).Validate(); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	for _, args := range [][]string{
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--local-server-cert=x", "--local-server-key=y", "--open-url-after-authentication=https://x"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--grant-type=client-credentials"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--oidc-use-pkce", "--oidc-pkce-method=plain"}, // kubelogin reads no method then
	} {
		if err := parse(t, args...).Validate(); err != nil {
			t.Errorf("%v refused: %v", args, err)
		}
	}
}
