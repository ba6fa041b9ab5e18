package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// perCluster renders the per-cluster example and returns its files.
func perCluster(t *testing.T) (*Config, map[string]string) {
	t.Helper()
	return renderStrings(t, "per-cluster")
}

func renderStrings(t *testing.T, name string) (*Config, map[string]string) {
	t.Helper()
	c, files := renderSeed(t, name)
	out := map[string]string{}
	for n, f := range files {
		out[n] = string(f.Data)
	}
	return c, out
}

// The rendered client is what gatehouse loads: pasted into a config it
// passes gatehouse's own validation, and then the cluster check agrees.
func TestGatehouseClientLoads(t *testing.T) {
	c, files := perCluster(t)
	snippet := files[FileGatehouseClient]
	body := snippet[strings.Index(snippet, "staticClients:\n"):]
	src := strings.Replace(gatehouseYAML, "issuer: https://login.example.com/dex", "issuer: https://gatehouse.example.com", 1)
	src = strings.Replace(src, "staticClients:\n", body, 1)
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := config.Load(file)
	if err != nil {
		t.Fatalf("gatehouse refuses the rendered client: %v\n%s", err, src)
	}
	var found bool
	for _, sc := range g.StaticClients {
		if sc.ID == "k8s-prod-eu" {
			found = sc.Public && len(sc.TrustedPeers) == 1 && sc.TrustedPeers[0] == "kubernetes"
		}
	}
	if !found {
		t.Fatalf("client k8s-prod-eu not loaded as public, trusting kubernetes: %+v", g.StaticClients)
	}
	// The same cluster.yaml, checked against that gatehouse config.
	c2, _ := Parse([]byte("cluster: k8s-prod-eu\nissuer: {clientID: kubernetes}\n"))
	if err := c2.UseGatehouseConfig(g); err != nil {
		t.Fatalf("UseGatehouseConfig: %v", err)
	}
	if c.Audience() != "k8s-prod-eu" {
		t.Errorf("Audience() = %q", c.Audience())
	}
}

// What the per-cluster render changes, beside the new file: the only
// audience is the cluster's, and the kubeconfig asks for it under a user
// entry of its own.
func TestPerClusterRender(t *testing.T) {
	_, files := perCluster(t)
	for file, want := range map[string][]string{
		FileAuthenticationConfig: {"audiences:\n    - k8s-prod-eu\n"},
		FileAPIServerFlags:       {"--oidc-client-id=k8s-prod-eu\n"},
		FileKubeconfig:           {"--oidc-client-id=kubernetes", "--exchange-audience=k8s-prod-eu", "name: oidc-k8s-prod-eu", "name: k8s-prod-eu"},
	} {
		for _, w := range want {
			if !strings.Contains(files[file], w) {
				t.Errorf("%s lacks %q:\n%s", file, w, files[file])
			}
		}
	}
	if strings.Contains(files[FileAuthenticationConfig], "- kubernetes") {
		t.Errorf("the cluster accepts the plugin's own audience:\n%s", files[FileAuthenticationConfig])
	}
	_, seed := renderStrings(t, "seed")
	if _, ok := seed[FileGatehouseClient]; ok || strings.Contains(seed[FileKubeconfig], "exchange-audience") {
		t.Error("a cluster without cluster: got a per-cluster client")
	}
}

func TestPerClusterValidation(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"cluster: kubernetes\n", `cluster: "kubernetes" is the plugin's own client`},
		{"cluster: 'prod eu'\n", "must be a client ID without spaces"},
		{"cluster: prod\nissuer: {audiences: [prod, kubernetes]}\n", `issuer.audiences: lists the plugin's client "kubernetes"`},
	} {
		c, err := Parse([]byte(tt.yaml + "audit: {webhook: {disabled: true}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		c.Issuer.URL = "https://gatehouse.example.com"
		err = c.Complete()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want %q", tt.yaml, err, tt.want)
		}
	}
}

// A gatehouse config that would refuse the exchange is an error naming
// what to change there.
func TestPerClusterGatehouseDisagrees(t *testing.T) {
	for _, tt := range []struct{ name, edit, want string }{
		{"client does not trust the plugin's", "- id: kubectl\n", "- id: k8s-prod-eu\n  name: prod\n  public: true\n  trustedPeers: [kubectl]\n- id: kubectl\n"},
		{"grant off", "audit:\n", "oauth2: {grantTypes: [authorization_code, refresh_token]}\naudit:\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(gatehouseYAML, tt.edit, tt.want, 1)
			g, err := config.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := Parse([]byte("cluster: k8s-prod-eu\n"))
			err = c.UseGatehouseConfig(g)
			wantMsg := map[string]string{"grant off": "oauth2.grantTypes leaves out urn:ietf:params:oauth:grant-type:token-exchange",
				"client does not trust the plugin's": `static client "k8s-prod-eu" does not list "kubernetes" in its trustedPeers`}[tt.name]
			if err == nil || !strings.Contains(err.Error(), wantMsg) {
				t.Errorf("err = %v; want %q", err, wantMsg)
			}
		})
	}
}
