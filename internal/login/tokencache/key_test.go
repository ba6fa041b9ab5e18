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
			RedirectURL: k.RedirectURL, PKCEMethod: k.PKCEMethod, UseAccessToken: k.UseAccessToken, RequestHeaders: k.RequestHeaders,
		},
		TLSClientConfig:        Config{CACertFilename: k.CACertFilename, CACertData: k.CACertData, SkipTLSVerify: k.SkipTLSVerify, Renegotiation: k.Renegotiation},
		Username:               k.Username,
		AuthRequestExtraParams: k.AuthRequestExtraParams,
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
			PKCEMethod: 2, UseAccessToken: true, RequestHeaders: map[string]string{"X-A": "1"},
			CACertFilename: []string{"/ca.crt", "/ca2.crt"}, CACertData: []string{"Zm9v"}, SkipTLSVerify: true, Renegotiation: 1,
			Username: "alice", AuthRequestExtraParams: map[string]string{"prompt": "login"},
		}},
		{"only later fields", Key{SkipTLSVerify: true, Username: "bob"}},
		{"long strings", Key{IssuerURL: long, ClientSecret: long, ExtraScopes: []string{long}}},
		{"pkce no", Key{IssuerURL: "https://a", PKCEMethod: 1}},
		{"empty slices", Key{IssuerURL: "https://a", ExtraScopes: []string{}, CACertData: []string{}}},
		{"empty map", Key{IssuerURL: "https://a", RequestHeaders: map[string]string{}, AuthRequestExtraParams: map[string]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tt.key.Checksum(), gobChecksum(t, tt.key); got != want {
				t.Errorf("Checksum() = %s, encoding/gob gives %s", got, want)
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
