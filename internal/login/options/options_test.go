package options

import (
	"testing"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) *Flags {
	t.Helper()
	var o Flags
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.Add(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o
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
	}
	for _, tt := range tests {
		k := parse(t, append(append([]string{}, base...), tt.args...)...).Key()
		if k.Username != tt.wantUsername || (k.AuthRequestExtraParams != nil) != tt.wantExtra {
			t.Errorf("%v: key %+v", tt.args, k)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, args := range [][]string{
		{"--oidc-client-id=c"},
		{"--oidc-issuer-url=https://i"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--oidc-pkce-method=plain"},
		{"--oidc-issuer-url=https://i", "--oidc-client-id=c", "--local-server-cert=x"},
	} {
		if err := parse(t, args...).Validate(); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
