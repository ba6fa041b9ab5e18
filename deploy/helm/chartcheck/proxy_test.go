package chartcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
)

// proxyObjects are the proxy's rendered objects.
type proxyObjects struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	telemetry  *corev1.Service
	configMap  *corev1.ConfigMap
	role       *rbacv1.ClusterRole
	binding    *rbacv1.ClusterRoleBinding
	account    *corev1.ServiceAccount
}

func proxyOf(t *testing.T, objs []Object) proxyObjects {
	t.Helper()
	var p proxyObjects
	for _, o := range objs {
		if o.Name == "gatehouse-proxy-telemetry" {
			p.telemetry = o.Typed.(*corev1.Service)
		}
		if !strings.HasSuffix(o.Name, "-proxy") {
			continue
		}
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			p.deployment = v
		case *corev1.Service:
			p.service = v
		case *corev1.ConfigMap:
			p.configMap = v
		case *rbacv1.ClusterRole:
			p.role = v
		case *rbacv1.ClusterRoleBinding:
			p.binding = v
		case *corev1.ServiceAccount:
			p.account = v
		}
	}
	if p.deployment == nil || p.service == nil || p.telemetry == nil {
		t.Fatal("no proxy Deployment, Service or telemetry Service")
	}
	return p
}

// proxyRules is the ClusterRole the proxy needs (docs/proxy.md): impersonate
// what it forwards, create SubjectAccessReviews, nothing else.
func proxyRules(authnResources ...string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: authnResources, Verbs: []string{"impersonate"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
}

// args maps the proxy's --flag=value arguments.
func args(d *appsv1.Deployment) map[string]string {
	m := map[string]string{}
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		m[k] = v
	}
	return m
}

// checkProxyCommon: the flags of the contract point at mounted files, the
// Service selects the proxy's pods only, the ServiceAccount is bound to the
// exact ClusterRole.
func checkProxyCommon(t *testing.T, objs []Object, p proxyObjects) {
	t.Helper()
	d := p.deployment
	if got := d.Spec.Template.Spec.Containers[0].Command; !reflect.DeepEqual(got, []string{"gatehouse-proxy"}) {
		t.Errorf("command %q, want gatehouse-proxy", got)
	}
	a := args(d)
	mounts := map[string]bool{}
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, flag := range []string{"tls-cert-file", "tls-key-file", "authentication-config", "audit-policy", "audit-webhook-config"} {
		if f, ok := a[flag]; ok && !mounts[filepath.Dir(f)] {
			t.Errorf("--%s=%s is on no volume", flag, f)
		}
	}
	if p.role == nil || p.binding == nil || p.account == nil {
		t.Fatal("no ClusterRole, ClusterRoleBinding or ServiceAccount for the proxy")
	}
	if p.binding.RoleRef.Name != p.role.Name || len(p.binding.Subjects) != 1 || p.binding.Subjects[0].Name != p.account.Name ||
		p.binding.Subjects[0].Namespace != namespace || d.Spec.Template.Spec.ServiceAccountName != p.account.Name {
		t.Errorf("binding %+v of %s to %s, pods run as %s", p.binding.Subjects, p.role.Name, p.account.Name, d.Spec.Template.Spec.ServiceAccountName)
	}
	if !reflect.DeepEqual(p.role.Rules, proxyRules("uids", "userextras/authentication.kubernetes.io/credential-id")) {
		t.Errorf("ClusterRole rules %+v", p.role.Rules)
	}
	if !selects(p.service.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("proxy Service selects %v, not the proxy's pods", p.service.Spec.Selector)
	}
	for _, o := range Find(objs, "Deployment") {
		other := o.Typed.(*appsv1.Deployment)
		if other.Name != d.Name && (selects(p.service.Spec.Selector, other.Spec.Template.Labels) || selects(other.Spec.Selector.MatchLabels, d.Spec.Template.Labels)) {
			t.Errorf("the proxy's and %s's selectors overlap", other.Name)
		}
	}
	// Team members reach the https port and nothing else; /metrics stays
	// on a ClusterIP Service.
	if len(p.service.Spec.Ports) != 1 || p.service.Spec.Ports[0].TargetPort.String() != "https" {
		t.Errorf("Service ports %+v, want https only", p.service.Spec.Ports)
	}
	if p.telemetry.Spec.Type != corev1.ServiceTypeClusterIP || len(p.telemetry.Spec.Ports) != 1 || p.telemetry.Spec.Ports[0].TargetPort.String() != "telemetry" ||
		!selects(p.telemetry.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("telemetry Service %+v", p.telemetry.Spec)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation")
	}
}

func checkProxyBeside(t *testing.T, objs []Object) {
	p := proxyOf(t, objs)
	checkProxyCommon(t, objs, p)
	if p.service.Spec.Type != corev1.ServiceTypeLoadBalancer || !reflect.DeepEqual(p.service.Spec.LoadBalancerSourceRanges, []string{"203.0.113.0/24"}) {
		t.Errorf("proxy Service %s ranges %v, want a LoadBalancer for 203.0.113.0/24", p.service.Spec.Type, p.service.Spec.LoadBalancerSourceRanges)
	}
	a := args(p.deployment)
	if a["cluster-name"] != "gke-prod" || a["audit-webhook-config"] == "" || a["upstream-kubeconfig"] != "" || a["audit-webhook-batch-max-wait"] != "2s" {
		t.Errorf("args %v", a)
	}
	// The audit events go to the sink at the issuer's host (https: a
	// kubeconfig's token goes to https servers only), with the token from
	// the Secret as a file.
	var kc clientcmdv1.Config
	if err := yaml.UnmarshalStrict([]byte(p.configMap.Data["audit-webhook.kubeconfig"]), &kc); err != nil {
		t.Fatal(err)
	}
	if got := kc.Clusters[0].Cluster.Server; got != "https://login.example.com/audit/webhook" {
		t.Errorf("audit sink %q", got)
	}
	tokenFile := kc.AuthInfos[0].AuthInfo.TokenFile
	var tokenMounted bool
	for _, m := range p.deployment.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == filepath.Dir(tokenFile) {
			v := volume(p.deployment, m.Name)
			tokenMounted = v.Secret != nil && v.Secret.SecretName == "gatehouse-audit" && v.Secret.Items[0].Key == "proxy-token" &&
				v.Secret.Items[0].Path == filepath.Base(tokenFile)
		}
	}
	if !tokenMounted {
		t.Errorf("the audit token file %q is not the Secret's key", tokenFile)
	}
	c := one[*Certificate](t, objs, "Certificate")
	if c.Metadata.Name != "gatehouse-proxy" || c.Spec.DNSNames[0] != "k8s.example.com" || c.Spec.IssuerRef.Name != "letsencrypt-prod" ||
		volume(p.deployment, "tls").Secret.SecretName != c.Spec.SecretName {
		t.Errorf("certificate %+v", c.Spec)
	}
	checkConfig(t, objs)
}

func checkProxyOnly(t *testing.T, objs []Object) {
	p := proxyOf(t, objs)
	checkProxyCommon(t, objs, p)
	// Nothing of the issuer.
	none(t, objs, "Secret", "PersistentVolumeClaim", "Certificate", "NetworkPolicy", "Role")
	if n := len(Find(objs, "Deployment")); n != 1 {
		t.Errorf("%d Deployments, want the proxy's only", n)
	}
	if *p.deployment.Spec.Replicas != 2 || p.deployment.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("replicas %d strategy %s", *p.deployment.Spec.Replicas, p.deployment.Spec.Strategy.Type)
	}
}

// TestProxyAuthenticationConfigAgrees: the AuthenticationConfiguration the
// chart renders for the proxy is the one `gatehouse cluster render` writes
// for the same issuer and claims keys (the value set's proxy.cluster with
// an overlay, read as cluster.yaml; defaults left to each side), and
// kube-apiserver's validation accepts it.
func TestProxyAuthenticationConfigAgrees(t *testing.T) {
	sch := runtime.NewScheme()
	apiserverinstall.Install(sch)
	decoder := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDecoder()
	sets := valueSets(t)
	ca, err := os.ReadFile(filepath.Join(chartDir(t), "..", "..", "..", "internal", "cluster", "testdata", "seed-email", "issuer-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caJSON, _ := json.Marshal(string(ca))
	tests := []struct {
		name, set string
		// overlay is merged over the set's proxy.cluster (null removes a key).
		overlay string
	}{
		{"beside: the release's issuer", "proxy-beside", "{}"},
		{"alone: email without prefix and two audiences", "proxy-only", "{}"},
		{"issuer CA", "proxy-only", `{"issuer": {"caData": ` + string(caJSON) + `}}`},
		{"groups without prefix from their own claim", "proxy-only", `{"claims": {"groups": {"claim": "teams", "prefix": ""}}}`},
		{"username prefix left out", "proxy-only", `{"claims": {"username": {"claim": "sub", "prefix": null}}}`},
		{"the client id as audience", "proxy-only", `{"issuer": {"clientID": "kubectl", "audiences": null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := sets[tt.set]
			var overlay map[string]any
			if err := yaml.Unmarshal([]byte(tt.overlay), &overlay); err != nil {
				t.Fatal(err)
			}
			overlayFile := filepath.Join(t.TempDir(), "overlay.yaml")
			ov, err := yaml.Marshal(map[string]any{"proxy": map[string]any{"cluster": overlay}})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(overlayFile, ov, 0o600); err != nil {
				t.Fatal(err)
			}
			objs := renderFiles(t, vs.APIVersions, []string{vs.File, overlayFile})
			chartYAML := proxyOf(t, objs).configMap.Data["authentication-config.yaml"]

			c := clusterConfig(t, vs.File, overlay)
			want, err := yaml.Marshal(c.AuthenticationConfiguration([]byte(c.Issuer.CAData)))
			if err != nil {
				t.Fatal(err)
			}
			var got, exp apiserverv1.AuthenticationConfiguration
			if err := yaml.UnmarshalStrict([]byte(chartYAML), &got); err != nil {
				t.Fatalf("chart's authentication-config.yaml: %v\n%s", err, chartYAML)
			}
			if err := yaml.UnmarshalStrict(want, &exp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("the chart and `gatehouse cluster render` disagree:\n--- chart\n%s\n--- cluster render\n%s", chartYAML, want)
			}
			obj, _, err := decoder.Decode([]byte(chartYAML), nil, &apiserverapi.AuthenticationConfiguration{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), obj.(*apiserverapi.AuthenticationConfiguration), nil); len(errs) > 0 {
				t.Fatalf("kube-apiserver would refuse it: %v", errs.ToAggregate())
			}
		})
	}
}

// clusterConfig reads a value set's proxy.cluster, with overlay merged
// over it, as cluster.yaml (strictly: a key cluster.yaml lacks fails),
// the issuer URL defaulting to config.issuer as the chart does.
func clusterConfig(t *testing.T, valuesFile string, overlay map[string]any) *cluster.Config {
	t.Helper()
	data, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			Issuer string `json:"issuer"`
		} `json:"config"`
		Proxy struct {
			Cluster map[string]any `json:"cluster"`
		} `json:"proxy"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	merged := merge(values.Proxy.Cluster, overlay)
	y, err := yaml.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Parse(y)
	if err != nil {
		t.Fatalf("proxy.cluster is not cluster.yaml: %v\n%s", err, y)
	}
	if c.Issuer.URL == "" {
		c.Issuer.URL = values.Config.Issuer
	}
	c.Audit.Webhook.Disabled = true
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	return c
}

// merge returns over merged into base as helm merges values files: maps
// merge, a null removes the key, anything else replaces.
func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		switch v := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			b, _ := out[k].(map[string]any)
			out[k] = merge(b, v)
		default:
			out[k] = v
		}
	}
	return out
}

// TestProxyClusterRole: the ClusterRole grants exactly what the proxy
// forwards, whichever way the user extras are given.
func TestProxyClusterRole(t *testing.T) {
	vs := valueSets(t)["proxy-only"]
	tests := []struct {
		name  string
		args  []string
		rules []rbacv1.PolicyRule
	}{
		{"default: credential-id only", nil, proxyRules("uids", "userextras/authentication.kubernetes.io/credential-id")},
		{"the mapped extra keys listed", []string{"--set-json", `proxy.rbac.userExtras=["authentication.kubernetes.io/credential-id","example.com/team"]`},
			proxyRules("uids", "userextras/authentication.kubernetes.io/credential-id", "userextras/example.com/team")},
		{"no extras at all", []string{"--set-json", "proxy.rbac.userExtras=[]"}, proxyRules("uids")},
		{"every extra, as Pinniped", []string{"--set", "proxy.rbac.allUserExtras=true"}, proxyRules("*")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := proxyOf(t, render(t, vs, tt.args...)).role
			if !reflect.DeepEqual(role.Rules, tt.rules) {
				t.Errorf("rules %+v\nwant %+v", role.Rules, tt.rules)
			}
			for _, r := range role.Rules {
				for _, res := range r.Resources {
					if res == "serviceaccounts" || res == "secrets" || strings.Contains(strings.Join(r.Verbs, ","), "*") {
						t.Errorf("rule %+v grants more than the proxy forwards", r)
					}
				}
			}
		})
	}
	none(t, render(t, vs, "--set", "proxy.rbac.create=false"), "ClusterRole", "ClusterRoleBinding")
}

// TestProxyAuditPolicy: the chart's copy of the audit policy is the one
// `gatehouse cluster render` writes, and the ConfigMap carries it.
func TestProxyAuditPolicy(t *testing.T) {
	want, err := cluster.AuditPolicyYAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir(t), "files", "audit-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("deploy/helm/gatehouse/files/audit-policy.yaml differs from what `gatehouse cluster render` writes: copy audit-policy.yaml of a render over it")
	}
	cm := proxyOf(t, render(t, valueSets(t)["proxy-only"])).configMap
	if strings.TrimSpace(cm.Data["audit-policy.yaml"]) != strings.TrimSpace(string(want)) {
		t.Errorf("ConfigMap audit-policy.yaml:\n%s", cm.Data["audit-policy.yaml"])
	}
}

// TestProxyVariants: an existing ConfigMap, an upstream kubeconfig, no
// audit trail; each pod stays hardened and restricted.
func TestProxyVariants(t *testing.T) {
	vs := valueSets(t)["proxy-only"]
	t.Run("existing ConfigMap", func(t *testing.T) {
		p := proxyOf(t, render(t, vs, "--set", "proxy.existingConfigMap=cluster-render", "--set", "proxy.audit.url="))
		if p.configMap != nil {
			t.Errorf("ConfigMap %s rendered next to an existing one", p.configMap.Name)
		}
		if v := volume(p.deployment, "config"); v.ConfigMap == nil || v.ConfigMap.Name != "cluster-render" {
			t.Errorf("config volume %+v", v)
		}
		if _, ok := args(p.deployment)["audit-webhook-config"]; ok {
			t.Error("--audit-webhook-config without an audit URL")
		}
		if err := HardenedProxy(&p.deployment.Spec.Template); err != nil {
			t.Error(err)
		}
	})
	t.Run("upstream kubeconfig", func(t *testing.T) {
		p := proxyOf(t, render(t, vs, "--set", "proxy.upstreamKubeconfigSecret=upstream"))
		if args(p.deployment)["upstream-kubeconfig"] != "/etc/gatehouse/upstream/kubeconfig" {
			t.Errorf("args %v", p.deployment.Spec.Template.Spec.Containers[0].Args)
		}
		if err := HardenedProxyKubeconfig(&p.deployment.Spec.Template); err != nil {
			t.Error(err)
		}
		if err := HardenedProxy(&p.deployment.Spec.Template); err == nil {
			t.Error("HardenedProxy passed a pod without its token")
		}
		if err := Restricted(&p.deployment.Spec.Template); err != nil {
			t.Error(err)
		}
	})
	t.Run("image", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{nil, "ghcr.io/gatehouse-dev/gatehouse:v0.1.0"},
			{[]string{"--set", "image.tag=v2"}, "ghcr.io/gatehouse-dev/gatehouse:v2"},
			{[]string{"--set", "proxy.image.repository=example.com/gatehouse-proxy", "--set", "proxy.image.tag=v3"}, "example.com/gatehouse-proxy:v3"},
		} {
			p := proxyOf(t, render(t, vs, tt.args...))
			if got := p.deployment.Spec.Template.Spec.Containers[0].Image; got != tt.want {
				t.Errorf("%v: image %s, want %s", tt.args, got, tt.want)
			}
		}
	})
	t.Run("network policy and service monitor", func(t *testing.T) {
		vs := vs
		vs.APIVersions = []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}
		objs := render(t, vs, "--set", "networkPolicy.enabled=true", "--set", "metrics.serviceMonitor.enabled=true")
		p := proxyOf(t, objs)
		np := one[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy")
		if !selects(np.Spec.PodSelector.MatchLabels, p.deployment.Spec.Template.Labels) || len(np.Spec.Ingress) != 2 ||
			np.Spec.Ingress[0].Ports[0].Port.String() != "https" || len(np.Spec.Ingress[0].From) != 0 || np.Spec.Ingress[1].Ports[0].Port.String() != "telemetry" {
			t.Errorf("network policy %+v", np.Spec)
		}
		sm := one[*ServiceMonitor](t, objs, "ServiceMonitor")
		if !selects(sm.Spec.Selector.MatchLabels, p.telemetry.Labels) || selects(sm.Spec.Selector.MatchLabels, p.service.Labels) || sm.Spec.Endpoints[0].Port != "telemetry" {
			t.Errorf("service monitor %+v", sm.Spec)
		}
	})
	t.Run("ingress passthrough", func(t *testing.T) {
		objs := render(t, vs)
		ing := one[*networkingv1.Ingress](t, objs, "Ingress")
		if ing.Annotations["nginx.ingress.kubernetes.io/ssl-passthrough"] != "true" || len(ing.Spec.TLS) != 0 ||
			ing.Spec.Rules[0].Host != "k8s.example.com" || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name != "https" {
			t.Errorf("ingress %+v %+v", ing.Annotations, ing.Spec)
		}
		if p := proxyOf(t, objs); p.service.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service %s behind the Ingress", p.service.Spec.Type)
		}
	})
}

// TestProxyDocsValues renders the proxy-only values docs/proxy.md shows,
// alone and with each cloud's Service settings: the pod passes
// "restricted" and the proxy's own checks.
func TestProxyDocsValues(t *testing.T) {
	values := docsFileBlock(t, "proxy.md", "issuer:\n  enabled: false")
	for _, cloud := range []string{"", "networking.gke.io", "azure-load-balancer-internal", "aws-load-balancer-type: external"} {
		t.Run("service "+cloud, func(t *testing.T) {
			files := []string{values}
			if cloud != "" {
				files = append(files, docsBlockWith(t, "proxy.md", "proxy:\n  service:\n    type: LoadBalancer", cloud))
			}
			objs := renderFiles(t, nil, files)
			p := proxyOf(t, objs)
			if err := Restricted(&p.deployment.Spec.Template); err != nil {
				t.Error(err)
			}
			if err := HardenedProxy(&p.deployment.Spec.Template); err != nil {
				t.Error(err)
			}
			if p.service.Spec.Type != corev1.ServiceTypeLoadBalancer {
				t.Errorf("Service type %s", p.service.Spec.Type)
			}
		})
	}
}

// TestProxyValuesFromClusterRender: the chart installed with the
// proxy-values.yaml that `gatehouse cluster render --proxy` writes gives
// the proxy the very AuthenticationConfiguration, audit sink and cluster
// name that the same render wrote, for the seed and for an email-named,
// unprefixed setup with a private issuer CA.
func TestProxyValuesFromClusterRender(t *testing.T) {
	root := filepath.Join(chartDir(t), "..", "..", "..", "internal", "cluster", "testdata")
	ca, err := os.ReadFile(filepath.Join(root, "seed-email", "issuer-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	email := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(filepath.Join(filepath.Dir(email), "issuer-ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(email, []byte(`name: eks-dev
issuer: {url: "https://login.example.com:8443/dex", clientID: kubectl, audiences: [kubectl, kubernetes], caFile: issuer-ca.pem}
claims:
  username: {claim: email, prefix: ""}
  groups: {claim: groups, prefix: "gh:"}
audit: {webhook: {url: "https://sink.example.com/audit/webhook", bearerToken: "0123456789abcdef"}}
proxy: {url: "https://eks-dev.example.com:6443"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("issuer: {enabled: false}\nproxy: {tls: {existingSecret: proxy-tls}, audit: {tokenSecret: {name: sink-token}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"seed": filepath.Join(root, "seed-proxy", "cluster.yaml"), "email and issuer CA": email} {
		t.Run(name, func(t *testing.T) {
			c, err := cluster.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			files, err := c.Render()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := cluster.WriteFiles(dir, files); err != nil {
				t.Fatal(err)
			}
			objs := renderFiles(t, nil, []string{filepath.Join(dir, cluster.FileProxyValues), overlay})
			p := proxyOf(t, objs)
			read := func(name string) []byte {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			var got, want apiserverv1.AuthenticationConfiguration
			if err := yaml.UnmarshalStrict([]byte(p.configMap.Data["authentication-config.yaml"]), &got); err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(read(cluster.FileAuthenticationConfig), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the chart's AuthenticationConfiguration differs from cluster render's:\n--- chart\n%s\n--- render\n%s",
					p.configMap.Data["authentication-config.yaml"], read(cluster.FileAuthenticationConfig))
			}
			var chartSink, renderSink clientcmdv1.Config
			if err := yaml.UnmarshalStrict([]byte(p.configMap.Data["audit-webhook.kubeconfig"]), &chartSink); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(read(cluster.FileAuditWebhook), &renderSink); err != nil {
				t.Fatal(err)
			}
			if a, b := chartSink.Clusters[0].Cluster, renderSink.Clusters[0].Cluster; a.Server != b.Server || !bytes.Equal(a.CertificateAuthorityData, b.CertificateAuthorityData) {
				t.Errorf("audit sink %s (CA %d bytes), render says %s (CA %d bytes)", a.Server, len(a.CertificateAuthorityData), b.Server, len(b.CertificateAuthorityData))
			}
			if a := args(p.deployment); a["cluster-name"] != c.Name {
				t.Errorf("--cluster-name=%s, want %s", a["cluster-name"], c.Name)
			}
		})
	}
}

// renderFiles renders the chart with helm 3 for the values files given
// and decodes it.
func renderFiles(t *testing.T, apiVersions []string, files []string) []Object {
	t.Helper()
	return renderFilesWith(t, helmBin(t), apiVersions, files)
}
