package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindProxy(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	if _, err := findProxy(); err == nil || !strings.Contains(err.Error(), "gatehouse-proxy is not installed beside gatehouse or on PATH") {
		t.Errorf("without the binary: %v", err)
	}
	bin := filepath.Join(empty, proxyBinary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findProxy(); err != nil || got != bin {
		t.Errorf("on PATH: %q, %v; want %q", got, err, bin)
	}
}
