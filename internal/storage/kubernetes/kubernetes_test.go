package kubernetes

// The conformance suite runs against a real kube-apiserver in test/e2e
// (TestKubernetesStorageConformance); these tests cover what needs none.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/dexcompat"
)

func TestObjectName(t *testing.T) {
	keys := []string{"a", "A", "fam.1", "Fam_1-x", "dexrefreshid", strings.Repeat("x", 150), "émoji 🔑"}
	seen := map[string]string{}
	for _, k := range keys {
		name, err := objectName(k)
		if err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		if !validName(name) {
			t.Errorf("%q: name %q is not a valid object name", k, name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%q and %q share the name %q", k, other, name)
		}
		seen[name] = k
		back, err := lowerBase32.DecodeString(name)
		if err != nil || string(back) != k {
			t.Errorf("%q: name %q decodes to %q, %v", k, name, back, err)
		}
	}
	for _, k := range []string{"", strings.Repeat("x", 159)} {
		if _, err := objectName(k); err == nil {
			t.Errorf("%d-byte key: no error", len(k))
		}
	}
}

// TestDexNames checks the names Dex gives passwords, clients and offline
// sessions against values computed independently (FNV-1, 64 bits; Dex's
// idToName appends the sum of nothing to the id).
func TestDexNames(t *testing.T) {
	if got, want := dexIDToName("alice@example.com"), "mfwgsy3fibsxqylnobwgkltdn5w4x4u44scceizf"; got != want {
		t.Errorf("idToName: %s, want %s", got, want)
	}
	if got, want := dexOfflineSessionName("user-1", "local"), "a2ts6sejyurx6"; got != want {
		t.Errorf("offlineTokenName: %s, want %s", got, want)
	}
}

func TestNamespaceFromToken(t *testing.T) {
	jwt := func(claims string) string {
		return "e30." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".sig"
	}
	for _, tc := range []struct {
		token, want string
		ok          bool
	}{
		{jwt(`{"kubernetes.io":{"namespace":"dex","serviceaccount":{"name":"dex"}}}`), "dex", true},
		{jwt(`{"kubernetes.io/serviceaccount/namespace":"legacy"}`), "legacy", true},
		{jwt(`{"sub":"x"}`), "", false},
		{"not-a-jwt", "", false},
	} {
		ns, err := namespaceFromToken(tc.token)
		if (err == nil) != tc.ok || ns != tc.want {
			t.Errorf("%s: %q, %v", tc.token, ns, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	dir := t.TempDir()
	noContext := filepath.Join(dir, "two-contexts")
	if err := os.WriteFile(noContext, []byte(`apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://a:6443"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: a, context: {cluster: a, user: u}}, {name: b, context: {cluster: a, user: u}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	oneContext := filepath.Join(dir, "one-context")
	if err := os.WriteFile(oneContext, []byte(`apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://a:6443"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: a, context: {cluster: a, user: u, namespace: dex}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{InCluster: true, KubeConfigFile: "x"}, "exclude each other"},
		{Config{}, "set inCluster: true"},
		{Config{InCluster: true}, "outside a pod, use kubeConfigFile"},
		{Config{KubeConfigFile: filepath.Join(dir, "missing")}, "no such file"},
		{Config{KubeConfigFile: noContext}, "no current-context (and 2 contexts)"},
	} {
		_, _, err := tc.cfg.restConfig()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// Dex's rule: one context and no current-context uses that context,
	// with its namespace.
	rc, ns, err := Config{KubeConfigFile: oneContext}.restConfig()
	if err != nil || rc.Host != "https://a:6443" || ns != "dex" {
		t.Fatalf("%v %q %v", rc, ns, err)
	}
	if _, ns, _ := (Config{KubeConfigFile: oneContext, Namespace: "other"}).restConfig(); ns != "other" {
		t.Errorf("namespace override: %q", ns)
	}
}

// TestCRDsCoverResources: every resource the storage uses has a
// definition, Dex's kinds keep Dex's plurals, and nothing else is there.
func TestCRDsCoverResources(t *testing.T) {
	defs, err := parseCRDs()
	if err != nil {
		t.Fatal(err)
	}
	var plurals []string
	for _, d := range defs {
		plurals = append(plurals, d.resource)
		var m struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Scope string `json:"scope"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(d.json, &m); err != nil {
			t.Fatal(err)
		}
		if d.name != d.resource+"."+Group || m.Spec.Group != Group || m.Spec.Scope != "Namespaced" || m.Spec.Names.Kind != kinds[d.resource] {
			t.Errorf("%s: %+v", d.name, m.Spec)
		}
	}
	var want []string
	for res := range kinds {
		want = append(want, res)
	}
	slices.Sort(plurals)
	slices.Sort(want)
	if !slices.Equal(plurals, want) {
		t.Errorf("definitions for %v, resources used %v", plurals, want)
	}
}

func jwk(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// TestKeysLayout: what gatehouse writes, Dex reads (signingKey is the ID
// token key, verification keys are JWKs), and a set Dex wrote reads as
// version 1 with Dex's key.
func TestKeysLayout(t *testing.T) {
	idKey, atKey, old := jwk(t, "id"), jwk(t, "at"), jwk(t, "old")
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{idKey, atKey}})
	oldPub, _ := old.Public().MarshalJSON()
	exp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	k := storage.Keys{SigningKey: set, VerificationKeys: []storage.VerificationKey{{PublicKey: oldPub, Expiry: exp}}, NextRotation: exp}
	signing, pub, vks := dexKeyFields(k)
	if dexcompat.KeyID(signing) != "id" || dexcompat.KeyID(pub) != "id" || len(vks) != 1 || dexcompat.KeyID(vks[0].PublicKey) != "old" {
		t.Fatalf("Dex fields: %s %s %v", signing, pub, vks)
	}
	var dexSide struct {
		SigningKey    *jose.JSONWebKey `json:"signingKey"`
		SigningKeyPub *jose.JSONWebKey `json:"signingKeyPub"`
	}
	o := keysObject{SigningKey: signing, SigningKeyPub: pub, VerificationKeys: vks, NextRotation: exp}
	data, _ := json.Marshal(o)
	if err := json.Unmarshal(data, &dexSide); err != nil || dexSide.SigningKey.IsPublic() || !dexSide.SigningKeyPub.IsPublic() {
		t.Fatalf("Dex cannot read what gatehouse writes: %v", err)
	}

	// Written by Dex (no gatehouse part).
	got, err := o.keys()
	if err != nil || got.Version != 1 || dexcompat.KeyID(got.SigningKey) != "id" || len(got.VerificationKeys) != 1 || !got.NextRotation.Equal(exp) {
		t.Fatalf("Dex's set: %+v, %v", got, err)
	}
	// Written by gatehouse.
	o.Gatehouse = &gatehouseKeys{Version: 7, SigningKey: set, VerificationKeys: k.VerificationKeys}
	if got, err := o.keys(); err != nil || got.Version != 7 || string(got.SigningKey) != string(set) {
		t.Fatalf("gatehouse's set: %+v, %v", got, err)
	}
	// Not JWKs (the conformance suite stores arbitrary bytes): no Dex
	// fields rather than wrong ones.
	if s, p, v := dexKeyFields(storage.Keys{SigningKey: []byte("k")}); s != nil || p != nil || v != nil {
		t.Errorf("arbitrary bytes gave Dex fields %s %s %v", s, p, v)
	}
	pubOnly, _ := idKey.Public().MarshalJSON()
	if s, _, _ := dexKeyFields(storage.Keys{SigningKey: pubOnly}); s != nil {
		t.Error("a public key written as Dex's signing key")
	}
	// A Dex set whose signing key is public only is refused.
	if _, err := (&keysObject{SigningKey: pubOnly}).keys(); err == nil {
		t.Error("no error for a public signing key")
	}
}
