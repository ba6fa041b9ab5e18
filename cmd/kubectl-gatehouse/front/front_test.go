package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// The front must not link the HTTPS client: that is its whole point.
func TestFrontDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "net/http", pkg == "crypto/tls", pkg == "crypto/x509", pkg == "os/exec" && os.PathSeparator == '/',
			strings.HasPrefix(pkg, "golang.org/x/oauth2"), strings.HasPrefix(pkg, "github.com/coreos/go-oidc"),
			strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/flow"),
			strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"),
			strings.HasPrefix(pkg, "github.com/gatehouse-dev/gatehouse/internal/login/usecase"),
			strings.HasPrefix(pkg, "k8s.io/"), pkg == "encoding/gob":
			t.Errorf("the front links %s", pkg)
		}
	}
}

func build(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return p
}

func TestFrontAndEngine(t *testing.T) {
	dir := t.TempDir()
	front := build(t, dir, "kubectl-gatehouse", ".")
	engine := build(t, dir, EngineName, "..")
	srv := issuertest.Start(t, issuertest.Options{})
	cache := filepath.Join(dir, "cache")
	args := []string{"get-token", "--oidc-issuer-url=" + srv.URL, "--oidc-client-id=" + srv.ClientID,
		"--oidc-client-secret=" + srv.ClientSecret, "--oidc-extra-scope=groups,profile", "--token-cache-dir=" + cache,
		"--certificate-authority=" + srv.CAFile, "--username=" + srv.Username, "--password=" + srv.Password}
	env := append(os.Environ(), `KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`)
	run := func(bin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	token := func(out string) string {
		var ec struct {
			APIVersion string                 `json:"apiVersion"`
			Status     struct{ Token string } `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &ec); err != nil || ec.Status.Token == "" || ec.APIVersion != "client.authentication.k8s.io/v1" {
			t.Fatalf("not an ExecCredential: %q (%v)", out, err)
		}
		return ec.Status.Token
	}

	// Cold: the front hands the run to the engine, which logs in.
	out, stderr, err := run(front, args...)
	if err != nil {
		t.Fatalf("cold run: %v\n%s", err, stderr)
	}
	first := token(out)

	// Warm: the front alone (the engine moved away) prints the cached token.
	if err := os.Rename(engine, engine+".away"); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = run(front, args...)
	if err != nil || token(out) != first {
		t.Fatalf("warm run without the engine: %v\n%s", err, stderr)
	}
	// A run that needs the network, without the engine: a clear error.
	_, stderr, err = run(front, append(args, "--force-refresh")...)
	if err == nil || !strings.Contains(stderr, EngineName) {
		t.Fatalf("force-refresh without the engine: %v, %q", err, stderr)
	}
	if err := os.Rename(engine+".away", engine); err != nil {
		t.Fatal(err)
	}
	// Within the margin: the engine refreshes.
	out, stderr, err = run(front, append(args, "--token-expiry-margin=100h")...)
	if err != nil || token(out) == first {
		t.Fatalf("refresh through the engine: %v\n%s", err, stderr)
	}

	// Under kubelogin's name the engine answers as kubelogin.
	link := filepath.Join(dir, "kubectl-oidc_login")
	if err := os.Symlink(front, link); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err = run(link, "logout"); err == nil || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("kubectl-oidc_login logout: %v, %q", err, stderr)
	}
	if out, _, err = run(front, "version"); err != nil || !strings.Contains(out, "kubectl-gatehouse version") {
		t.Fatalf("version through the engine: %v %q", err, out)
	}
}
