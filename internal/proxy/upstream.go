package proxy

import (
	"fmt"
	"net/http"
	"net/url"

	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// LoadUpstream returns the proxy's own credentials for the API server:
// the kubeconfig's current context, or the in-cluster ServiceAccount when
// kubeconfig is empty.
func LoadUpstream(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--upstream-kubeconfig not given and not running in a pod (%w); pass the kubeconfig of the proxy's ServiceAccount", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--upstream-kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// Upstream is where and how requests are forwarded.
type Upstream struct {
	// URL is the API server; its path is never empty (an empty path
	// makes UpgradeAwareHandler answer GETs with a 301 to "/").
	URL *url.URL
	// Transport carries plain requests with the proxy's credentials
	// (HTTP/1.1, or HTTP/2 when asked).
	Transport http.RoundTripper
	// Upgrade dials upgrade requests (exec, attach, port-forward) over
	// HTTP/1.1 only: an HTTP/2 connection cannot be upgraded.
	Upgrade utilproxy.UpgradeRequestRoundTripper
}

// NewUpstream builds the transports from the proxy's rest.Config. The
// config must not impersonate: the proxy sets impersonation per request.
// Plain requests use HTTP/1.1 (a pool of connections) unless http2 is
// set (one multiplexed connection): measured against kube-apiserver,
// HTTP/1.1 lists faster and adds less to a GET (docs/benchmarks.md).
func NewUpstream(cfg *rest.Config, http2 bool) (*Upstream, error) {
	if cfg.Impersonate.UserName != "" || len(cfg.Impersonate.Groups) > 0 || cfg.Impersonate.UID != "" || len(cfg.Impersonate.Extra) > 0 {
		return nil, fmt.Errorf("--upstream-kubeconfig: the context impersonates (as/as-groups); the proxy's own identity must be the one RBAC grants `impersonate` to")
	}
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--upstream-kubeconfig: server %q is not a URL", cfg.Host)
	}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	if u.Path == "" {
		u.Path = "/"
	}
	plain := rest.CopyConfig(cfg)
	if !http2 {
		// client-go configures HTTP/2 only when NextProtos allows h2.
		plain.NextProtos = []string{"http/1.1"}
	}
	rt, err := rest.TransportFor(plain)
	if err != nil {
		return nil, fmt.Errorf("--upstream-kubeconfig: %w", err)
	}
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("--upstream-kubeconfig: %w", err)
	}
	conn := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig}
	if tlsConfig != nil {
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	// The credentials (bearer token, exec plugin's token) are written on
	// the upgrade request by the same wrappers the plain transport uses;
	// client certificates come with tlsConfig.
	auth, err := rest.HTTPWrappersForConfig(cfg, utilproxy.MirrorRequest)
	if err != nil {
		return nil, fmt.Errorf("--upstream-kubeconfig: %w", err)
	}
	return &Upstream{URL: u, Transport: rt, Upgrade: utilproxy.NewUpgradeRequestRoundTripper(conn, auth)}, nil
}
