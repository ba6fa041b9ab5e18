package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReloadKeepsMinVersion replaces the certificate files under a running
// server and checks that the new certificate is served and that a TLS 1.2
// client is still refused when tlsMinVersion is 1.3 (dexidp/dex
// CVE-2024-23656: Dex's reload dropped the minimum version).
func TestReloadKeepsMinVersion(t *testing.T) {
	dir := t.TempDir()
	first, err := NewBundle([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := first.WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := NewReloader(paths.ServerCert, paths.ServerKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	if err := rl.Watch(stop); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(rl, tls.VersionTLS13, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	addr := ln.Addr().String()

	served := func(pool *x509.CertPool, maxVersion uint16) ([]byte, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: maxVersion})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	if _, err := served(first.CertPool(), tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 client refused before reload: %v", err)
	}
	if _, err := served(first.CertPool(), tls.VersionTLS12); err == nil {
		t.Fatal("TLS 1.2 client accepted with tlsMinVersion 1.3")
	}

	second, err := NewBundle([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the files the way tools do: write aside, rename over.
	for _, f := range []struct {
		path string
		data []byte
	}{{paths.ServerKey, second.ServerKey}, {paths.ServerCert, second.ServerCert}} {
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := served(second.CertPool(), tls.VersionTLS13)
		if err == nil && len(raw) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served after reload: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := served(second.CertPool(), tls.VersionTLS12); err == nil {
		t.Fatal("TLS 1.2 client accepted after reload: minimum version lost")
	}
	if bytes.Equal(first.ServerCert, second.ServerCert) {
		t.Fatal("bundles should differ")
	}
}

func TestTLSVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{{"", tls.VersionTLS12, true}, {"1.2", tls.VersionTLS12, true}, {"1.3", tls.VersionTLS13, true}, {"1.1", 0, false}, {"tls13", 0, false}} {
		got, err := TLSVersion(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("TLSVersion(%q) = %v, %v", tc.in, got, err)
		}
	}
}
