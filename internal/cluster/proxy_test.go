package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// TestProxyValidate: a proxy URL kubectl could not use, or its CA given
// twice, is refused naming the key.
func TestProxyValidate(t *testing.T) {
	tests := []struct {
		name  string
		proxy Proxy
		want  string
	}{
		{"plain http", Proxy{URL: "http://k8s.example.com"}, "proxy.url"},
		{"no host", Proxy{URL: "https://"}, "proxy.url"},
		{"empty", Proxy{}, "proxy.url"},
		{"query", Proxy{URL: "https://k8s.example.com?x=1"}, "proxy.url"},
		{"CA twice", Proxy{URL: "https://k8s.example.com", CAFile: "ca.pem", CAData: "x"}, "proxy.caFile: set caFile or caData, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proxy
			c := &Config{Issuer: Issuer{URL: "https://login.example.com"}, Proxy: &p}
			c.Audit.Webhook.Disabled = true
			err := c.Complete()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestProxyRender: with the proxy and no kube-apiserver URL, the team
// kubeconfig still comes out, pointing at the proxy with system roots;
// nothing for the control-plane nodes is rendered.
func TestProxyRender(t *testing.T) {
	c := &Config{Issuer: Issuer{URL: "https://login.example.com"}, Proxy: &Proxy{URL: "https://k8s.example.com:8443"}}
	c.Audit.Webhook.Disabled = true
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	files, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		if f.Name == FileKubeconfig {
			s := string(f.Data)
			if !strings.Contains(s, "server: https://k8s.example.com:8443\n") || strings.Contains(s, "certificate-authority-data") {
				t.Errorf("kubeconfig:\n%s", s)
			}
		}
		if !strings.Contains(strings.ToLower(f.Purpose), "proxy") && f.Name != FileRBAC {
			t.Errorf("%s: purpose %q does not say it is for the proxy", f.Name, f.Purpose)
		}
	}
	if got, want := strings.Join(names, ","), "authentication-config.yaml,audit-policy.yaml,rbac.yaml,proxy-values.yaml,kubeconfig"; got != want {
		t.Errorf("files %s, want %s", got, want)
	}
}

// TestCheckThroughProxy: with a proxy, `cluster check` does not probe
// kube-apiserver for the issuer (it has none) and shows the token to the
// proxy, which answers who its bearer is.
func TestCheckThroughProxy(t *testing.T) {
	c := completeConfig(t, "issuer: {url: https://login.example.com}\naudit: {webhook: {disabled: true}}\n")
	users := map[string]authenticationv1.UserInfo{"alice-token": {Username: "oidc:alice", Groups: []string{"oidc:org:infra"}}}
	api := &fakeAPIServer{version: "v1.31.2", users: map[string]authenticationv1.UserInfo{}, namespaces: map[string]bool{}, bindings: map[string]json.RawMessage{}}
	proxy := &fakeAPIServer{version: "v1.31.2", users: users, namespaces: map[string]bool{}, bindings: map[string]json.RawMessage{}}
	admin := api.start(t)
	p := proxy.start(t)
	c.Proxy = &Proxy{URL: p.Host, CAData: string(p.CAData)}
	for _, tc := range []struct {
		token, status, detail string
	}{
		{"alice-token", string(StatusInfo), `"oidc:alice"`},
		{"expired", string(StatusFailed), "gatehouse proxy at " + p.Host + " rejects the token"},
	} {
		r, err := c.Check(context.Background(), admin, CheckOptions{Token: tc.token})
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]Finding{}
		for _, f := range r.Findings {
			found[f.Subject] = f
		}
		if f := found["token identity"]; string(f.Status) != tc.status || !strings.Contains(f.Detail, tc.detail) {
			t.Errorf("%s: token identity %+v, want %s with %q", tc.token, f, tc.status, tc.detail)
		}
		if f := found["issuer https://login.example.com"]; f.Status != StatusInfo || !strings.Contains(f.Detail, "gatehouse proxy") {
			t.Errorf("issuer finding %+v", f)
		}
		if api.probe != "" {
			t.Errorf("kube-apiserver was probed with a TokenReview (%q)", api.probe)
		}
	}
}
