package postgres

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is the config of storage type postgres: Dex's keys, plus DSN.
type Config struct {
	// DSN is a gatehouse extension: a libpq connection string or URL
	// (postgres://user@host/db?sslmode=...). When set it is used as is and
	// the connection keys below (Host to ConnectionTimeout) are ignored;
	// the pool sizes still apply when set.
	DSN string

	// Host is a host name, an IP address or a Unix socket directory; it
	// may carry the port ("db:5432"), as Dex allows.
	Host     string
	Port     uint16
	Database string
	User     string
	Password string
	SSL      SSL
	// ConnectionTimeout is in seconds (0: wait indefinitely), as in Dex.
	ConnectionTimeout int

	// MaxOpenConns caps the pool (Dex's default, set by the config
	// package, is 5; 0 here keeps pgxpool's default of max(4, CPUs)).
	MaxOpenConns int
	// MaxIdleConns is how many connections are kept open while idle:
	// pgxpool has no cap on idle connections, so the pool keeps this many
	// (MinConns) and closes the others after a minute idle.
	MaxIdleConns int
	// ConnMaxLifetime in seconds (0: unlimited), as in Dex.
	ConnMaxLifetime int
}

// SSL is the TLS setting of the connection.
type SSL struct {
	// Mode is a libpq sslmode; the default, as in Dex, is verify-full.
	Mode     string
	CAFile   string
	KeyFile  string
	CertFile string
}

// ConnString returns the DSN when set, otherwise a keyword=value
// connection string built from the connection keys.
func (c Config) ConnString() string {
	if c.DSN != "" {
		return c.DSN
	}
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+quote(v)) }
	host, port := c.Host, ""
	if h, p, err := net.SplitHostPort(c.Host); err == nil && p != "" {
		host, port = h, p
	} else if c.Port != 0 {
		port = strconv.Itoa(int(c.Port))
	}
	if host != "" {
		add("host", host)
	}
	if port != "" {
		add("port", port)
	}
	if c.User != "" {
		add("user", c.User)
	}
	if c.Password != "" {
		add("password", c.Password)
	}
	if c.Database != "" {
		add("dbname", c.Database)
	}
	mode := c.SSL.Mode
	if mode == "" {
		mode = "verify-full"
	}
	add("sslmode", mode)
	if c.SSL.CAFile != "" {
		add("sslrootcert", c.SSL.CAFile)
	}
	if c.SSL.CertFile != "" {
		add("sslcert", c.SSL.CertFile)
	}
	if c.SSL.KeyFile != "" {
		add("sslkey", c.SSL.KeyFile)
	}
	if c.ConnectionTimeout > 0 {
		add("connect_timeout", strconv.Itoa(c.ConnectionTimeout))
	}
	return strings.Join(parts, " ")
}

// quote quotes a libpq keyword value when it needs it: single quotes,
// with \ before ' and \.
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n\r") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// poolConfig parses the connection string and applies the pool sizes.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(c.ConnString())
	if err != nil {
		return nil, err
	}
	if c.MaxOpenConns > 0 {
		pc.MaxConns = int32(min(c.MaxOpenConns, 1<<30))
	}
	if c.MaxIdleConns > 0 {
		pc.MinConns = int32(min(c.MaxIdleConns, int(pc.MaxConns)))
		if pc.MinConns < pc.MaxConns {
			pc.MaxConnIdleTime = time.Minute
		}
	}
	if c.ConnMaxLifetime > 0 {
		pc.MaxConnLifetime = time.Duration(c.ConnMaxLifetime) * time.Second
	}
	return pc, nil
}
