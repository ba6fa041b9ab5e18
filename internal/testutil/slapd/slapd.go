// Package slapd runs a real OpenLDAP directory server (Debian's slapd)
// for tests and benchmarks: its own process on free loopback ports, with
// a throw-away config and database directory, plain LDAP, LDAPS and
// StartTLS, loaded with two fixtures (testdata/):
//
//   - dc=example,dc=org: an organisation in OpenLDAP's usual layout
//     (inetOrgPerson, groupOfNames with nested groups and a cycle, a
//     posixGroup), users with non-ASCII and filter-special names;
//   - dc=example,dc=com: a directory shaped like Active Directory
//     (testdata/ad.schema: sAMAccountName, userPrincipalName, binary
//     objectGUID, userAccountControl; memberOf from the memberof overlay).
//
// slapd and ldapadd come from the slapd and ldap-utils packages (.ci/run
// installs them). Without them StartT skips the test, unless
// GATEHOUSE_REQUIRE_SLAPD is set (CI sets it), in which case it fails.
package slapd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// Fixture names and credentials.
const (
	// OrgSuffix is the OpenLDAP-style organisation.
	OrgSuffix = "dc=example,dc=org"
	// OrgAdminDN/AdminPassword: the org database's rootdn.
	OrgAdminDN    = "cn=admin,dc=example,dc=org"
	AdminPassword = "admin"
	// ServiceDN/ServicePassword: the read-only account connectors bind as.
	ServiceDN       = "cn=gatehouse,ou=Services,dc=example,dc=org"
	ServicePassword = "service-password"
	// ADSuffix is the Active-Directory-shaped directory.
	ADSuffix = "dc=example,dc=com"
	// ADRootDN is that database's rootdn (password AdminPassword).
	ADRootDN = "cn=root,dc=example,dc=com"
	// ADBindDN/ADBindPassword are the bind account of Dex's
	// examples/config-ad-kubelogin.yaml.
	ADBindDN       = "cn=Administrator,cn=Users,dc=example,dc=com"
	ADBindPassword = "admin0!"
)

var (
	//go:embed testdata/ad.schema
	adSchema []byte
	//go:embed testdata/org.ldif
	orgLDIF []byte
	//go:embed testdata/ad.ldif
	adLDIF []byte
)

// Server is a running slapd.
type Server struct {
	// Host is host:port of plain LDAP (StartTLS is offered there too).
	Host string
	// TLSHost is host:port of LDAPS.
	TLSHost string
	// CAPEM is the CA of the server certificate (for 127.0.0.1 and
	// localhost); CAFile holds it.
	CAPEM  []byte
	CAFile string
	// ClientCertFile/ClientKeyFile: a client certificate from the same CA.
	ClientCertFile, ClientKeyFile string
	// Dir holds the config, databases and log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Available reports whether slapd and ldapadd are installed.
func Available() error {
	for _, bin := range []string{slapdPath(), "ldapadd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (apt-get install -y slapd ldap-utils): %w", bin, err)
		}
	}
	if _, err := os.Stat("/usr/lib/ldap/back_mdb.so"); err != nil {
		return fmt.Errorf("slapd's back_mdb module not found: %w", err)
	}
	return nil
}

func slapdPath() string {
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	return "/usr/sbin/slapd"
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// StartT starts a slapd for t, stopped when t ends.
func StartT(t testing.TB) *Server {
	t.Helper()
	requireAvailable(t)
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("slapd: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Shared returns one slapd for the whole test binary, for tests that only
// read the fixtures; tests that change entries should use StartT. It is
// not stopped by a test: the kernel stops it when the test process ends
// (Pdeathsig, see Start). Its directory is removed once slapd has started
// and holds its files open, except the CA file, which tests read.
func Shared(t testing.TB) *Server {
	t.Helper()
	requireAvailable(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-slapd-")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = Start(dir)
		if shared.err == nil {
			removeAllBut(dir, shared.srv.CAFile)
		}
	})
	if shared.err != nil {
		t.Fatalf("slapd: %v", shared.err)
	}
	return shared.srv
}

// removeAllBut removes what slapd no longer needs to find by name: its
// config and fixtures (read at start) and its database (held open).
func removeAllBut(dir, keep string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p != filepath.Dir(keep) {
			_ = os.RemoveAll(p)
		}
	}
}

func requireAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_SLAPD") != "" {
			t.Fatalf("GATEHOUSE_REQUIRE_SLAPD is set but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Start runs slapd in dir (which it fills) and loads both fixtures.
func Start(dir string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, done: make(chan struct{})}
	if err := s.writeFiles(); err != nil {
		return nil, err
	}
	var err error
	if s.Host, err = freeAddr(); err != nil {
		return nil, err
	}
	if s.TLSHost, err = freeAddr(); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "slapd.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// -d 0: stay in the foreground (no daemon), log nothing extra.
	s.cmd = exec.Command(slapdPath(), "-d", "0", "-f", filepath.Join(dir, "slapd.conf"),
		"-h", "ldap://"+s.Host+"/ ldaps://"+s.TLSHost+"/")
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// slapd ends with the process that started it, even one killed by
	// go test's timeout.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start slapd: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(15 * time.Second); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w; log:\n%s", err, s.Log())
	}
	for _, f := range []string{"org.ldif", "ad.ldif"} {
		bindDN := OrgAdminDN
		if f == "ad.ldif" {
			bindDN = ADRootDN
		}
		if err := s.LDAPAdd(bindDN, filepath.Join(dir, f)); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// LDAPAdd loads an LDIF file with ldapadd, bound as bindDN (a rootdn,
// password AdminPassword).
func (s *Server) LDAPAdd(bindDN, file string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ldapadd", "-x", "-H", "ldap://"+s.Host, "-D", bindDN, "-w", AdminPassword, "-f", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ldapadd %s: %w\n%s", filepath.Base(file), err, out)
	}
	return nil
}

// Log returns slapd's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
	return string(b)
}

// Close stops slapd.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Admin returns a connection bound as the rootdn of the database that
// holds suffix (OrgSuffix or ADSuffix), for tests that change entries.
func (s *Server) Admin(suffix string) (*ldap.Conn, error) {
	c, err := ldap.DialURL("ldap://"+s.Host, ldap.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(30 * time.Second)
	dn := OrgAdminDN
	if suffix == ADSuffix {
		dn = ADRootDN
	}
	if err := c.Bind(dn, AdminPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TLSConfig trusts the server's CA.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-s.done:
			return errors.New("slapd exited during start-up")
		default:
		}
		c, err := net.DialTimeout("tcp", s.Host, time.Second)
		if err == nil {
			c.Close()
			c, err = net.DialTimeout("tcp", s.TLSHost, time.Second)
			if err == nil {
				c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd did not listen within %s: %w", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) writeFiles() error {
	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return err
	}
	paths, err := bundle.WriteDir(filepath.Join(s.Dir, "tls"))
	if err != nil {
		return err
	}
	s.CAPEM, s.CAFile = bundle.CACert, paths.CACert
	// The serving certificate is also valid for client authentication:
	// it serves as the clientCert/clientKey of tests.
	s.ClientCertFile, s.ClientKeyFile = paths.ServerCert, paths.ServerKey
	for _, db := range []string{"org", "ad"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, "db-"+db), 0o700); err != nil {
			return err
		}
	}
	files := map[string][]byte{"ad.schema": adSchema, "org.ldif": orgLDIF, "ad.ldif": adLDIF}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o600); err != nil {
			return err
		}
	}
	conf := strings.NewReplacer(
		"@DIR@", s.Dir, "@CERT@", paths.ServerCert, "@KEY@", paths.ServerKey, "@CA@", paths.CACert,
		"@ORGROOT@", OrgAdminDN, "@ADROOT@", ADRootDN, "@ROOTPW@", AdminPassword,
		"@SERVICE@", ServiceDN,
	).Replace(slapdConf)
	return os.WriteFile(filepath.Join(s.Dir, "slapd.conf"), []byte(conf), 0o600)
}

// slapdConf: two mdb databases, each with the memberof overlay. Only
// bound users may read anything (anonymous can only bind), as in a
// directory where a service account is needed to search.
const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include @DIR@/ad.schema

modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof

pidfile @DIR@/slapd.pid
TLSCertificateFile @CERT@
TLSCertificateKeyFile @KEY@
TLSCACertificateFile @CA@
TLSVerifyClient allow

database mdb
suffix "dc=example,dc=org"
rootdn "@ORGROOT@"
rootpw @ROOTPW@
directory @DIR@/db-org
maxsize 33554432
index objectClass eq
index uid,mail,cn,member,memberUid eq
overlay memberof
memberof-group-oc groupOfNames
memberof-refint TRUE
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by users read
	by * none

database mdb
suffix "dc=example,dc=com"
rootdn "@ADROOT@"
rootpw @ROOTPW@
directory @DIR@/db-ad
maxsize 33554432
index objectClass eq
index sAMAccountName,userPrincipalName,cn,member eq
overlay memberof
memberof-group-oc group
memberof-refint TRUE
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by users read
	by * none
`
