package main

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// TestPostgresConnString checks that Dex's postgres keys reach the
// storage package intact: the connection string is built there, once,
// for the main storage and the audit store alike.
func TestPostgresConnString(t *testing.T) {
	for _, tc := range []struct {
		p    config.Postgres
		want string
	}{
		{config.Postgres{DSN: "postgres://u@h/db?sslmode=disable", Host: "ignored"}, "postgres://u@h/db?sslmode=disable"},
		{config.Postgres{Host: "h", Port: 5432, Database: "d", SSL: config.SSL{Mode: "disable"}}, "host=h port=5432 dbname=d sslmode=disable"},
		{config.Postgres{Host: "h", SSL: config.SSL{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"}, ConnectionTimeout: 5},
			"host=h sslmode=verify-full sslrootcert=/ca.pem sslcert=/c.pem sslkey=/k.pem connect_timeout=5"},
		{config.Postgres{Host: "[::1]:5433", Password: `a\b`}, `host=::1 port=5433 password='a\\b' sslmode=verify-full`},
		{config.Postgres{Host: "db:5433", User: "gh", Password: "p w'd", Database: "gatehouse", SSL: config.SSL{Mode: "verify-full"}},
			`host=db port=5433 user=gh password='p w\'d' dbname=gatehouse sslmode=verify-full`},
	} {
		if got := postgresConfig(tc.p).ConnString(); got != tc.want {
			t.Errorf("ConnString(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
