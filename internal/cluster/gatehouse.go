package cluster

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// UseGatehouseConfig fills what cluster.yaml leaves out from gatehouse's
// own configuration (the Dex-compatible config.yaml `gatehouse serve`
// reads), so the two cannot disagree: the issuer URL, the client (which
// must be one of its staticClients), that client's secret for a
// confidential client, and the audit sink's path and bearer token. Values
// already set in c win, but a client id or issuer URL that gatehouse does
// not have is an error. Call it before Complete.
func (c *Config) UseGatehouseConfig(g *config.Config) error {
	if c.Issuer.URL == "" {
		c.Issuer.URL = g.Issuer
	} else if strings.TrimSuffix(c.Issuer.URL, "/") != strings.TrimSuffix(g.Issuer, "/") {
		return fmt.Errorf("issuer.url %q differs from gatehouse's issuer %q: kube-apiserver would reject every token", c.Issuer.URL, g.Issuer)
	}

	ids := make([]string, 0, len(g.StaticClients))
	var client *config.Client
	for i := range g.StaticClients {
		sc := &g.StaticClients[i]
		ids = append(ids, sc.ID)
		if sc.ID == c.Issuer.ClientID || (c.Issuer.ClientID == "" && sc.ID == DefaultClientID) {
			client = sc
		}
	}
	sort.Strings(ids)
	if client == nil && c.Issuer.ClientID == "" && len(g.StaticClients) == 1 {
		client = &g.StaticClients[0]
	}
	if client == nil {
		want := c.Issuer.ClientID
		if want == "" {
			want = DefaultClientID
		}
		return fmt.Errorf("issuer.clientID: gatehouse has no static client %q (it has: %s); set issuer.clientID to one of them", want, strings.Join(ids, ", "))
	}
	c.Issuer.ClientID = client.ID
	if c.Issuer.ClientSecret == "" && !client.Public {
		c.Issuer.ClientSecret = client.Secret
	}
	if err := c.checkGatehouseCluster(g); err != nil {
		return err
	}

	w := &c.Audit.Webhook
	if w.Disabled {
		return nil
	}
	if !g.Audit.Enabled {
		return fmt.Errorf("audit.webhook: gatehouse's audit sink is off (audit.enabled is false in its config); turn it on there, or set audit.webhook.disabled: true here")
	}
	if w.URL == "" {
		u, err := url.Parse(c.Issuer.URL)
		if err != nil {
			return fmt.Errorf("issuer.url: %w", err)
		}
		path := g.Audit.Webhook.Path
		if path == "" {
			path = config.DefaultAuditWebhookPath
		}
		w.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: path}).String()
	}
	if w.BearerToken == "" && w.BearerTokenFile == "" && w.ClientCertFile == "" && len(g.Audit.Webhook.BearerTokens) > 0 {
		w.BearerToken = g.Audit.Webhook.BearerTokens[0]
	}
	return nil
}

// checkGatehouseCluster refuses a gatehouse config that would refuse this
// cluster's token exchange: the grant turned off, or a client with the
// cluster's ID that does not trust the plugin's client. A missing client
// is fine: the rendered gatehouse-client.yaml adds it.
func (c *Config) checkGatehouseCluster(g *config.Config) error {
	if c.Cluster == "" {
		return nil
	}
	if len(g.OAuth2.GrantTypes) > 0 && !slices.Contains(g.OAuth2.GrantTypes, config.GrantTokenExchange) {
		return fmt.Errorf("cluster: gatehouse's oauth2.grantTypes leaves out %s, which per-cluster tokens need; add it there", config.GrantTokenExchange)
	}
	for _, sc := range g.StaticClients {
		if sc.ID == c.Cluster && !slices.Contains(sc.TrustedPeers, c.Issuer.ClientID) {
			return fmt.Errorf("cluster: gatehouse's static client %q does not list %q in its trustedPeers, so the plugin cannot get a token for this cluster; add it there (see the rendered %s)", c.Cluster, c.Issuer.ClientID, FileGatehouseClient)
		}
	}
	return nil
}
