package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDevSetupIsStable checks that --dev keeps its certificates, client
// secret and password across restarts (a kubeconfig made once keeps
// working) and that the generated config is valid.
func TestDevSetupIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := prepareDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := prepareDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.secret != second.secret || first.password != second.password {
		t.Fatal("dev credentials changed across restarts")
	}
	a, _ := os.ReadFile(first.caFile)
	b, _ := os.ReadFile(second.caFile)
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("dev CA changed across restarts")
	}
	for _, f := range []string{"client-secret", "admin-password", "tls/tls.key", "tls/ca.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", f, st.Mode())
		}
	}
	c := first.config
	if c.Issuer != "https://127.0.0.1:5556/dex" || c.StaticClients[0].ID != "kubernetes" || c.Storage.Type != "sqlite3" {
		t.Fatalf("dev config: %+v", c)
	}
}
