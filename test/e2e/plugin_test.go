package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// browserScript writes a --browser-command that counts its runs in a file
// and opens the URL in headless Chromium, which follows the issuer's
// and GitHub's redirects back to the plugin's loopback listener.
func browserScript(t *testing.T, dir string) (script, countFile string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed for the browser login (Debian package chromium; .ci/run installs it): %v", err)
	}
	countFile = filepath.Join(dir, "browser-runs")
	script = filepath.Join(dir, "browser.sh")
	body := fmt.Sprintf(`#!/bin/sh
echo "$1" >> %q
exec %q --headless --no-sandbox --disable-gpu --ignore-certificate-errors \
  --user-data-dir=%q --virtual-time-budget=20000 --dump-dom "$1" >/dev/null 2>&1
`, countFile, chromium, filepath.Join(dir, "chromium-profile"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, countFile
}

func browserRuns(countFile string) int {
	b, err := os.ReadFile(countFile)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestPluginScenario is the seed article's story as a team member lives
// it: kubectl runs the kubeconfig that `gatehouse kubeconfig` writes, whose
// exec runs `kubectl gatehouse get-token`; the first command logs in
// through headless Chromium (issuer pages, GitHub, loopback redirect), the
// next ones open no browser, and after the ID token expires kubectl goes
// on working through the refresh token, still without a browser.
func TestPluginScenario(t *testing.T) {
	for _, mode := range []string{cluster.ModeStructured, cluster.ModeFlags} {
		t.Run(mode, func(t *testing.T) {
			const ttl = 20 * time.Second
			g := startGatehouse(t, ttl)
			g.github.SetLogin("octocat")
			cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
			cfg.Issuer.ClientSecret = g.issuer.ClientSecret
			c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: mode})
			c.AdminKubectl(t, "create", "namespace", "web")
			c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))

			waitOIDCReady(t, g, c)

			// kubectl finds the plugin (kubectl-gatehouse) and itself on PATH.
			binDir := filepath.Join(c.Dir, "bin")
			if err := os.MkdirAll(binDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, target := range map[string]string{"kubectl": bins.Kubectl, "kubectl-gatehouse": goBinary(t, "kubectl-gatehouse")} {
				if err := os.Symlink(target, filepath.Join(binDir, name)); err != nil {
					t.Fatal(err)
				}
			}
			script, countFile := browserScript(t, c.Dir)
			cacheDir := filepath.Join(c.Dir, "token-cache")

			// The team kubeconfig, written by `gatehouse kubeconfig` from the
			// same cluster.yaml the cluster was rendered from.
			configFile := filepath.Join(c.Dir, "cluster.yaml")
			writeClusterYAML(t, configFile, c.Config)
			team := filepath.Join(c.Dir, "team.kubeconfig")
			out, err := exec.Command(goBinary(t, "gatehouse"), "kubeconfig", "--config", configFile, "-o", team,
				"--arg=--browser-command="+script, "--arg=--token-cache-dir="+cacheDir,
				"--arg=--listen-address=127.0.0.1:0", "--arg=--token-expiry-margin=5s",
				"--arg=--authentication-timeout-sec=60").CombinedOutput()
			if err != nil {
				t.Fatalf("gatehouse kubeconfig: %v\n%s", err, out)
			}
			env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
			kubectl := func(args ...string) (string, error) {
				o, _, err := c.Kubectl(context.Background(), team, env, args...)
				return o, err
			}

			// The first command logs in through the browser (the
			// issuer's pages, GitHub, the loopback redirect); run at a
			// terminal here (TestSeedScenarioWithoutTerminal runs it
			// without one). The identity is the seed's.
			var w whoami
			if err := kube.WaitFor(40*time.Second, func() error {
				o, err := c.KubectlInTerminal(context.Background(), team, env, "auth", "whoami", "-o", "json")
				if err != nil {
					return err
				}
				i := strings.Index(o, "{")
				if i < 0 {
					return fmt.Errorf("no JSON in %q", o)
				}
				return jsonUnmarshal(o[i:], &w)
			}); err != nil {
				t.Fatalf("kubectl auth whoami through the plugin: %v", err)
			}
			loggedInAt := time.Now()
			if w.Status.UserInfo.Username != "oidc:octocat" || !contains(w.Status.UserInfo.Groups, "oidc:exampleorg:infra-team") {
				t.Errorf("whoami %+v", w.Status.UserInfo)
			}
			if n := browserRuns(countFile); n != 1 {
				t.Errorf("the browser ran %d times for the first login, want 1", n)
			}

			// Second command: the cached token, no browser.
			if o, err := kubectl("get", "ns", "-o", "name"); err != nil || !strings.Contains(o, "namespace/default") {
				t.Fatalf("second kubectl: %v\n%s", err, o)
			}
			if n := browserRuns(countFile); n != 1 {
				t.Errorf("the second kubectl opened a browser (%d runs)", n)
			}

			// After the ID token expires: refresh, no browser.
			time.Sleep(time.Until(loggedInAt.Add(ttl + 2*time.Second)))
			if o, err := kubectl("get", "ns", "-o", "name"); err != nil || !strings.Contains(o, "namespace/default") {
				t.Fatalf("kubectl after the ID token expired: %v\n%s", err, o)
			}
			if n := browserRuns(countFile); n != 1 {
				t.Errorf("expiry opened a browser (%d runs); the refresh token should have been used", n)
			}

			// `kubectl gatehouse setup`, given the cluster's own settings
			// (the rendered file or flags), predicts what kube-apiserver
			// showed above.
			setupArgs := []string{"setup",
				"--oidc-issuer-url=" + g.issuer.URL, "--oidc-client-id=" + g.issuer.ClientID, "--oidc-client-secret=" + g.issuer.ClientSecret,
				"--oidc-extra-scope=groups,profile,offline_access", "--certificate-authority=" + filepath.Join(c.Config.NodeDir, cluster.FileIssuerCA),
				"--browser-command=" + script, "--listen-address=127.0.0.1:0",
			}
			if mode == cluster.ModeStructured {
				setupArgs = append(setupArgs, "--authentication-config="+filepath.Join(c.Config.NodeDir, cluster.FileAuthenticationConfig))
			} else {
				for _, f := range c.Config.LegacyOIDCFlags(true) {
					switch f.Name {
					case "oidc-issuer-url", "oidc-client-id", "oidc-username-claim", "oidc-username-prefix", "oidc-groups-claim", "oidc-groups-prefix":
						setupArgs = append(setupArgs, "--apiserver-"+f.Name+"="+f.Value)
					}
				}
			}
			setup := exec.Command(filepath.Join(binDir, "kubectl-gatehouse"), setupArgs...)
			setup.Env = append(os.Environ(), "HOME="+filepath.Join(c.Dir, "home"))
			so, err := setup.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl gatehouse setup: %v\n%s", err, so)
			}
			for _, want := range []string{"oidc:octocat", "oidc:exampleorg:infra-team"} {
				if !strings.Contains(string(so), want) {
					t.Errorf("setup does not predict %q:\n%s", want, so)
				}
			}
		})
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// waitOIDCReady waits until kube-apiserver accepts the issuer's tokens (it
// fetches the issuer's keys in the background after start), so later
// steps can count browser runs exactly.
func waitOIDCReady(t *testing.T, g *gatehouse, c *kube.Cluster) {
	t.Helper()
	tok, err := g.login(t, "octocat")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	kc, err := c.TokenKubeconfig("ready.kubeconfig", tok.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.WaitFor(30*time.Second, func() error {
		_, err := whoamiAs(c, kc)
		return err
	}); err != nil {
		t.Fatalf("kube-apiserver never accepted the issuer's tokens: %v", err)
	}
}
