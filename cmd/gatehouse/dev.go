package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
)

// Development defaults of `gatehouse serve --dev`.
const (
	devListen    = "127.0.0.1:5556"
	devTelemetry = "127.0.0.1:5558"
	devClientID  = "kubernetes"
	devUserEmail = "admin@example.com"
	devUserID    = "dev-admin"
)

// devSetup is the embedded default configuration and what a newcomer
// needs to know about it.
type devSetup struct {
	config    *config.Config
	dir       string
	caFile    string
	secret    string
	password  string
	issuer    string
	telemetry string
	// cluster is the kube-apiserver side, rendered by the code of
	// `gatehouse cluster render` with its defaults, so that what --dev
	// prints, cluster render, gatehouse kubeconfig and the plugin's setup
	// all name users the same way.
	cluster    *cluster.Config
	clusterDir string
}

// prepareDev creates (or reuses) the data folder: certificates, client
// secret and the local user's password survive restarts, so a kubeconfig
// made once keeps working.
func prepareDev(dir string) (*devSetup, error) {
	return prepareDevAt(dir, devListen, devTelemetry)
}

// prepareDevAt is prepareDev on other addresses (tests).
func prepareDevAt(dir, listen, telemetry string) (*devSetup, error) {
	issuerURL := "https://" + listen + "/dex"
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("--dev-dir: %w", err)
	}
	tlsDir := filepath.Join(abs, "tls")
	paths := tlsutil.Paths{
		CACert: filepath.Join(tlsDir, "ca.crt"), CAKey: filepath.Join(tlsDir, "ca.key"),
		ServerCert: filepath.Join(tlsDir, "tls.crt"), ServerKey: filepath.Join(tlsDir, "tls.key"),
	}
	if _, err := os.Stat(paths.ServerCert); errors.Is(err, os.ErrNotExist) {
		b, err := tlsutil.NewBundle([]string{"127.0.0.1", "localhost", "::1"}, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		if paths, err = b.WriteDir(tlsDir); err != nil {
			return nil, err
		}
	}
	secret, err := readOrCreateSecret(filepath.Join(abs, "client-secret"), 24)
	if err != nil {
		return nil, err
	}
	password, err := readOrCreateSecret(filepath.Join(abs, "admin-password"), 12)
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{
		Issuer:  issuerURL,
		Storage: config.Storage{Type: config.StorageSQLite3, SQLite3: config.SQLite3{File: filepath.Join(abs, "gatehouse.db")}},
		Web: config.Web{
			HTTPS: listen, TLSCert: paths.ServerCert, TLSKey: paths.ServerKey,
		},
		Telemetry: config.Telemetry{HTTP: telemetry},
		OAuth2:    config.OAuth2{SkipApprovalScreen: true, PasswordConnector: config.LocalConnectorID},
		Logger:    config.Logger{Format: "text"},
		StaticClients: []config.Client{{
			ID: devClientID, Secret: secret, Name: "Kubernetes",
			RedirectURIs: []string{"http://localhost:8000", "http://localhost:18000"},
		}},
		EnablePasswordDB: true,
		StaticPasswords: []config.Password{{
			Email: devUserEmail, Hash: string(hash), Username: "admin", PreferredUsername: "admin",
			UserID: devUserID, Groups: []string{"dev:admins"},
		}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dev configuration: %w", err)
	}
	d := &devSetup{config: cfg, dir: abs, caFile: paths.CACert, secret: secret, password: password, issuer: issuerURL, telemetry: telemetry}
	if err := d.renderCluster(); err != nil {
		return nil, err
	}
	return d, nil
}

// renderCluster writes the kube-apiserver files for the dev issuer into
// <dir>/cluster with `gatehouse cluster render`'s defaults (username from
// preferred_username, prefixed oidc:; groups prefixed oidc:).
func (d *devSetup) renderCluster() error {
	d.clusterDir = filepath.Join(d.dir, "cluster")
	c := &cluster.Config{
		NodeDir: d.clusterDir,
		Issuer:  cluster.Issuer{URL: d.issuer, CAFile: d.caFile, ClientID: devClientID, ClientSecret: d.secret},
		Audit:   cluster.Audit{Log: cluster.AuditLog{Disabled: true}, Webhook: cluster.AuditWebhook{Disabled: true}},
	}
	if err := c.Complete(); err != nil {
		return fmt.Errorf("dev cluster settings: %w", err)
	}
	files, err := c.Render()
	if err != nil {
		return fmt.Errorf("dev cluster settings: %w", err)
	}
	var keep []cluster.File
	for _, f := range files {
		switch f.Name {
		case cluster.FileAuthenticationConfig, cluster.FileAPIServerFlags, cluster.FileIssuerCA:
			keep = append(keep, f)
		}
	}
	if err := cluster.WriteFiles(d.clusterDir, keep); err != nil {
		return err
	}
	d.cluster = c
	return nil
}

// readOrCreateSecret keeps a generated secret in a 0600 file.
func readOrCreateSecret(path string, n int) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return v, nil
}

func (d *devSetup) printInstructions(w io.Writer) {
	c := d.cluster
	var flags strings.Builder
	for _, f := range c.LegacyOIDCFlags(true) {
		fmt.Fprintf(&flags, "  %s\n", f)
	}
	scopes := strings.Join(c.Issuer.ExtraScopes, ",")
	fmt.Fprintf(w, `
gatehouse is running with development defaults (data in %[1]s).

  Issuer      %[2]s
  CA          %[3]s   (kube-apiserver and kubectl must trust it)
  Client      %[4]s, secret %[5]s
  Local user  %[6]s, password %[7]s   (preferred_username admin, groups: dev:admins)
  Metrics     http://%[8]s/metrics

kube-apiserver settings that trust this issuer (as gatehouse cluster render
writes them: the user becomes %[11]s%[12]s, groups %[13]sdev:admins):
  --authentication-config=%[9]s   (Kubernetes 1.30+), or the flags:
%[10]s
Log in with the kubectl plugin and see what Kubernetes will make of you:
  kubectl gatehouse setup --oidc-issuer-url=%[2]s --oidc-client-id=%[4]s \
    --oidc-client-secret=%[5]s --certificate-authority=%[3]s \
    --oidc-extra-scope=%[14]s \
    --authentication-config=%[9]s

Or get a token without a browser (password grant):
  curl --cacert %[3]s -u %[4]s:%[5]s %[2]s/token \
    -d grant_type=password -d scope='openid %[15]s' \
    -d username=%[6]s -d password=%[7]s

Stop with Ctrl-C; sessions and keys survive a restart.
`, d.dir, d.issuer, d.caFile, devClientID, d.secret, devUserEmail, d.password, d.telemetry,
		filepath.Join(d.clusterDir, cluster.FileAuthenticationConfig), flags.String(),
		c.UsernamePrefix(), devUserClaim(c.Claims.Username.Claim), c.GroupsPrefix(), scopes, strings.ReplaceAll(scopes, ",", " "))
}

// devUserClaim is the local user's value of the username claim.
func devUserClaim(claim string) string {
	switch claim {
	case "preferred_username":
		return "admin"
	case "email":
		return devUserEmail
	}
	return "<its " + claim + " claim>"
}
