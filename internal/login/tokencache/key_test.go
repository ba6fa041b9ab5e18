package tokencache

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"testing"
)

// Mirrors of kubelogin's types: gob writes the type names and field names,
// so these must be spelled as kubelogin spells them.
type Provider struct {
	IssuerURL      string
	ClientID       string
	ClientSecret   string
	ExtraScopes    []string
	RedirectURL    string
	PKCEMethod     int
	UseAccessToken bool
	RequestHeaders map[string]string
}

type Config struct {
	CACertFilename []string
	CACertData     []string
	SkipTLSVerify  bool
	Renegotiation  int
}

func gobChecksum(t *testing.T, k Key) string {
	t.Helper()
	// gob names the top-level type after the Go type; it must be "Key".
	type Key struct {
		Provider               Provider
		TLSClientConfig        Config
		Username               string
		AuthRequestExtraParams map[string]string
	}
	v := Key{
		Provider: Provider{
			IssuerURL: k.IssuerURL, ClientID: k.ClientID, ClientSecret: k.ClientSecret, ExtraScopes: k.ExtraScopes,
			RedirectURL: k.RedirectURL, PKCEMethod: k.PKCEMethod, UseAccessToken: k.UseAccessToken, RequestHeaders: k.RequestHeaders.Map(), // built as pflag builds it: one insertion per entry, in order
		},
		TLSClientConfig:        Config{CACertFilename: k.CACertFilename, CACertData: k.CACertData, SkipTLSVerify: k.SkipTLSVerify, Renegotiation: k.Renegotiation},
		Username:               k.Username,
		AuthRequestExtraParams: k.AuthRequestExtraParams.Map(),
	}
	h := sha256.New()
	if err := gob.NewEncoder(h).Encode(&v); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestChecksumMatchesGob(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 300))
	tests := []struct {
		name string
		key  Key
	}{
		{"zero", Key{}},
		{"seed article", Key{IssuerURL: "https://dex.example.com", ClientID: "kubernetes", ClientSecret: "s3cret", ExtraScopes: []string{"groups", "profile"}}},
		{"all fields", Key{
			IssuerURL: "https://a", ClientID: "c", ClientSecret: "s", ExtraScopes: []string{"email"}, RedirectURL: "urn:ietf:wg:oauth:2.0:oob",
			PKCEMethod: 2, UseAccessToken: true, RequestHeaders: Pairs{{"X-A", "1"}},
			CACertFilename: []string{"/ca.crt", "/ca2.crt"}, CACertData: []string{"Zm9v"}, SkipTLSVerify: true, Renegotiation: 1,
			Username: "alice", AuthRequestExtraParams: Pairs{{"prompt", "login"}},
		}},
		{"only later fields", Key{SkipTLSVerify: true, Username: "bob"}},
		{"long strings", Key{IssuerURL: long, ClientSecret: long, ExtraScopes: []string{long}}},
		{"pkce no", Key{IssuerURL: "https://a", PKCEMethod: 1}},
		{"empty slices", Key{IssuerURL: "https://a", ExtraScopes: []string{}, CACertData: []string{}}},
		{"empty map", Key{IssuerURL: "https://a", RequestHeaders: Pairs{}, AuthRequestExtraParams: Pairs{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tt.key.Checksum(), gobChecksum(t, tt.key); got != want {
				t.Errorf("Checksum() = %s, encoding/gob gives %s", got, want)
			}
		})
	}
}

// TestChecksumManyEntries: with two or more entries in a map, gob (and so
// kubelogin) writes them in Go's random map order: one of the rotations of
// the insertion order, the insertion order itself most often. Checksum is
// always that most frequent name, and never a name gob does not give.
func TestChecksumManyEntries(t *testing.T) {
	three := Pairs{{"X-Tenant", "a"}, {"Authorization-Extra", "b"}, {"x-b", "c"}}
	tests := []struct {
		name string
		key  Key
		// names is how many names gob gives at most (the rotations).
		names int
	}{
		{"two headers", Key{IssuerURL: "https://a", ClientID: "c", RequestHeaders: Pairs{{"X-B", "2"}, {"X-A", "1"}}}, 2},
		{"three extra params", Key{IssuerURL: "https://a", ClientID: "c", AuthRequestExtraParams: three}, 3},
		{"both", Key{IssuerURL: "https://a", ClientID: "c", RequestHeaders: Pairs{{"b", "1"}, {"a", "2"}}, AuthRequestExtraParams: Pairs{{"prompt", "login"}, {"audience", "x"}}}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := map[string]int{}
			for range 400 {
				counts[gobChecksum(t, tt.key)]++
			}
			got := tt.key.Checksum()
			if len(counts) > tt.names {
				t.Errorf("gob gave %d names, want at most %d", len(counts), tt.names)
			}
			for name, n := range counts {
				if n > counts[got] {
					t.Errorf("Checksum() = %s (gob's name %d times in 400), but gob gave %s %d times", got, counts[got], name, n)
				}
			}
		})
	}
}

// TestChecksumKubelogin pins the name kubelogin v1.36.3 itself computed
// for the seed article's arguments (built from its source outside this
// repository, with the flags of the seed's kubeconfig).
func TestChecksumKubelogin(t *testing.T) {
	k := Key{IssuerURL: "https://dex.example.com", ClientID: "kubernetes", ClientSecret: "s3cret", ExtraScopes: []string{"groups", "profile"}}
	if got, want := k.Checksum(), kubeloginSeedChecksum; got != want {
		t.Errorf("Checksum() = %s, kubelogin computed %s", got, want)
	}
}

// kubeloginSeedChecksum is the lock file name kubelogin v1.36.3 created for
// `get-token --oidc-issuer-url=https://dex.example.com
// --oidc-client-id=kubernetes --oidc-client-secret=s3cret
// --oidc-extra-scope=groups,profile`.
const kubeloginSeedChecksum = "2d6fe9601255cda839ec4e640ae843a0c96e74ae5c27e93893dbb70a74ada8d9"

// TestChecksumExchange: an exchanged token gets its own entry per
// audience, connector and subject, and the login's entry (the zero
// Exchange) keeps kubelogin's name.
func TestChecksumExchange(t *testing.T) {
	base := Key{IssuerURL: "https://issuer.example.com", ClientID: "kubernetes", ExtraScopes: []string{"groups"}}
	if got, want := base.Checksum(), gobChecksum(t, base); got != want {
		t.Fatalf("the login's key is not kubelogin's: %s, gob %s", got, want)
	}
	keys := []Exchange{
		{Audience: "prod"},
		{Audience: "staging"},
		{Audience: "prod", ConnectorID: "github-actions"},
		{ConnectorID: "github-actions", Subject: "a"},
		{ConnectorID: "github-actions", Subject: "b"},
		// Length prefixes: moving a byte from one field to the next
		// changes the name.
		{Audience: "ab", ConnectorID: "c"},
		{Audience: "a", ConnectorID: "bc"},
	}
	seen := map[string]Exchange{base.Checksum(): {}}
	for _, x := range keys {
		k := base
		k.Exchange = x
		sum := k.Checksum()
		if prev, ok := seen[sum]; ok {
			t.Errorf("%+v and %+v share the entry %s", x, prev, sum)
		}
		seen[sum] = x
		if k.Checksum() != sum {
			t.Errorf("%+v: checksum is not stable", x)
		}
	}
}
