package cluster

import (
	"fmt"
	"net/url"
)

// FileProxyValues is the Helm values file for the chart's proxy
// (deploy/helm/gatehouse, proxy.*), written with Proxy.
const FileProxyValues = "proxy-values.yaml"

// ProxyValues are the Helm chart's proxy values that say what cluster.yaml
// says: the cluster's name (the audit source), the proxy's host, the
// issuer and claims its AuthenticationConfiguration is rendered from, and
// the audit sink. Credentials stay out: the chart reads the sink's token
// from a Secret (proxy.audit.tokenSecret) and the serving certificate from
// cert-manager or a Secret (proxy.tls).
func (c *Config) ProxyValues() (map[string]any, error) {
	if c.Proxy == nil {
		return nil, fmt.Errorf("proxy.url: not set")
	}
	u, err := url.Parse(c.Proxy.URL)
	if err != nil {
		return nil, fmt.Errorf("proxy.url: %w", err)
	}
	issuerCA, err := c.readPEM("issuer.caFile", c.Issuer.CAFile, c.Issuer.CAData)
	if err != nil {
		return nil, err
	}
	issuer := map[string]any{"url": c.Issuer.URL, "clientID": c.Issuer.ClientID, "audiences": c.Issuer.Audiences}
	if len(issuerCA) > 0 {
		issuer["caData"] = string(issuerCA)
	}
	claim := func(m ClaimMapping) map[string]any { return map[string]any{"claim": m.Claim, "prefix": *m.Prefix} }
	proxy := map[string]any{
		"enabled":     true,
		"clusterName": c.Name,
		"host":        u.Hostname(),
		"cluster": map[string]any{
			"issuer": issuer,
			"claims": map[string]any{"username": claim(c.Claims.Username), "groups": claim(c.Claims.Groups)},
		},
	}
	if w := c.Audit.Webhook; !w.Disabled {
		audit := map[string]any{"url": w.URL}
		ca, err := c.readPEM("audit.webhook.caFile", w.CAFile, w.CAData)
		if err != nil {
			return nil, err
		}
		if len(ca) > 0 {
			audit["caData"] = string(ca)
		}
		proxy["audit"] = audit
	}
	return map[string]any{"proxy": proxy}, nil
}

// proxyValuesHeader opens proxy-values.yaml.
const proxyValuesHeader = `# Helm values for gatehouse proxy (deploy/helm/gatehouse; docs/proxy.md),
# from the same cluster.yaml as the other files: the chart renders the
# AuthenticationConfiguration from proxy.cluster exactly as
# authentication-config.yaml here. Add, with --values or --set:
#   issuer.enabled: false           when the issuer runs elsewhere
#   proxy.tls.existingSecret or proxy.tls.certManager.issuer
#   proxy.audit.tokenSecret.name    a Secret holding the sink's bearer token
`
