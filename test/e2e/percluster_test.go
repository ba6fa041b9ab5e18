package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// exchangeFor exchanges a login's ID token for one whose audience is a
// cluster's client (RFC 8693), as the plugin's client.
func exchangeFor(g *gatehouse, idToken, audience string) (string, error) {
	form := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {idToken},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:id_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
		"audience":             {audience},
	}
	req, err := http.NewRequest(http.MethodPost, g.issuer.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(g.issuer.ClientID), url.QueryEscape(g.issuer.ClientSecret))
	resp, err := g.issuer.HTTPClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
		return "", fmt.Errorf("token exchange for %s: %s: %s", audience, resp.Status, body)
	}
	return r.AccessToken, nil
}

// TestPerClusterTokens: two kube-apiservers, each rendered with `cluster:`
// (its own audience, a client of gatehouse that trusts the plugin's), one
// wired by the structured configuration, the other by the legacy flags. One
// browser login, then kubectl works on both clusters with no second
// browser; cluster A's token replayed against cluster B is 401, and so
// is the login's own token (aud kubernetes) on either.
func TestPerClusterTokens(t *testing.T) {
	names := []string{"cluster-a", "cluster-b"}
	var clients []issuer.Client
	for _, name := range names {
		// The issuer's side of each cluster: what gatehouse-client.yaml
		// renders for it.
		sc := (&cluster.Config{Cluster: name, Name: name, Issuer: cluster.Issuer{ClientID: "kubernetes"}}).GatehouseClient()
		clients = append(clients, issuer.Client{ID: sc.ID, Name: sc.Name, Public: sc.Public, TrustedPeers: sc.TrustedPeers})
	}
	g := startGatehouse(t, time.Hour, clients...)
	g.github.SetLogin("octocat")
	login, err := g.login(t, "octocat")
	if err != nil {
		t.Fatalf("login: %v", err)
	}

	clusters := map[string]*kube.Cluster{}
	for _, name := range names {
		cfg := seedConfig(g.issuer.URL, g.issuer.CAPEM)
		cfg.Issuer.ClientSecret = g.issuer.ClientSecret
		cfg.Name, cfg.Cluster = name, name
		// Cluster A reads the structured configuration, cluster B the
		// legacy --oidc-* flags (--oidc-client-id is then its audience).
		mode := cluster.ModeStructured
		if name == "cluster-b" {
			mode = cluster.ModeFlags
		}
		c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: mode})
		c.AdminKubectl(t, "create", "namespace", "web")
		c.AdminKubectl(t, "apply", "--server-side", "--field-manager=gatehouse", "-f", filepath.Join(c.Config.NodeDir, cluster.FileRBAC))
		// Ready once kube-apiserver has the issuer's keys: a token for
		// this cluster's audience is accepted.
		tok, err := exchangeFor(g, login.IDToken, name)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := c.TokenKubeconfig("ready.kubeconfig", tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := kube.WaitFor(30*time.Second, func() error { _, err := whoamiAs(c, kc); return err }); err != nil {
			t.Fatalf("%s never accepted a token for its audience: %v", name, err)
		}
		clusters[name] = c
	}
	a, b := clusters["cluster-a"], clusters["cluster-b"]

	// The team kubeconfigs, one per cluster, written by `gatehouse
	// kubeconfig` from each cluster.yaml; one token cache, one browser.
	work := t.TempDir()
	binDir := filepath.Join(work, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"kubectl": bins.Kubectl, "kubectl-gatehouse": goBinary(t, "kubectl-gatehouse")} {
		if err := os.Symlink(target, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	script, countFile := browserScript(t, work)
	cacheDir := filepath.Join(work, "token-cache")
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
	team := map[string]string{}
	for name, c := range clusters {
		configFile := filepath.Join(work, name+".yaml")
		writeClusterYAML(t, configFile, c.Config)
		team[name] = filepath.Join(work, name+".kubeconfig")
		out, err := exec.Command(goBinary(t, "gatehouse"), "kubeconfig", "--config", configFile, "-o", team[name],
			"--arg=--browser-command="+script, "--arg=--token-cache-dir="+cacheDir,
			"--arg=--listen-address=127.0.0.1:0", "--arg=--authentication-timeout-sec=60").CombinedOutput()
		if err != nil {
			t.Fatalf("gatehouse kubeconfig for %s: %v\n%s", name, err, out)
		}
		if b, _ := os.ReadFile(team[name]); !strings.Contains(string(b), "--exchange-audience="+name) {
			t.Fatalf("%s's kubeconfig does not ask for its audience:\n%s", name, b)
		}
	}

	// Cluster A: the browser login (at a terminal, as a person runs it).
	var w whoami
	if err := kube.WaitFor(40*time.Second, func() error {
		o, err := a.KubectlInTerminal(context.Background(), team["cluster-a"], env, "auth", "whoami", "-o", "json")
		if err != nil {
			return err
		}
		i := strings.Index(o, "{")
		if i < 0 {
			return fmt.Errorf("no JSON in %q", o)
		}
		return jsonUnmarshal(o[i:], &w)
	}); err != nil {
		t.Fatalf("kubectl auth whoami on cluster-a: %v", err)
	}
	if w.Status.UserInfo.Username != "oidc:octocat" {
		t.Errorf("cluster-a whoami %+v", w.Status.UserInfo)
	}
	// Cluster B: no second browser.
	var wb whoami
	o, _, err := b.Kubectl(context.Background(), team["cluster-b"], env, "auth", "whoami", "-o", "json")
	if err != nil || jsonUnmarshal(o, &wb) != nil {
		t.Fatalf("kubectl on cluster-b: %v\n%s", err, o)
	}
	if wb.Status.UserInfo.Username != "oidc:octocat" {
		t.Errorf("cluster-b whoami %+v", wb.Status.UserInfo)
	}
	if n := browserRuns(countFile); n != 1 {
		t.Errorf("the browser ran %d times for two clusters, want 1", n)
	}

	// Replays: cluster A's token on cluster B, and the login's token
	// (aud kubernetes, what every cluster used to accept) on both.
	tokA := pluginToken(t, filepath.Join(binDir, "kubectl-gatehouse"), team["cluster-a"], env)
	for _, tt := range []struct {
		name  string
		c     *kube.Cluster
		token string
		ok    bool
	}{
		{"cluster A's token on A", a, tokA, true},
		{"cluster A's token on B", b, tokA, false},
		{"the login's token on A", a, login.IDToken, false},
		{"the login's token on B", b, login.IDToken, false},
	} {
		kc, err := tt.c.TokenKubeconfig("replay.kubeconfig", tt.token)
		if err != nil {
			t.Fatal(err)
		}
		_, stderr, err := tt.c.Kubectl(context.Background(), kc, nil, "get", "ns", "-o", "name")
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !tt.ok && (err == nil || !strings.Contains(stderr, "Unauthorized")):
			t.Errorf("%s: err %v, want 401 Unauthorized\n%s", tt.name, err, stderr)
		}
	}
}

// pluginToken runs the kubeconfig's exec command line (kubectl gatehouse
// get-token ...) and returns the token it prints: what kubectl sends.
func pluginToken(t *testing.T, plugin, kubeconfig string, env []string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, ai := range kc.AuthInfos {
		args = ai.Exec.Args[1:] // after "gatehouse" (kubectl gatehouse ...)
	}
	cmd := exec.Command(plugin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("get-token: %v", err)
	}
	var ec struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &ec); err != nil || ec.Status.Token == "" {
		t.Fatalf("get-token printed %q: %v", out, err)
	}
	return ec.Status.Token
}
