// Package pgtest gives each test its own empty PostgreSQL database, so that
// test packages running in parallel never see each other's rows.
//
// The server comes from GATEHOUSE_TEST_POSTGRES (a URL such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable); `make test`
// sets it. Without it the test is skipped, unless GATEHOUSE_REQUIRE_POSTGRES
// is set (CI sets it), in which case the test fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSN creates a fresh database for t, drops it when t ends, and returns a
// URL for it.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("GATEHOUSE_REQUIRE_POSTGRES") != "" {
			t.Fatal("GATEHOUSE_REQUIRE_POSTGRES is set but GATEHOUSE_TEST_POSTGRES is empty: set it to a PostgreSQL URL")
		}
		t.Skip("GATEHOUSE_TEST_POSTGRES not set: skipping PostgreSQL test (make test sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to GATEHOUSE_TEST_POSTGRES: %v", err)
	}
	defer admin.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gatehouse_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse GATEHOUSE_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
