package cluster

import (
	"fmt"
)

// StaticClient is the staticClients entry of gatehouse's config.yaml
// (Dex's keys) for a cluster with its own audience.
type StaticClient struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Public bool   `json:"public"`
	// TrustedPeers lists the plugin's client: it may exchange its ID
	// tokens for tokens whose audience is this client.
	TrustedPeers []string `json:"trustedPeers"`
}

// GatehouseClient is the cluster's own client for gatehouse's config: a
// public client (no secret: it logs nobody in by itself) that trusts the
// plugin's client. Only for a Config with Cluster set.
func (c *Config) GatehouseClient() StaticClient {
	return StaticClient{
		ID:           c.Cluster,
		Name:         "Kubernetes cluster " + c.Name,
		Public:       true,
		TrustedPeers: []string{c.Issuer.ClientID},
	}
}

// renderGatehouseClient is the snippet for gatehouse's config.yaml.
func (c *Config) renderGatehouseClient() ([]byte, error) {
	b, err := marshal(struct {
		StaticClients []StaticClient `json:"staticClients"`
	}{[]StaticClient{c.GatehouseClient()}})
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf(`# gatehouse's config.yaml: add this entry to staticClients, and keep
# urn:ietf:params:oauth:grant-type:token-exchange in oauth2.grantTypes (or
# leave grantTypes out). The plugin's client %q may then exchange
# a login's ID token for one whose audience is %q: the only
# audience this cluster accepts, so a token for another cluster is refused.
`, c.Issuer.ClientID, c.Cluster)
	return append([]byte(head), b...), nil
}
