package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// printedCommands returns the shell commands in setup's report: the lines
// that start with kubectl, joined with their continuation lines.
func printedCommands(report string) []string {
	var cmds []string
	var cur []string
	for _, line := range strings.Split(report, "\n") {
		line = strings.TrimSpace(line)
		if len(cur) == 0 && !strings.HasPrefix(line, "kubectl ") {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		cur = append(cur, strings.TrimSuffix(line, "\\"))
		if !cont {
			cmds = append(cmds, strings.Join(cur, " "))
			cur = nil
		}
	}
	return cmds
}

// TestSetupPrintedCommandsWork: what setup prints can be pasted under the
// name the plugin was installed as. Installed only as kubectl-oidc_login
// it prints `kubectl oidc-login` (there is no `kubectl gatehouse`);
// the printed kubeconfig command, run with a real kubectl, makes kubectl
// call the plugin and send a token the issuer signed; the printed RBAC
// commands are valid kubectl commands.
func TestSetupPrintedCommandsWork(t *testing.T) {
	kubectl := findKubectl(t)
	bin := oneFile(t, ".")
	srv := issuertest.Start(t, issuertest.Options{})
	p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), srv.HTTPClient), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kubectl-oidc_login", "kubectl-gatehouse"} {
		t.Run(name, func(t *testing.T) {
			pathDir := t.TempDir()
			for link, target := range map[string]string{name: bin, "kubectl": kubectl} {
				if err := os.Symlink(target, filepath.Join(pathDir, link)); err != nil {
					t.Fatal(err)
				}
			}
			env := append(isolated(t), "PATH="+pathDir+":/usr/bin:/bin")
			kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
			env = append(env, "KUBECONFIG="+kubeconfig)
			_, r := runAs(t, bin, name, "", env, "setup", "--oidc-issuer-url="+srv.URL, "--oidc-client-id="+srv.ClientID,
				"--oidc-client-secret="+srv.ClientSecret, "--certificate-authority="+srv.CAFile, "--oidc-extra-scope=email",
				"--username="+srv.Username, "--password="+srv.Password, "--apiserver-oidc-username-claim=email", "-v1")
			if r.code != 0 {
				t.Fatalf("setup: exit %d: %s", r.code, r.stderr)
			}
			plugin := strings.TrimPrefix(strings.ReplaceAll(name, "_", "-"), "kubectl-")
			if other := map[string]string{"oidc-login": "gatehouse", "gatehouse": "oidc-login"}[plugin]; strings.Contains(r.stdout, "kubectl "+other) || strings.Contains(r.stdout, "--exec-arg="+other) {
				t.Errorf("installed as %s, setup prints commands of %s:\n%s", name, other, r.stdout)
			}
			if strings.Contains(r.stdout, "--v=1") {
				t.Errorf("setup's -v1 went into the kubeconfig:\n%s", r.stdout)
			}
			cmds := printedCommands(r.stdout)
			var setCredentials string
			bindings := 0
			for _, c := range cmds {
				switch {
				case strings.HasPrefix(c, "kubectl config set-credentials"):
					setCredentials = c
				case strings.HasPrefix(c, "kubectl create "):
					bindings++
					out, err := shell(env, c+" --dry-run=client -o name")
					if err != nil {
						t.Errorf("%s: %v\n%s", c, err, out)
					}
				}
			}
			if setCredentials == "" || bindings == 0 || !strings.Contains(setCredentials, "--exec-arg="+plugin) {
				t.Fatalf("setup printed %q", cmds)
			}
			if out, err := shell(env, setCredentials); err != nil {
				t.Fatalf("%s: %v\n%s", setCredentials, err, out)
			}

			// A stand-in API server that accepts a token the issuer signed
			// for the client.
			var mu sync.Mutex
			var subjects []string
			api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
				tok, err := p.Verifier(&oidc.Config{ClientID: srv.ClientID}).Verify(oidc.ClientContext(req.Context(), srv.HTTPClient), raw)
				if !ok || err != nil {
					http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
					return
				}
				mu.Lock()
				subjects = append(subjects, tok.Subject)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"major":"1","minor":"37","gitVersion":"v1.37.2"}`)
			}))
			defer api.Close()
			caFile := filepath.Join(t.TempDir(), "api.crt")
			if err := os.WriteFile(caFile, certPEM(api), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{
				"kubectl config set-cluster api --server=" + api.URL + " --certificate-authority=" + caFile,
				"kubectl config set-context api --cluster=api --user=oidc",
				"kubectl config use-context api",
			} {
				if out, err := shell(env, c); err != nil {
					t.Fatalf("%s: %v\n%s", c, err, out)
				}
			}
			if out, err := shell(env, "kubectl get --raw /version"); err != nil || !strings.Contains(out, "v1.37.2") {
				t.Fatalf("kubectl through the printed credentials: %v\n%s", err, out)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(subjects) == 0 {
				t.Fatal("kubectl sent no token")
			}
		})
	}
}

func certPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// shell runs a printed command as a user pastes it.
func shell(env []string, command string) (string, error) {
	c := exec.Command("/bin/sh", "-c", command)
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	return string(out), err
}
