package cluster

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

const gatehouseYAML = `
issuer: https://login.example.com/dex
storage: {type: memory}
web: {http: 127.0.0.1:5556}
staticClients:
- id: kubernetes
  name: Kubernetes
  secret: kube-secret
  redirectURIs: [http://localhost:8000]
- id: kubectl
  name: kubectl
  public: true
audit:
  enabled: true
  webhook:
    path: /sink
    bearerTokens: [0123456789abcdef0123456789abcdef]
`

func TestUseGatehouseConfig(t *testing.T) {
	cases := []struct {
		name, cluster string
		gatehouse     string
		wantErr       string
		check         func(t *testing.T, c *Config)
	}{
		{
			name:    "defaults come from gatehouse",
			cluster: "teams: {'exampleorg:infra-team': cluster-admin}\n",
			check: func(t *testing.T, c *Config) {
				if c.Issuer.URL != "https://login.example.com/dex" || c.Issuer.ClientID != "kubernetes" || c.Issuer.ClientSecret != "kube-secret" {
					t.Errorf("issuer %+v", c.Issuer)
				}
				if c.Audit.Webhook.URL != "https://login.example.com/sink" || c.Audit.Webhook.BearerToken != "0123456789abcdef0123456789abcdef" {
					t.Errorf("webhook %+v", c.Audit.Webhook)
				}
			},
		},
		{
			name:    "public client has no secret",
			cluster: "issuer: {clientID: kubectl}\n",
			check: func(t *testing.T, c *Config) {
				if c.Issuer.ClientID != "kubectl" || c.Issuer.ClientSecret != "" {
					t.Errorf("issuer %+v", c.Issuer)
				}
			},
		},
		{name: "unknown client", cluster: "issuer: {clientID: k8s}\n", wantErr: `no static client "k8s" (it has: kubectl, kubernetes)`},
		{name: "other issuer", cluster: "issuer: {url: https://login.example.com}\n", wantErr: "differs from gatehouse's issuer"},
		{
			name: "sink off", cluster: "{}\n",
			gatehouse: strings.Replace(gatehouseYAML, "enabled: true", "enabled: false", 1),
			wantErr:   "audit sink is off",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.gatehouse
			if src == "" {
				src = gatehouseYAML
			}
			g, err := config.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse([]byte(tc.cluster))
			if err != nil {
				t.Fatal(err)
			}
			err = c.UseGatehouseConfig(g)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Complete(); err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
