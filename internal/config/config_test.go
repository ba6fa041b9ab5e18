package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// adminHash is Dex's example bcrypt hash of "password".
const adminHash = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"

// baseYAML is a small valid config that the error cases patch.
const baseYAML = `
issuer: https://login.example.com/dex
storage:
  type: memory
web:
  http: 127.0.0.1:5556
connectors:
- type: github
  id: github
  name: GitHub
  config:
    clientID: abc
    clientSecret: def
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: s3cret
  redirectURIs: ["http://localhost:8000"]
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "` + adminHash + `"
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
`

const deleteKey = "<delete>"

// merge applies patch to base: mappings merge recursively, anything else
// (lists included) replaces, and the value "<delete>" removes the key.
func merge(base, patch map[string]any) {
	for k, pv := range patch {
		if pv == deleteKey {
			delete(base, k)
			continue
		}
		bm, ok1 := base[k].(map[string]any)
		pm, ok2 := pv.(map[string]any)
		if ok1 && ok2 {
			merge(bm, pm)
			continue
		}
		base[k] = pv
	}
}

func patched(t *testing.T, patch string) []byte {
	t.Helper()
	var base, p map[string]any
	if err := yaml.Unmarshal([]byte(baseYAML), &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(patch), &p); err != nil {
		t.Fatalf("patch: %v", err)
	}
	merge(base, p)
	out, err := yaml.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// load writes data to a file and loads it.
func load(t *testing.T, data []byte) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func TestBaseIsValid(t *testing.T) {
	if _, err := load(t, patched(t, "{}")); err != nil {
		t.Fatalf("base config: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	caFile := writeCA(t, dir)
	t.Setenv("SET_BUT_EMPTY", "")
	for _, tc := range []struct {
		name  string
		patch string
		want  []string // each must appear in the error
	}{
		{"unknown key with suggestion", `staticClients:
- {id: a, name: A, secret: x, redirectURIs: ["http://localhost:8000"]}
- {id: b, name: B, secret: y, redirectURls: ["http://localhost:8000"]}`,
			[]string{"staticClients[1].redirectURls: unknown key; did you mean redirectURIs?"}},
		{"unknown top-level key lists known keys", `colour: blue`, []string{"colour: unknown key (known keys here: audit, connectors,"}},
		{"unknown nested key", `expiry: {refreshTokens: {reuseIntervall: 3s}}`, []string{"expiry.refreshTokens.reuseIntervall: unknown key; did you mean reuseInterval?"}},
		{"bad duration", `expiry: {idTokens: "1 day"}`, []string{`expiry.idTokens: "1 day" is not a duration (use Go syntax such as 24h or 30m)`}},
		{"bad nested duration", `expiry: {refreshTokens: {validIfNotUsedFor: 90d}}`, []string{`expiry.refreshTokens.validIfNotUsedFor: "90d" is not a duration`}},
		{"duration as a number", `expiry: {authRequests: 3600}`, []string{`expiry.authRequests: 3600 is not a duration (use Go syntax in quotes such as "24h" or "30m")`}},
		{"negative duration", `expiry: {deviceRequests: -5m}`, []string{"expiry.deviceRequests: must be a positive duration"}},
		{"missing tls cert file", `web: {https: "127.0.0.1:5554", tlsCert: /nonexistent/x.pem, tlsKey: /nonexistent/x.key}`,
			[]string{"web.tlsCert: open /nonexistent/x.pem: no such file or directory", "web.tlsKey: open /nonexistent/x.key"}},
		{"cert is a device", `web: {https: "127.0.0.1:5554", tlsCert: /dev/null, tlsKey: /dev/null}`, []string{"web.tlsCert: /dev/null is not a regular file"}},
		{"https without cert", `web: {https: "127.0.0.1:5554"}`, []string{"web.tlsCert: required with web.https", "web.tlsKey: required"}},
		{"cert without https", `web: {tlsCert: /x.pem}`, []string{"web.https: is not set"}},
		{"no listen address", `web: {http: <delete>}`, []string{"web: needs an address"}},
		{"bad listen address", `web: {http: "5556"}`, []string{`web.http: "5556" is not a listen address`}},
		{"tls version", `web: {tlsMinVersion: "1.1"}`, []string{`web.tlsMinVersion: "1.1" is not a supported TLS version`}},
		{"tls min above max", `web: {tlsMinVersion: 1.3, tlsMaxVersion: 1.2}`, []string{"web.tlsMinVersion: 1.3 is above web.tlsMaxVersion 1.2"}},
		{"bad origin", `web: {allowedOrigins: ["example.com"]}`, []string{`web.allowedOrigins[0]: "example.com" is not an origin`}},
		{"bad trusted proxy", `web: {clientRemoteIP: {header: X-Forwarded-For, trustedProxies: ["10.0.0.0/33"]}}`, []string{"web.clientRemoteIP.trustedProxies[0]"}},
		{"missing issuer", `issuer: <delete>`, []string{"issuer: required"}},
		{"issuer not a URL", `issuer: "https://exa mple.com/dex"`, []string{"issuer: \"https://exa mple.com/dex\" is not a URL"}},
		{"issuer relative", `issuer: "login.example.com/dex"`, []string{"issuer:", "must be an absolute URL"}},
		{"issuer http", `issuer: "http://login.example.com/dex"`, []string{"issuer:", "must use https", "loopback"}},
		{"issuer query", `issuer: "https://login.example.com/dex?x=1"`, []string{"issuer:", "no user, query or fragment"}},
		{"number for a string, as Dex reads it", `web: {http: 5556}`, []string{`web.http: "5556" is not a listen address`}},
		{"wrong type string", `web: {http: [5556]}`, []string{"web.http: must be a string, not a list"}},
		{"wrong type list", `staticClients: {id: a}`, []string{"staticClients: must be a list, not a mapping"}},
		{"wrong type bool", `enablePasswordDB: "yes please"`, []string{"enablePasswordDB: must be true or false, not a string"}},
		{"duplicate client id", `staticClients:
- {id: k, name: A, secret: x}
- {id: k, name: B, secret: y}`, []string{`staticClients[1].id: "k" is already the id of staticClients[0]`}},
		{"client without id and name", `staticClients: [{secret: x}]`, []string{"staticClients[0].id: required", "staticClients[0].name: required"}},
		{"confidential client without secret", `staticClients: [{id: a, name: A}]`, []string{"staticClients[0].secret: required for a confidential client", "public: true"}},
		{"public client with secret", `staticClients: [{id: a, name: A, public: true, secret: x}]`, []string{"staticClients[0].secret: a public client has no secret"}},
		{"id and idEnv", `staticClients: [{id: a, idEnv: X, name: A, secret: x}]`, []string{"staticClients[0].idEnv: id and idEnv exclude each other"}},
		{"secretEnv unset", `staticClients: [{id: a, name: A, secretEnv: GATEHOUSE_TEST_SURELY_UNSET}]`, []string{"staticClients[0].secretEnv: environment variable GATEHOUSE_TEST_SURELY_UNSET is not set"}},
		{"secretEnv empty", `staticClients: [{id: a, name: A, secretEnv: SET_BUT_EMPTY}]`, []string{"staticClients[0].secretEnv: environment variable SET_BUT_EMPTY is empty"}},
		{"relative redirect", `staticClients: [{id: a, name: A, secret: x, redirectURIs: ["/callback"]}]`, []string{`staticClients[0].redirectURIs[0]: "/callback" is not absolute`}},
		{"redirect with fragment", `staticClients: [{id: a, name: A, secret: x, redirectURIs: ["https://app.example.com/cb#frag"]}]`, []string{"staticClients[0].redirectURIs[0]:", "has a fragment"}},
		{"redirect without host", `staticClients: [{id: a, name: A, secret: x, redirectURIs: ["https:///cb"]}]`, []string{"staticClients[0].redirectURIs[0]:", "has no host"}},
		{"unknown trusted peer", `staticClients: [{id: a, name: A, secret: x, trustedPeers: [b]}]`, []string{`staticClients[0].trustedPeers[0]: "b" is not the id of a static client`}},
		{"unknown allowed connector", `staticClients: [{id: a, name: A, secret: x, allowedConnectors: [gitlab]}]`, []string{`staticClients[0].allowedConnectors[0]: "gitlab" names no connector; use one of github, local`}},
		{"client grant outside server grants", `staticClients: [{id: a, name: A, secret: x, allowedGrantTypes: [password]}]`, []string{`staticClients[0].allowedGrantTypes[0]: "password" is not in oauth2.grantTypes`}},
		{"client grant unsupported", `staticClients: [{id: a, name: A, secret: x, allowedGrantTypes: [implicit]}]`, []string{`staticClients[0].allowedGrantTypes[0]: "implicit"`}},
		{"duplicate connector id", `connectors:
- {type: github, id: gh, name: A, config: {clientID: a}}
- {type: oidc, id: gh, name: B, config: {issuer: "https://accounts.google.com"}}`, []string{`connectors[1].id: "gh" is already the id of connectors[0]`}},
		{"connector clashes with local", `connectors: [{type: github, id: local, name: A, config: {clientID: a}}]`, []string{`connectors[0].id: "local" is the id of the connector enablePasswordDB adds`}},
		{"connector without id, name, config", `connectors: [{type: oidc}]`, []string{"connectors[0].id: required", "connectors[0].name: required", "connectors[0].config: required"}},
		{"unsupported connector", `connectors: [{type: mockCallback, id: mock, name: Example}]`, []string{`connectors[0].type: "mockCallback" is not supported by gatehouse`, "staticPasswords"}},
		{"google connector advice", `connectors: [{type: google, id: google, name: Google, config: {clientID: a}}]`, []string{"connectors[0].type:", "use type oidc with issuer https://accounts.google.com"}},
		{"connector config not a mapping", `connectors: [{type: github, id: gh, name: GH, config: [1, 2]}]`, []string{"connectors[0].config: must be a mapping"}},
		{"password connector unknown", `oauth2: {passwordConnector: ldap}`, []string{`oauth2.passwordConnector: "ldap" names no connector; use the id of a connector (github, local)`}},
		{"password connector cannot do passwords", `oauth2: {passwordConnector: github}`, []string{`oauth2.passwordConnector: "github" is a github connector, which cannot check passwords`}},
		{"grant type unsupported", `oauth2: {grantTypes: [authorization_code, implicit, "urn:ietf:params:oauth:grant-type:token-exchange", magic]}`,
			[]string{`oauth2.grantTypes[1]: "implicit": the implicit flow is not supported`, `oauth2.grantTypes[3]: "magic" is not a grant type gatehouse supports`}},
		{"password grant without connector", `oauth2: {grantTypes: [password]}`, []string{"oauth2.grantTypes[0]: the password grant needs oauth2.passwordConnector"}},
		{"implicit response type", `oauth2: {responseTypes: [code, token]}`, []string{`oauth2.responseTypes[1]: "token" is not supported`}},
		{"grpc refused", `grpc: {addr: "127.0.0.1:5557"}`, []string{"grpc: not supported: Dex's gRPC API is not supported by gatehouse"}},
		{"login limits negative", `oauth2: {loginLimits: {perUser: {failures: -1}, perIP: {window: -1m}}}`, []string{"oauth2.loginLimits.perUser.failures: -1: must be a positive number", "oauth2.loginLimits.perIP.window: -1m0s: must be a positive duration"}},
		{"login limits typo", `oauth2: {loginLimits: {perUser: {failure: 5}}}`, []string{"oauth2.loginLimits.perUser.failure: unknown key; did you mean failures?"}},
		{"newer Dex pkce keys", `oauth2: {pkce: {enforce: true}}`, []string{"oauth2.pkce.enforce: not supported: gatehouse always requires PKCE"}},
		{"newer Dex connector grantTypes", `connectors: [{type: github, id: gh, name: GH, config: {clientID: a}, grantTypes: [authorization_code]}]`, []string{"connectors[0].grantTypes: not supported: per-connector grant types"}},
		{"storage kubernetes both", `storage: {type: kubernetes, config: {inCluster: true, kubeConfigFile: /x}}`, []string{"storage.config.kubeConfigFile: excludes inCluster"}},
		{"storage kubernetes neither", `storage: {type: kubernetes, config: {crdHandling: create}}`, []string{"storage.config: set inCluster: true", `storage.config.crdHandling: "create": use ensure`}},
		{"storage kubernetes kubeconfig missing", `storage: {type: kubernetes, config: {kubeConfigFile: /nonexistent/kubeconfig}}`, []string{"storage.config.kubeConfigFile: open /nonexistent/kubeconfig"}},
		{"storage kubernetes unknown key", `storage: {type: kubernetes, config: {inCluster: true, namespace: dex}}`, []string{"storage.config.namespace: unknown key"}},
		{"storage etcd", `storage: {type: etcd, config: {endpoints: [http://etcd:2379]}}`, []string{`storage.type: "etcd" storage is not supported by gatehouse; use sqlite3 for one replica, or postgres or kubernetes for several`}},
		{"storage unknown", `storage: {type: redis}`, []string{`storage.type: "redis" is not a storage type; use sqlite3, postgres, kubernetes or memory`}},
		{"storage type typo", `storage: {type: sqlite, config: {file: /x.db}}`, []string{`storage.type: "sqlite" is not a storage type; did you mean sqlite3?`}},
		{"connector type typo", `connectors: [{type: githb, id: gh, name: GH, config: {clientID: a}}]`, []string{`connectors[0].type: "githb" is not supported by gatehouse (it supports github, oidc, ldap and local); did you mean github?`}},
		{"ldap without config", `connectors: [{type: ldap, id: ldap, name: LDAP}]`, []string{"connectors[0].config: required for an ldap connector"}},
		{"ldap type typo", `connectors: [{type: ldpa, id: ldap, name: LDAP, config: {host: x}}]`, []string{`connectors[0].type: "ldpa" is not supported by gatehouse (it supports github, oidc, ldap and local); did you mean ldap?`}},
		{"storage missing type", `storage: {type: <delete>}`, []string{"storage.type: required"}},
		{"sqlite without file", `storage: {type: sqlite3, config: {}}`, []string{"storage.config.file: required"}},
		{"sqlite unknown key", `storage: {type: sqlite3, config: {path: /x.db}}`, []string{"storage.config.path: unknown key (known keys here: file)"}},
		{"memory takes no keys", `storage: {type: memory, config: {size: 1}}`, []string{"storage.config.size: unknown key (this section takes no keys)"}},
		{"postgres dsn and host", `storage: {type: postgres, config: {dsn: "postgres://db/gh", host: db, ssl: {mode: disable}}}`, []string{"storage.config.dsn: excludes host, ssl.mode"}},
		{"postgres no host", `storage: {type: postgres, config: {database: gh}}`, []string{"storage.config.host: required"}},
		{"postgres bad port", `storage: {type: postgres, config: {host: db, port: 70000}}`, []string{"storage.config.port: 70000 is not a whole number in range 0-65535"}},
		{"postgres bad sslmode", `storage: {type: postgres, config: {host: db, ssl: {mode: sometimes}}}`, []string{`storage.config.ssl.mode: "sometimes" is not an sslmode`}},
		{"postgres missing ca", `storage: {type: postgres, config: {host: db, ssl: {caFile: /nonexistent/ca.pem}}}`, []string{"storage.config.ssl.caFile: open /nonexistent/ca.pem: no such file or directory"}},
		{"postgres negative pool", `storage: {type: postgres, config: {host: db, maxOpenConns: -1}}`, []string{"storage.config.maxOpenConns: must not be negative"}},
		{"signer vault", `signer: {type: vault, config: {addr: "http://vault:8200"}}`, []string{"signer.type: the vault signer is not supported"}},
		{"signer algorithm", `signer: {type: local, config: {algorithm: HS256}}`, []string{`signer.config.algorithm: "HS256" is not supported`}},
		{"bad hash", `staticPasswords: [{email: a@example.com, hash: "password", userID: "1"}]`, []string{"staticPasswords[0].hash: is not a bcrypt hash"}},
		{"hashFromEnv unset", `staticPasswords: [{email: a@example.com, hashFromEnv: GATEHOUSE_TEST_SURELY_UNSET, userID: "1"}]`, []string{"staticPasswords[0].hashFromEnv: environment variable GATEHOUSE_TEST_SURELY_UNSET is not set"}},
		{"passwords without password db", `enablePasswordDB: false`, []string{"enablePasswordDB: must be true to use staticPasswords"}},
		{"duplicate email and user id", `staticPasswords:
- {email: a@example.com, hash: "` + adminHash + `", userID: "1"}
- {email: A@example.com, hash: "` + adminHash + `", userID: "1"}`, []string{`staticPasswords[1].email: "A@example.com" is already the email of staticPasswords[0]`, `staticPasswords[1].userID: "1" is already the userID`}},
		{"password missing fields", `staticPasswords: [{username: x}]`, []string{"staticPasswords[0].email: required", "staticPasswords[0].hash: required", "staticPasswords[0].userID: required"}},
		{"logger format", `logger: {format: xml}`, []string{`logger.format: "xml" is not a log format`}},
		{"logger level", `logger: {level: verbose}`, []string{"logger.level:", "verbose"}},
		{"frontend theme", `frontend: {theme: neon}`, []string{`frontend.theme: "neon" is not a theme`}},
		{"frontend dir missing", `frontend: {dir: /nonexistent/web}`, []string{"frontend.dir: stat /nonexistent/web: no such file or directory"}},
		{"telemetry same as web", `telemetry: {http: "127.0.0.1:5556"}`, []string{"telemetry.http:", "is also a web address"}},
		{"audit without authentication", `audit: {enabled: true}`, []string{"audit.webhook: has no authentication"}},
		{"audit on kubernetes storage", `audit: {enabled: true, webhook: {bearerTokens: [0123456789abcdef0123]}, storage: {type: kubernetes, config: {inCluster: true}}}`, []string{"audit.storage.type: kubernetes storage holds the issuer's state, not audit events"}},
		{"audit short token", `audit: {enabled: true, webhook: {bearerTokens: [abc]}}`, []string{"audit.webhook.bearerTokens[0]: is too short"}},
		{"audit token env unset", `audit: {enabled: true, webhook: {bearerTokensEnv: GATEHOUSE_TEST_SURELY_UNSET}}`, []string{"audit.webhook.bearerTokensEnv: environment variable GATEHOUSE_TEST_SURELY_UNSET is not set"}},
		{"audit path under issuer", `audit: {enabled: true, webhook: {path: /dex/audit, bearerTokens: [0123456789abcdef0123]}}`, []string{`audit.webhook.path: "/dex/audit" is under the issuer path /dex`}},
		{"audit relative path", `audit: {enabled: true, webhook: {path: audit, bearerTokens: [0123456789abcdef0123]}}`, []string{`audit.webhook.path: "audit" must be an absolute path`}},
		{"audit client CA needs https", `audit: {enabled: true, webhook: {clientCAFile: "` + caFile + `"}}`, []string{"audit.webhook.clientCAFile: client certificates need TLS"}},
		{"audit client CA missing", `audit: {enabled: true, webhook: {clientCAFile: /nonexistent/ca.pem}}`, []string{"audit.webhook.clientCAFile: open /nonexistent/ca.pem: no such file or directory"}},
		{"audit unknown key", `audit: {enabled: true, retention: {maxAgee: 1h}, webhook: {bearerTokens: [0123456789abcdef0123]}}`, []string{"audit.retention.maxAgee: unknown key; did you mean maxAge?"}},
		{"audit bad retention", `audit: {enabled: true, retention: {maxAge: forever}, webhook: {bearerTokens: [0123456789abcdef0123]}}`, []string{`audit.retention.maxAge: "forever" is not a duration`}},
		{"audit users claim", `audit: {enabled: true, users: {claim: groups}, webhook: {bearerTokens: [0123456789abcdef0123]}}`, []string{`audit.users.claim: "groups": login sessions can be found by preferred_username, email or sub`}},
		{"audit users unknown key", `audit: {enabled: true, users: {claimm: email}, webhook: {bearerTokens: [0123456789abcdef0123]}}`, []string{"audit.users.claimm: unknown key; did you mean claim?"}},
		{"audit forward", `audit:
  enabled: true
  webhook: {bearerTokens: [0123456789abcdef0123]}
  forward:
  - {name: falco, url: "https://falco:8765/k8s-audit", queueDir: /q/a}
  - {name: falco, url: "falco:8765", queueDir: /q/a, caFile: /nonexistent/ca.pem}
  - {url: "http://siem.example.com/in", bearerToken: tok, bearerTokenEnv: X}
  - {name: x, url: "http://siem.example.com/in", bearerToken: tok, maxQueueBytes: -1}`,
			[]string{`audit.forward[1].name: "falco" is already the name of audit.forward[0]`, `audit.forward[1].url: "falco:8765" must be an absolute http or https URL`,
				"audit.forward[1].queueDir: /q/a is already the queue of audit.forward[0]", "audit.forward[1].caFile: open /nonexistent/ca.pem",
				"audit.forward[2].name: required", "audit.forward[2].bearerTokenEnv: bearerToken and bearerTokenEnv exclude each other",
				"audit.forward[2].queueDir: required with memory storage", `audit.forward[3].url: "http://siem.example.com/in" is plain http but a bearer token is set`,
				"audit.forward[3].maxQueueBytes: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, patched(t, tc.patch))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, fe := range FieldErrors(err) {
				if fe.Path == "" {
					t.Errorf("error without a key path: %v", fe)
				}
			}
		})
	}
}

// writeCA writes a self-signed CA certificate and returns its path.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	certPEM, _ := selfSigned(t)
	p := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestHTTPSWithCertificate(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, patched(t, `web: {http: <delete>, https: "127.0.0.1:5554", tlsCert: "`+cert+`", tlsKey: "`+key+`", tlsMinVersion: 1.3}
audit: {enabled: true, webhook: {clientCAFile: "`+cert+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.TLSMinVersion != TLS13 || c.Web.TLSMinVersion.Uint16() != 0x0304 {
		t.Errorf("tlsMinVersion = %q", c.Web.TLSMinVersion)
	}
	// a key that does not match the certificate
	_, otherKey := selfSigned(t)
	if err := os.WriteFile(key, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load(t, patched(t, `web: {https: "127.0.0.1:5554", tlsCert: "`+cert+`", tlsKey: "`+key+`"}`))
	if err == nil || !strings.Contains(err.Error(), "web.tlsCert: cannot be used with web.tlsKey") {
		t.Fatalf("mismatched key pair: %v", err)
	}
}

func TestCollectsAllErrors(t *testing.T) {
	_, err := load(t, []byte(`
issuer: http://login.example.com
storage: {type: etcd}
web: {http: ":5556"}
expiry: {idTokens: "1 day", signingKeys: 6 hours}
staticClients:
- {id: a, name: A, public: true, secret: x, redirectURIs: ["/cb"]}
- {id: a, name: B, secret: y, redirectURls: []}
oauth2: {passwordConnector: nowhere}
`))
	if err == nil {
		t.Fatal("no error")
	}
	paths := map[string]bool{}
	for _, fe := range FieldErrors(err) {
		paths[fe.Path] = true
		if fe.File == "" || fe.Line == 0 {
			t.Errorf("no file or line: %v", fe)
		}
	}
	for _, p := range []string{"issuer", "storage.type", "expiry.idTokens", "expiry.signingKeys", "staticClients[0].secret",
		"staticClients[0].redirectURIs[0]", "staticClients[1].redirectURls", "staticClients[1].id", "oauth2.passwordConnector"} {
		if !paths[p] {
			t.Errorf("no error for %s in:\n%v", p, err)
		}
	}
	// a key with a decoding error is not reported again by validation
	if n := strings.Count(err.Error(), "expiry.idTokens"); n != 1 {
		t.Errorf("expiry.idTokens reported %d times:\n%v", n, err)
	}
}

func TestLineNumbers(t *testing.T) {
	src := `issuer: https://login.example.com/dex
storage:
  type: memory
web:
  http: 127.0.0.1:5556
staticClients:
- id: a
  name: A
  secret: x
- id: b
  name: B
  secret: y
  redirectURls:
  - http://localhost:8000
expiry:
  idTokens: 1 day
`
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		path + ":13: staticClients[1].redirectURls: unknown key; did you mean redirectURIs?",
		path + `:16: expiry.idTokens: "1 day" is not a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Parse alone gives the line too.
	_, err = Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "line 13: staticClients[1].redirectURls") {
		t.Errorf("Parse: %v", err)
	}
	// Validation errors get lines as well.
	_, err = Load(writeTemp(t, strings.Replace(src, "redirectURls", "redirectURIs", 1)+"oauth2:\n  passwordConnector: nowhere\n"))
	if err == nil || !strings.Contains(err.Error(), ":18: oauth2.passwordConnector") {
		t.Errorf("validation line: %v", err)
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestYAMLSyntaxAndShape(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string
	}{
		{"issuer: [unclosed", "not valid YAML"},
		{"issuer: a\nissuer: b\n", "not valid YAML"}, // duplicate key
		{"- a\n- b\n", "the top level must be a mapping"},
		{"just a string", "the top level must be a mapping"},
	} {
		_, err := Parse([]byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want %q", tc.src, err, tc.want)
		}
	}
	// An empty file parses, and validation says what is missing.
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	err = c.Validate()
	for _, w := range []string{"issuer: required", "storage.type: required", "web: needs an address"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("empty config: %v lacks %q", err, w)
		}
	}
}

func TestDexExamples(t *testing.T) {
	for _, tc := range []struct {
		file    string
		env     map[string]string
		wantErr []string // nil: must load
		check   func(t *testing.T, c *Config)
	}{
		{file: "dex-config-dev-github.yaml", env: map[string]string{"GITHUB_CLIENT_ID": "gh-id", "GITHUB_CLIENT_SECRET": "gh-secret"},
			check: func(t *testing.T, c *Config) {
				if c.Issuer != "http://127.0.0.1:5556/dex" || c.Storage.Type != StorageSQLite3 || c.Storage.SQLite3.File != "examples/dex.db" {
					t.Errorf("issuer/storage: %q %+v", c.Issuer, c.Storage)
				}
				if c.Web.HTTP != "0.0.0.0:5556" || c.Telemetry.HTTP != "0.0.0.0:5558" {
					t.Errorf("web/telemetry: %+v %+v", c.Web, c.Telemetry)
				}
				cl := c.StaticClients[0]
				if cl.ID != "example-app" || cl.Secret != "ZXhhbXBsZS1hcHAtc2VjcmV0" || !reflect.DeepEqual(cl.RedirectURIs, []string{"http://127.0.0.1:5555/callback", "/dex/device/callback"}) {
					t.Errorf("client: %+v", cl)
				}
				pw := c.StaticPasswords[0]
				if pw.Email != "admin@example.com" || pw.Hash != adminHash || pw.Name != "Admin User" || pw.PreferredUsername != "admin" ||
					pw.EmailVerified == nil || !*pw.EmailVerified || !reflect.DeepEqual(pw.Groups, []string{"team-a", "team-a/admins"}) {
					t.Errorf("password: %+v", pw)
				}
				if c.Signer.Type != "local" || c.Expiry.SigningKeys.D() != 6*time.Hour {
					t.Errorf("signer: %+v %v", c.Signer, c.Expiry.SigningKeys)
				}
				var gh struct {
					ClientID     string `json:"clientID"`
					ClientSecret string `json:"clientSecret"`
					RedirectURI  string `json:"redirectURI"`
				}
				if err := c.Connectors[0].DecodeConfig(&gh); err != nil {
					t.Fatal(err)
				}
				if gh.ClientID != "gh-id" || gh.ClientSecret != "gh-secret" {
					t.Errorf("connector config not expanded: %+v", gh)
				}
				if ids := c.connectorIDs(); !reflect.DeepEqual(ids, []string{"github", "local"}) {
					t.Errorf("connectors: %v", ids)
				}
			}},
		// Dex's own example, unchanged: everything is accepted except its
		// test connector.
		{file: "dex-config-dev.yaml", wantErr: []string{`:150: connectors[0].type: "mockCallback" is not supported by gatehouse`}},
		{file: "dex-config-dist.yaml", check: func(t *testing.T, c *Config) {
			if c.Storage.Type != StorageMemory || !c.EnablePasswordDB || c.Web.HTTP != "127.0.0.1:5556" {
				t.Errorf("%+v", c)
			}
		}},
		// Dex's Kubernetes example: its kubernetes storage is accepted; the
		// TLS files named do not exist here.
		{file: "dex-k8s.yaml", env: map[string]string{"GITHUB_CLIENT_ID": "x", "GITHUB_CLIENT_SECRET": "y"},
			wantErr: []string{":8: web.tlsCert: open /etc/dex/tls/tls.crt", ":9: web.tlsKey: open /etc/dex/tls/tls.key"}},
		{file: "seed-helm.yaml", env: map[string]string{"GITHUB_CLIENT_ID": "x", "GITHUB_CLIENT_SECRET": "y",
			"KUBERNETES_CLIENT_SECRET": "kube-secret", "AUDIT_TOKENS": "0123456789abcdef0123,fedcba98765432100123"},
			check: func(t *testing.T, c *Config) {
				cl, ok := c.Client("kubernetes")
				if !ok || cl.Secret != "kube-secret" || !cl.AllowsConnector("github") || cl.AllowsConnector("local") || !cl.AllowsGrant(GrantRefreshToken) {
					t.Errorf("client: %+v", cl)
				}
				if c.Expiry.IDTokens.D() != time.Hour || *c.Expiry.RefreshTokens.ReuseInterval != 0 || c.Expiry.RefreshTokens.AbsoluteLifetime.D() != 3960*time.Hour {
					t.Errorf("expiry: %+v", c.Expiry)
				}
				a := c.Audit
				if !a.Enabled || a.Webhook.Path != "/audit/webhook" || len(a.Webhook.BearerTokens) != 2 ||
					a.Storage == nil || a.Storage.SQLite3.File != "/var/lib/gatehouse/audit.db" ||
					!reflect.DeepEqual(a.ViewerGroups, []string{"exampleorg:infra-team"}) || a.Retention.MaxEvents != 10_000_000 {
					t.Errorf("audit: %+v", a)
				}
				if c.Frontend.Theme != "dark" || c.Frontend.Issuer != "Example Cluster" {
					t.Errorf("frontend: %+v", c.Frontend)
				}
			}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := filepath.Join("testdata", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(data); err != nil && tc.file != "dex-k8s.yaml" {
				t.Errorf("Parse: %v", err)
			}
			c, err := Load(path)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("Load: no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n, want := len(FieldErrors(err)), len(tc.wantErr); n != want {
				t.Errorf("%d errors, want %d:\n%v", n, want, err)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("GH_SECRET", `se"cr\et`)
	t.Setenv("DATA", "/var/lib/gh")
	t.Setenv("CLIENT_ID", "kube")
	t.Setenv("CLIENT_SECRET", "from-env")
	t.Setenv("PW_HASH", adminHash)
	t.Setenv("NAME", "expanded")
	src := `
issuer: https://login.example.com/dex
storage: {type: sqlite3, config: {file: "${DATA}/gatehouse.db"}}
web: {http: ":5556"}
connectors:
- type: github
  id: github
  name: $NAME
  config: {clientID: id, clientSecret: $GH_SECRET, orgs: [{name: "$NAME", teams: ["${NAME}-team"]}]}
staticClients:
- {idEnv: CLIENT_ID, secretEnv: CLIENT_SECRET, name: "$NAME"}
enablePasswordDB: true
staticPasswords:
- {email: a@example.com, hashFromEnv: PW_HASH, userID: "1"}
`
	c, err := load(t, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.SQLite3.File != "/var/lib/gh/gatehouse.db" {
		t.Errorf("storage.config not expanded: %q", c.Storage.SQLite3.File)
	}
	var gh struct {
		ClientID     string `json:"clientID"`
		ClientSecret string `json:"clientSecret"`
		Orgs         []struct {
			Name  string   `json:"name"`
			Teams []string `json:"teams"`
		} `json:"orgs"`
	}
	if err := c.Connectors[0].DecodeConfig(&gh); err != nil {
		t.Fatal(err)
	}
	if gh.ClientSecret != `se"cr\et` || gh.Orgs[0].Name != "expanded" || gh.Orgs[0].Teams[0] != "expanded-team" {
		t.Errorf("connector config: %+v", gh)
	}
	// As in Dex, values outside the config sections are literal.
	if c.Connectors[0].Name != "$NAME" || c.StaticClients[0].Name != "$NAME" {
		t.Errorf("expanded outside config: %q %q", c.Connectors[0].Name, c.StaticClients[0].Name)
	}
	if cl := c.StaticClients[0]; cl.ID != "kube" || cl.Secret != "from-env" {
		t.Errorf("idEnv/secretEnv: %+v", cl)
	}
	if c.StaticPasswords[0].Hash != adminHash {
		t.Errorf("hashFromEnv: %q", c.StaticPasswords[0].Hash)
	}

	t.Setenv(ExpandEnvVar, "false")
	c, err = load(t, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.SQLite3.File != "${DATA}/gatehouse.db" {
		t.Errorf("DEX_EXPAND_ENV=false still expanded: %q", c.Storage.SQLite3.File)
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, []byte(`
issuer: https://login.example.com
storage: {type: postgres, config: {host: "db:5433", database: gatehouse, user: gh, password: "p w'd"}}
web: {http: ":5556"}
oauth2: {passwordConnector: local}
enablePasswordDB: true
staticClients: [{id: a, name: A, public: true}]
staticPasswords: [{email: a@example.com, hash: "`+base64.StdEncoding.EncodeToString([]byte(adminHash))+`", userID: "1"}]
audit:
  enabled: true
  webhook: {bearerTokens: ["0123456789abcdef0123"]}
  forward: [{name: falco, url: "https://falco:8765/k8s-audit", queueDir: /var/lib/q}]
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"idTokens", c.Expiry.IDTokens.D(), 24 * time.Hour},
		{"signingKeys", c.Expiry.SigningKeys.D(), 6 * time.Hour},
		{"authRequests", c.Expiry.AuthRequests.D(), 24 * time.Hour},
		{"deviceRequests", c.Expiry.DeviceRequests.D(), 5 * time.Minute},
		{"reuseInterval", c.Expiry.RefreshTokens.ReuseInterval.D(), 3 * time.Second},
		{"validIfNotUsedFor", c.Expiry.RefreshTokens.ValidIfNotUsedFor.D(), time.Duration(0)},
		{"tlsMinVersion", c.Web.TLSMinVersion, TLS12},
		{"allowedHeaders", c.Web.AllowedHeaders, []string{"Authorization"}},
		{"responseTypes", c.OAuth2.ResponseTypes, []string{"code"}},
		{"grantTypes", c.OAuth2.GrantTypes, []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode, GrantTokenExchange, GrantPassword}},
		{"client grants", c.StaticClients[0].AllowedGrantTypes, c.OAuth2.GrantTypes},
		{"allowPlain", c.OAuth2.PKCE.AllowPlain, false},
		{"login limits per user", c.OAuth2.LoginLimits.PerUser, FailureLimit{Failures: 10, Window: Duration(time.Minute)}},
		{"login limits per IP", c.OAuth2.LoginLimits.PerIP, FailureLimit{Failures: 30, Window: Duration(30 * time.Second)}},
		{"signer", c.Signer.Type, "local"},
		{"algorithm", c.Signer.Local.Algorithm, RS256},
		{"logger format", c.Logger.Format, "json"},
		{"frontend issuer", c.Frontend.Issuer, "gatehouse"},
		{"theme", c.Frontend.Theme, "light"},
		{"maxOpenConns", c.Storage.Postgres.MaxOpenConns, 5},
		{"maxIdleConns", c.Storage.Postgres.MaxIdleConns, 5},
		{"sslmode", c.Storage.Postgres.SSL.Mode, "verify-full"},
		{"base64 hash decoded", c.StaticPasswords[0].Hash, adminHash},
		{"audit path", c.Audit.Webhook.Path, "/audit/webhook"},
		{"audit maxAge", c.Audit.Retention.MaxAge.D(), 720 * time.Hour},
		{"audit storage is the main postgres", c.Audit.Storage.Postgres.Host, "db:5433"},
		{"forward queue bytes", c.Audit.Forward[0].MaxQueueBytes, int64(100 << 20)},
		{"audit users claim", c.Audit.Users.Claim, "preferred_username"},
		{"audit users prefix", *c.Audit.Users.Prefix, "oidc:"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	if _, ok := c.Connector("local"); !ok {
		t.Error("enablePasswordDB added no local connector")
	}

	// Explicit values win; signer.config.keysRotationPeriod wins over
	// expiry.signingKeys as in Dex; 0s turns the reuse interval off.
	c, err = load(t, patched(t, `
expiry: {signingKeys: 1h, refreshTokens: {reuseInterval: 0s}}
signer: {type: local, config: {keysRotationPeriod: 12h, algorithm: ES256}}
storage: {type: sqlite3, config: {file: /data/gatehouse.db}}
audit:
  enabled: true
  webhook: {bearerTokens: ["0123456789abcdef0123"]}
  forward: [{name: falco, url: "https://falco:8765/k8s-audit"}]
logger: {level: debug, format: text}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Expiry.SigningKeys.D() != 12*time.Hour || c.Signer.Local.Algorithm != ES256 || *c.Expiry.RefreshTokens.ReuseInterval != 0 {
		t.Errorf("explicit: %+v %+v", c.Expiry, c.Signer)
	}
	if c.Audit.Storage.SQLite3.File != "/data/audit.db" || c.Audit.Forward[0].QueueDir != "/data/forward/falco" {
		t.Errorf("audit defaults next to sqlite: %+v %+v", c.Audit.Storage, c.Audit.Forward[0])
	}
	if c.Logger.Level.String() != "DEBUG" || c.Logger.Format != "text" {
		t.Errorf("logger: %+v", c.Logger)
	}

	// ApplyDefaults is idempotent.
	before, _ := yaml.Marshal(c)
	c.ApplyDefaults()
	after, _ := yaml.Marshal(c)
	if string(before) != string(after) {
		t.Errorf("ApplyDefaults not idempotent:\n%s\n---\n%s", before, after)
	}
}

func TestConfigInCode(t *testing.T) {
	dir := t.TempDir()
	c := &Config{
		Issuer:  "https://127.0.0.1:5556/dex",
		Storage: Storage{Type: StorageSQLite3, SQLite3: SQLite3{File: filepath.Join(dir, "gatehouse.db")}},
		Web:     Web{HTTP: "127.0.0.1:5556"},
		StaticClients: []Client{{ID: "kubernetes", Name: "Kubernetes", Public: true,
			RedirectURIs: []string{"http://localhost:8000", "http://localhost:18000"}}},
		EnablePasswordDB: true,
		StaticPasswords:  []Password{{Email: "admin@example.com", Hash: adminHash, Username: "admin", UserID: "1"}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.StaticClients[0].RedirectURIs = append(c.StaticClients[0].RedirectURIs, "relative")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "staticClients[0].redirectURIs[2]") {
		t.Fatalf("Validate: %v", err)
	}
}

func TestDecodeStrict(t *testing.T) {
	type org struct {
		Name  string   `json:"name"`
		Teams []string `json:"teams"`
	}
	type github struct {
		ClientID      string   `json:"clientID"`
		ClientSecret  string   `json:"clientSecret"`
		Orgs          []org    `json:"orgs"`
		LoadAllGroups bool     `json:"loadAllGroups"`
		Refresh       Duration `json:"groupsRefreshInterval"`
	}
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{`{"clientID":"x","orgs":[{"name":"a","teamz":["t"]}]}`, []string{"connectors[0].config.orgs[0].teamz: unknown key; did you mean teams?"}},
		{`{"clientid":"x","loadAllGroups":"yes","groupsRefreshInterval":"5 minutes","hostname":"x"}`, []string{
			"connectors[0].config.loadAllGroups: must be true or false, not a string",
			`connectors[0].config.groupsRefreshInterval: "5 minutes" is not a duration`,
			"connectors[0].config.hostname: unknown key"}},
		{`{"orgs":{"name":"a"}}`, []string{"connectors[0].config.orgs: must be a list, not a mapping"}},
		{`[1]`, []string{"connectors[0].config: must be a mapping, not a list"}},
		{`{"clientID":`, []string{"connectors[0].config: not valid JSON"}},
	} {
		var g github
		err := DecodeStrict([]byte(tc.raw), &g, "connectors[0].config")
		if err == nil {
			t.Errorf("%s: no error", tc.raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tc.raw, w, err)
			}
		}
	}
	var g github
	if err := DecodeStrict([]byte(`{"clientid":"x","orgs":[{"name":"a","teams":["t"]}],"groupsRefreshInterval":"5m"}`), &g, "c"); err != nil {
		t.Fatal(err)
	}
	if g.ClientID != "x" || g.Orgs[0].Teams[0] != "t" || g.Refresh.D() != 5*time.Minute {
		t.Errorf("decoded %+v", g)
	}
	if err := DecodeStrict(nil, &g, "c"); err != nil {
		t.Errorf("empty config: %v", err)
	}
	if err := DecodeStrict([]byte(`{}`), g, "c"); err == nil {
		t.Error("non-pointer accepted")
	}

	// Through a loaded connector, the error carries the file's line.
	path := writeTemp(t, strings.Replace(baseYAML, "    clientSecret: def", "    clientSecret: def\n    orgs:\n    - name: exampleorg\n      teamz: [infra]", 1))
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Connectors[0].DecodeConfig(&g)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "connectors[0].config.orgs[0].teamz" || fe.Line != 16 || len(FieldErrors(err)) != 1 {
		t.Errorf("DecodeConfig: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"redirectURIs", "trustedPeers", "secret", "secretEnv", "id", "idEnv", "public"}
	for key, want := range map[string]string{
		"redirectURls": "redirectURIs", "redirectUris": "redirectURIs", "trustedPeer": "trustedPeers",
		"secertEnv": "secretEnv", "publik": "public", "colour": "", "x": "",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestCaseInsensitiveKeys(t *testing.T) {
	// encoding/json, and so Dex, match keys case-insensitively; Dex's
	// postgres keys are untagged Go fields (Host, Database, ...).
	c, err := Parse([]byte(`
issuer: https://x
storage: {type: postgres, config: {Host: db, Database: d, SSL: {Mode: disable}}}
staticClients: [{id: a, name: A, secret: s, redirectUris: ["https://a/cb"]}]
frontend: {LogoURL: "https://x/logo.png"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Postgres.Host != "db" || c.Storage.Postgres.SSL.Mode != "disable" || c.StaticClients[0].RedirectURIs[0] != "https://a/cb" || c.Frontend.LogoURL == "" {
		t.Errorf("%+v", c)
	}
}

func TestRedirectURIs(t *testing.T) {
	c := &Config{Issuer: "https://login.example.com/dex"}
	for uri, ok := range map[string]bool{
		"http://localhost:8000":           true,
		"https://app.example.com/cb":      true,
		"com.example.app:/oauth2redirect": true,
		"urn:ietf:wg:oauth:2.0:oob":       true,
		"/device/callback":                true,
		"/dex/device/callback":            true,
		"/other/device/callback":          false,
		"localhost:8000":                  true, // scheme "localhost": absolute by syntax
		"/cb":                             false,
		"https://app.example.com/cb#x":    false,
		"https://app.example.com/cb#":     false,
		"http://[::1":                     false,
	} {
		v := &validator{}
		c.validateRedirectURI(v, "r", uri)
		if got := len(v.errs) == 0; got != ok {
			t.Errorf("%q: valid = %v, want %v (%v)", uri, got, ok, v.errs)
		}
	}
}

func TestIssuer(t *testing.T) {
	for issuer, ok := range map[string]bool{
		"https://login.example.com/dex": true,
		"https://login.example.com":     true,
		"http://127.0.0.1:5556/dex":     true,
		"http://localhost:5556":         true,
		"http://[::1]:5556":             true,
		"http://10.0.0.1:5556":          false,
		"ftp://login.example.com":       false,
		"https://u:p@login.example.com": false,
		"https://login.example.com/#x":  false,
	} {
		v := &validator{}
		(&Config{Issuer: issuer}).validateIssuer(v)
		if got := len(v.errs) == 0; got != ok {
			t.Errorf("%q: valid = %v, want %v (%v)", issuer, got, ok, v.errs)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"dex-config-dev.yaml", "dex-config-dev-github.yaml", "dex-config-dist.yaml", "dex-k8s.yaml", "seed-helm.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(baseYAML))
	f.Add([]byte("storage: {type: postgres, config: {port: 1e3}}\naudit: {enabled: true, forward: [{}], storage: {type: sqlite3}}"))
	f.Add([]byte("connectors: [{config: [[[]]]}]\nsigner: {type: local, config: {keysRotationPeriod: 0}}"))
	f.Add([]byte(`connectors: [{type: github, config: {s: x, n: 300, u: -1, f: 1.5, b: true, d: 1h, p: null, l: [{x: 1}], m: {k: v}, a: [1], tv: 1.3}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if FieldErrors(err) == nil && !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("unexpected error shape: %v", err)
			}
			return
		}
		c.ApplyDefaults()
		_ = c.Validate()
		for _, k := range c.Connectors {
			var m map[string]any
			_ = k.DecodeConfig(&m)
			var typed struct {
				S  string            `json:"s"`
				N  int8              `json:"n"`
				U  uint16            `json:"u"`
				F  float64           `json:"f"`
				B  bool              `json:"b"`
				D  Duration          `json:"d"`
				P  *Duration         `json:"p"`
				L  []struct{ X int } `json:"l"`
				M  map[string]string `json:"m"`
				A  any               `json:"a"`
				TV TLSVersion        `json:"tv"`
			}
			_ = k.DecodeConfig(&typed)
		}
	})
}

// TestLoginLimitsPartial: a limit given in part keeps the default for the
// rest.
func TestLoginLimitsPartial(t *testing.T) {
	c, err := load(t, []byte(`
issuer: https://login.example.com
storage: {type: memory}
web: {http: ":5556"}
oauth2: {loginLimits: {perUser: {failures: 5}, perIP: {window: 10m}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.OAuth2.LoginLimits.PerUser, (FailureLimit{Failures: 5, Window: Duration(time.Minute)}); got != want {
		t.Errorf("perUser = %+v, want %+v", got, want)
	}
	if got, want := c.OAuth2.LoginLimits.PerIP, (FailureLimit{Failures: 30, Window: Duration(10 * time.Minute)}); got != want {
		t.Errorf("perIP = %+v, want %+v", got, want)
	}
}
