package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
)

// standaloneKubeconfig has two users, the second with the legacy oidc
// auth-provider that kubelogin's standalone mode logs in for.
func standaloneKubeconfig(srv *issuertest.Server) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ca.crt # relative to this file
    insecure-skip-tls-verify: false
contexts:
- name: prod
  context: {cluster: prod, user: oidc-user, namespace: "007"}
- name: other
  context:
    cluster: prod
    user: token-user
current-context: prod
preferences: {}
users:
- name: token-user
  user:
    token: "true"
- name: oidc-user
  user:
    auth-provider:
      name: oidc
      config:
        idp-issuer-url: ` + srv.URL + `
        client-id: ` + srv.ClientID + `
        client-secret: ` + srv.ClientSecret + `
        idp-certificate-authority: ` + srv.CAFile + `
        extra-scopes: email,offline_access
`
}

func readYAML(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, b)
	}
	return m
}

// authProviderConfig returns the oidc user's auth-provider config.
func authProviderConfig(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	for _, u := range doc["users"].([]any) {
		u := u.(map[string]any)
		if u["name"] == "oidc-user" {
			return u["user"].(map[string]any)["auth-provider"].(map[string]any)["config"].(map[string]any)
		}
	}
	t.Fatal("no oidc-user")
	return nil
}

// TestKubeloginStandalone: `kubectl oidc-login [--kubeconfig F]` with no
// command logs in for the kubeconfig user's oidc auth-provider and writes
// the ID token and refresh token into the kubeconfig, as kubelogin does,
// leaving the rest of the file as kubelogin (clientcmd) leaves it.
func TestKubeloginStandalone(t *testing.T) {
	kubectl := findKubectl(t)
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	srv := issuertest.Start(t, issuertest.Options{})
	pathDir := t.TempDir()
	if err := os.Symlink(kubectl, filepath.Join(pathDir, "kubectl")); err != nil {
		t.Fatal(err)
	}
	env := append(isolated(t), "PATH="+pathDir)
	login := []string{"--grant-type=password", "--username=" + srv.Username, "--password=" + srv.Password}

	results := map[string]map[string]any{}
	for _, tool := range []string{"gatehouse", "kubelogin"} {
		if tool == "kubelogin" && kubelogin == "" {
			continue
		}
		t.Run(tool, func(t *testing.T) {
			run := func(args ...string) result {
				if tool == "kubelogin" {
					return runKubelogin(t, kubelogin, env, args...)
				}
				_, r := runAs(t, bin, "kubectl-oidc_login", "", env, args...)
				return r
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "config")
			if err := os.WriteFile(file, []byte(standaloneKubeconfig(srv)), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(append([]string{"--kubeconfig=" + file}, login...)...)
			if r.code != 0 || !strings.Contains(r.stderr, "You got a valid token until") {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			doc := readYAML(t, file)
			cfg := authProviderConfig(t, doc)
			if cfg["id-token"] == nil || cfg["refresh-token"] == nil {
				t.Fatalf("no tokens written: %v", cfg)
			}
			// kubectl reads the file back.
			if out, err := exec.Command(kubectl, "config", "view", "--kubeconfig="+file, "-o", `jsonpath={.contexts[?(@.name=="prod")].context.namespace}`).CombinedOutput(); err != nil || string(out) != "007" {
				t.Errorf("kubectl config view: %v %s", err, out)
			}
			before, _ := os.ReadFile(file)
			// The token is valid: nothing to do (a login would fail).
			if r := run("--kubeconfig="+file, "--password=wrong", "--grant-type=password", "--username="+srv.Username); r.code != 0 {
				t.Errorf("second run: exit %d: %s", r.code, r.stderr)
			}
			if after, _ := os.ReadFile(file); string(after) != string(before) {
				t.Error("a valid token was replaced")
			}
			// The user is chosen by --context and --user as kubelogin
			// chooses it; a user without the oidc auth-provider is refused.
			for _, args := range [][]string{{"--context=other"}, {"--user=token-user"}, {"--context=nope"}} {
				if r := run(append([]string{"--kubeconfig=" + file}, args...)...); r.code != 1 || !strings.Contains(r.stderr, "setup") {
					t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
				}
			}
			// The kubeconfig from $KUBECONFIG (a list): the file that
			// defines the user is written.
			first := filepath.Join(dir, "first")
			if err := os.WriteFile(first, []byte("apiVersion: v1\nkind: Config\ncurrent-context: prod\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			envList := append(append([]string(nil), env...), "KUBECONFIG="+first+string(os.PathListSeparator)+file)
			cfg["id-token"] = tokenExpiring(time.Now().Add(-time.Minute))
			out, _ := yaml.Marshal(doc)
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			var r2 result
			if tool == "kubelogin" {
				r2 = runKubelogin(t, kubelogin, envList, "--password=wrong", "--grant-type=password", "--username="+srv.Username)
			} else {
				_, r2 = runAs(t, bin, "kubectl-oidc_login", "", envList, "--password=wrong", "--grant-type=password", "--username="+srv.Username)
			}
			if r2.code != 0 { // the refresh token serves
				t.Fatalf("refresh through $KUBECONFIG: exit %d: %s", r2.code, r2.stderr)
			}
			if b, _ := os.ReadFile(first); strings.Contains(string(b), "id-token") {
				t.Error("the tokens went to the first file, which does not define the user")
			}
			results[tool] = readYAML(t, file)
		})
	}
	if kubelogin == "" {
		return
	}
	// Apart from the tokens, both tools leave the same kubeconfig. (An
	// empty preferences: {} is written by kubelogin's client-go and by
	// kubectl before 1.37, not by kubectl 1.37: either reads the same.)
	for _, doc := range results {
		cfg := authProviderConfig(t, doc)
		delete(cfg, "id-token")
		delete(cfg, "refresh-token")
		if p, ok := doc["preferences"].(map[string]any); ok && len(p) == 0 {
			delete(doc, "preferences")
		}
	}
	if !reflect.DeepEqual(results["gatehouse"], results["kubelogin"]) {
		g, _ := yaml.Marshal(results["gatehouse"])
		k, _ := yaml.Marshal(results["kubelogin"])
		t.Errorf("kubeconfig written by gatehouse:\n%s\nby kubelogin:\n%s", g, k)
	}
}
