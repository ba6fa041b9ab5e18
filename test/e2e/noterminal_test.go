package e2e

import (
	"context"
	"encoding/base64"
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

// kubectlNoTerminal runs kubectl the way an IDE, k9s, Lens or a script
// does: no terminal anywhere, standard input closed (a pipe whose writer
// is gone), a minimal environment plus env. client-go then runs exec
// plugins with spec.interactive false and no standard input.
func kubectlNoTerminal(c *kube.Cluster, kubeconfig string, env []string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	r, w, err := os.Pipe()
	if err != nil {
		return "", "", err
	}
	w.Close()
	defer r.Close()
	cmd.Stdin = r
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second // a plugin still running holds stderr
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// seedKubeconfig is the seed article's oidc-kubeconfig as written there:
// the cluster, the context default-context and the user me-via-oidc whose
// exec (client.authentication.k8s.io/v1beta1, no interactiveMode) runs
// `kubectl oidc-login get-token` with the issuer, client, secret and
// extra scopes. Nothing else: the issuer's CA comes from SSL_CERT_FILE,
// the browser is the desktop's (xdg-open), the cache is kubelogin's
// default (~/.kube/cache/oidc-login), the redirect 127.0.0.1:8000.
func seedKubeconfig(c *kube.Cluster, clusterName, issuerURL, clientID, secret string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: %s
    server: %s
  name: %s
contexts:
- context:
    cluster: %s
    user: me-via-oidc
  name: default-context
current-context: default-context
users:
- name: me-via-oidc
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubectl
      args:
      - oidc-login
      - get-token
      - --oidc-issuer-url=%s
      - --oidc-client-id=%s
      - --oidc-client-secret=%s
      - --oidc-extra-scope=groups,profile
`, base64.StdEncoding.EncodeToString(c.CAPEM), c.Server, clusterName, clusterName, issuerURL, clientID, secret)
}

// neverKubeconfig is a v1 kubeconfig with interactiveMode: Never (what a
// team hands out for IDEs and scripts), running `kubectl gatehouse
// get-token` with the issuer's CA file and a --browser-command.
func neverKubeconfig(c *kube.Cluster, clusterName, issuerURL, clientID, secret, caFile string, extra ...string) string {
	args := []string{"gatehouse", "get-token", "--oidc-issuer-url=" + issuerURL, "--oidc-client-id=" + clientID,
		"--oidc-client-secret=" + secret, "--oidc-extra-scope=groups,profile", "--certificate-authority=" + caFile}
	args = append(args, extra...)
	var b strings.Builder
	for _, a := range args {
		fmt.Fprintf(&b, "      - %q\n", a)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %s
  cluster:
    certificate-authority-data: %s
    server: %s
contexts:
- name: %s
  context: {cluster: %s, user: team}
current-context: %s
users:
- name: team
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      interactiveMode: Never
      command: kubectl
      args:
%s`, clusterName, base64.StdEncoding.EncodeToString(c.CAPEM), c.Server, clusterName, clusterName, clusterName, b.String())
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSeedScenarioWithoutTerminal is the seed scenario as users' tools
// run it: kubectl with no terminal and standard input closed (Lens, k9s,
// IDE plugins, scripts), gatehouse as the issuer and as the plugin, with
// the seed article's v1beta1 kubeconfig unchanged and a v1 kubeconfig
// with interactiveMode: Never. Both log in through the browser (headless
// Chromium, started as xdg-open for the seed kubeconfig and through
// --browser-command for the other), are Forbidden before the team
// binding and allowed after, show in the audit trail, open no second
// browser while a token is valid, and refresh silently after expiry. The
// two kubeconfigs (two clusters of one issuer and client) hold separate
// sessions, and a third file with the seed's user shares the seed's: all
// keep refreshing without a browser. A user outside the org is refused at
// once with the issuer's reason, not after the timeout.
func TestSeedScenarioWithoutTerminal(t *testing.T) {
	const ttl = 75 * time.Second // the plugin refreshes 60 s (its margin) before expiry
	g := startGatehouse(t, ttl)
	g.github.SetLogin("octocat")
	cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
	cfg.Issuer.ClientSecret = g.issuer.ClientSecret
	// The seed article's KubeOne oidc settings are kube-apiserver's flags.
	c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: cluster.ModeFlags})
	c.AdminKubectl(t, "create", "namespace", "web") // the rendered RBAC binds a team there
	waitOIDCReady(t, g, c)

	binDir := filepath.Join(c.Dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := goBinary(t, "kubectl-gatehouse")
	// Two headless Chromiums with their own profiles: the desktop's
	// browser (xdg-open, for kubeconfigs without --browser-command), which
	// the plugin leaves running as it would a person's browser, and the
	// --browser-command one, which it stops after the login.
	for _, d := range []string{"desktop", "command"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	desktop, desktopCount := browserScript(t, filepath.Join(c.Dir, "desktop"))
	script, commandCount := browserScript(t, filepath.Join(c.Dir, "command"))
	for name, target := range map[string]string{
		"kubectl": bins.Kubectl, "kubectl-gatehouse": plugin, "kubectl-oidc_login": plugin, "xdg-open": desktop,
	} {
		if err := os.Symlink(target, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	envFor := func(home string) []string {
		return []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home,
			"SSL_CERT_FILE=" + g.issuer.CAFile, "DISPLAY=:0"}
	}
	home := filepath.Join(c.Dir, "home-octocat")
	env := envFor(home)
	iss, id, secret := g.issuer.URL, g.issuer.ClientID, g.issuer.ClientSecret

	seed := writeFile(t, filepath.Join(c.Dir, "oidc-kubeconfig"), seedKubeconfig(c, "example", iss, id, secret))
	// The seed's user in a second file for another cluster name: the same
	// exec, so the same cache entry (kubelogin's key).
	seed2 := writeFile(t, filepath.Join(c.Dir, "oidc-kubeconfig-2"), seedKubeconfig(c, "example-2", iss, id, secret))
	never := writeFile(t, filepath.Join(c.Dir, "team-never.kubeconfig"),
		neverKubeconfig(c, "team", iss, id, secret, g.issuer.CAFile, "--browser-command="+script, "--authentication-timeout-sec=60"))
	files := map[string]string{"seed": seed, "seed-2": seed2, "never": never}

	getNS := func(which string) error {
		_, stderr, err := kubectlNoTerminal(c, files[which], env, "get", "ns", "-o", "name")
		if err != nil {
			return fmt.Errorf("%s: %w (stderr %q)", which, err, stderr)
		}
		return nil
	}
	wantRuns := func(step string, want int) {
		t.Helper()
		if n := browserRuns(desktopCount) + browserRuns(commandCount); n != want {
			t.Errorf("%s: the browser ran %d times, want %d", step, n, want)
		}
	}

	// Login: each kubeconfig with its own cache entry logs in through the
	// browser; the user is oidc:octocat, Forbidden before the binding.
	for i, which := range []string{"seed", "never"} {
		err := getNS(which)
		if err == nil || !strings.Contains(err.Error(), "Forbidden") || !strings.Contains(err.Error(), `"oidc:octocat"`) {
			t.Fatalf("first kubectl with the %s kubeconfig: want Forbidden for oidc:octocat, got %v", which, err)
		}
		wantRuns("login with the "+which+" kubeconfig", i+1)
	}
	if err := getNS("seed-2"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("seed-2 before the binding: want Forbidden, got %v", err)
	}
	wantRuns("the second seed file (same cache entry)", 2)

	// The team binding: allowed, and no browser while the tokens are valid.
	c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
	loggedIn := time.Now()
	for _, which := range []string{"seed", "never", "seed-2"} {
		if err := getNS(which); err != nil {
			t.Fatalf("after the binding: %v", err)
		}
	}
	wantRuns("after the binding", 2)

	// The audit trail: the log file and gatehouse's sink.
	waitListAudited(t, g, c)

	// Silent refresh after expiry, twice (the second time with the
	// rotated refresh tokens), for both sessions and the shared entry.
	// Round 1 after the first tokens expired; round 2 once the tokens of
	// round 1 are inside the 60 s margin (valid for 75 s: after 15 s).
	wake := loggedIn.Add(ttl + 2*time.Second)
	for round := range 2 {
		time.Sleep(time.Until(wake))
		for _, which := range []string{"seed", "never", "seed-2"} {
			if err := getNS(which); err != nil {
				t.Fatalf("refresh round %d: %v", round+1, err)
			}
		}
		wantRuns(fmt.Sprintf("refresh round %d", round+1), 2)
		wake = time.Now().Add(ttl - 60*time.Second + time.Second)
	}

	// A user outside the org: refused at once, with the issuer's reason,
	// through both kubeconfigs (another person's home, so no cache).
	g.github.SetLogin("outsider")
	outsiderDir := filepath.Join(c.Dir, "outsider")
	if err := os.MkdirAll(outsiderDir, 0o700); err != nil {
		t.Fatal(err)
	}
	outBin := filepath.Join(outsiderDir, "bin")
	for _, d := range []string{outBin, filepath.Join(outsiderDir, "desktop"), filepath.Join(outsiderDir, "command")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outDesktop, outDesktopCount := browserScript(t, filepath.Join(outsiderDir, "desktop"))
	outScript, outCommandCount := browserScript(t, filepath.Join(outsiderDir, "command"))
	for name, target := range map[string]string{"kubectl": bins.Kubectl, "kubectl-gatehouse": plugin, "kubectl-oidc_login": plugin, "xdg-open": outDesktop} {
		if err := os.Symlink(target, filepath.Join(outBin, name)); err != nil {
			t.Fatal(err)
		}
	}
	outEnv := []string{"PATH=" + outBin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + filepath.Join(outsiderDir, "home"),
		"SSL_CERT_FILE=" + g.issuer.CAFile, "DISPLAY=:0"}
	outNever := writeFile(t, filepath.Join(outsiderDir, "team-never.kubeconfig"),
		neverKubeconfig(c, "team", iss, id, secret, g.issuer.CAFile, "--browser-command="+outScript, "--authentication-timeout-sec=100"))
	for i, kc := range []string{seed, outNever} {
		start := time.Now()
		_, stderr, err := kubectlNoTerminal(c, kc, outEnv, "get", "ns")
		took := time.Since(start)
		if err == nil {
			t.Fatalf("outsider got in with %s", kc)
		}
		if strings.Contains(stderr, "timed out") ||
			!strings.Contains(stderr, "the issuer refused the login (access_denied): ") || !strings.Contains(stderr, "signed in to GitHub as outsider") {
			t.Errorf("outsider with %s: want the issuer's reason at once, got (after %s):\n%s", filepath.Base(kc), took.Round(time.Second), stderr)
		}
		if n := browserRuns(outDesktopCount) + browserRuns(outCommandCount); n != i+1 {
			t.Errorf("outsider: the browser ran %d times, want %d", n, i+1)
		}
	}
}
