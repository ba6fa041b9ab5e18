package chartcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/storage/kubernetes"
)

const namespace = "kube-system"

var (
	helmMu    sync.Mutex
	helmPaths = map[int]string{}
)

// helmBin returns the cached helm 3, see helmMajor.
func helmBin(t *testing.T) string { return helmMajor(t, 3) }

// helmMajor returns the cached helm of a major version, building it the
// first time (minutes).
func helmMajor(t *testing.T, major int) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs helm, built from the module proxy")
	}
	helmMu.Lock()
	defer helmMu.Unlock()
	if p, ok := helmPaths[major]; ok {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	p, err := EnsureHelmMajor(ctx, major)
	if err != nil {
		t.Fatal(err)
	}
	helmPaths[major] = p
	return p
}

// eachHelm runs f once per helm major version the chart supports.
func eachHelm(t *testing.T, f func(t *testing.T, helm string)) {
	for _, major := range HelmMajors {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) { f(t, helmMajor(t, major)) })
	}
}

func chartDir(t *testing.T) string {
	t.Helper()
	d, err := ChartDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func valueSets(t *testing.T) map[string]ValueSet {
	t.Helper()
	sets, err := ValueSets()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ValueSet{}
	for _, s := range sets {
		m[s.Name] = s
	}
	return m
}

func render(t *testing.T, vs ValueSet, extra ...string) []Object {
	t.Helper()
	return renderWith(t, helmBin(t), vs, extra...)
}

func renderWith(t *testing.T, helm string, vs ValueSet, extra ...string) []Object {
	t.Helper()
	return renderFilesWith(t, helm, vs.APIVersions, []string{vs.File}, extra...)
}

// renderFilesWith renders the chart with helm for the values files and
// extra arguments given, and decodes it.
func renderFilesWith(t *testing.T, helm string, apiVersions, files []string, extra ...string) []Object {
	t.Helper()
	out, err := Template(context.Background(), helm, chartDir(t), namespace, apiVersions, files, extra...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func one[T any](t *testing.T, objs []Object, kind string) T {
	t.Helper()
	found := Find(objs, kind)
	if len(found) != 1 {
		t.Fatalf("%d %s objects, want 1", len(found), kind)
	}
	v, ok := found[0].Typed.(T)
	if !ok {
		t.Fatalf("%s decoded as %T", kind, found[0].Typed)
	}
	return v
}

func none(t *testing.T, objs []Object, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		if n := len(Find(objs, k)); n != 0 {
			t.Errorf("%d %s objects, want none", n, k)
		}
	}
}

func TestLint(t *testing.T) {
	eachHelm(t, func(t *testing.T, helm string) {
		for name, vs := range valueSets(t) {
			t.Run(name, func(t *testing.T) {
				out, err := Helm(context.Background(), helm, "lint", "--strict", "--kube-version", KubeVersion, "--namespace", namespace, chartDir(t), "--values", vs.File)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if !strings.Contains(out, "0 chart(s) failed") {
					t.Fatalf("lint:\n%s", out)
				}
			})
		}
	})
}

// configEnv are the variables the value sets' configs name.
var configEnv = map[string]string{
	"GITHUB_CLIENT_ID":     "Iv1.0123456789abcdef",
	"GITHUB_CLIENT_SECRET": "0123456789abcdef0123456789abcdef01234567",
	"POSTGRES_PASSWORD":    "s3cret",
	"AUDIT_TOKENS":         "0123456789abcdef0123456789abcdef",
}

// checkConfig loads the rendered config.yaml with gatehouse's own loader:
// what the chart writes is what `gatehouse serve` accepts.
func checkConfig(t *testing.T, objs []Object) {
	t.Helper()
	for k, v := range configEnv {
		t.Setenv(k, v)
	}
	sec := one[*corev1.Secret](t, objs, "Secret")
	data, ok := sec.Data["config.yaml"]
	if !ok {
		t.Fatalf("Secret %s has no config.yaml", sec.Name)
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(f)
	if err == nil {
		return
	}
	// Files on volumes the values mount (extraVolumeMounts) exist only in
	// the pod: a missing file there is not the chart's fault.
	var mounts []string
	for _, d := range Find(objs, "Deployment") {
		for _, m := range d.Typed.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].VolumeMounts {
			if m.MountPath != "/etc/gatehouse" && m.MountPath != "/tmp" && m.MountPath != "/var/lib/gatehouse" {
				mounts = append(mounts, m.MountPath+"/")
			}
		}
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var left []string
	for _, e := range errs {
		msg, onMount := e.Error(), false
		for _, m := range mounts {
			if strings.Contains(msg, ": open "+m) && strings.Contains(msg, "no such file or directory") {
				onMount = true
			}
		}
		if !onMount {
			left = append(left, msg)
		}
	}
	if len(left) > 0 {
		t.Fatalf("gatehouse refuses the rendered config: %s\n%s", strings.Join(left, "\n"), data)
	}
}

// clientRemoteIP is the rendered config's web.clientRemoteIP.
func clientRemoteIP(t *testing.T, objs []Object) config.ClientRemoteIP {
	t.Helper()
	sec := one[*corev1.Secret](t, objs, "Secret")
	var cfg struct {
		Web struct {
			ClientRemoteIP config.ClientRemoteIP `json:"clientRemoteIP"`
		} `json:"web"`
	}
	if err := yaml.Unmarshal(sec.Data["config.yaml"], &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Web.ClientRemoteIP
}

func TestTemplate(t *testing.T) {
	sets := valueSets(t)
	checks := map[string]func(t *testing.T, objs []Object){
		"default": func(t *testing.T, objs []Object) {
			d := one[*appsv1.Deployment](t, objs, "Deployment")
			if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("replicas %d strategy %s, want 1 Recreate (SQLite)", *d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			pvc := one[*corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim")
			if vol := volume(d, "data"); vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != pvc.Name {
				t.Errorf("data volume %+v does not use the claim %s", vol, pvc.Name)
			}
			one[*corev1.ServiceAccount](t, objs, "ServiceAccount")
			spec := d.Spec.Template.Spec
			if args := strings.Join(spec.Containers[0].Args, " "); !strings.Contains(args, "--shutdown-delay 5s") || *spec.TerminationGracePeriodSeconds != 30 {
				t.Errorf("args %q, grace %d: want a 5s shutdown delay inside 30s", args, *spec.TerminationGracePeriodSeconds)
			}
			none(t, objs, "PodDisruptionBudget", "Ingress", "NetworkPolicy", "ServiceMonitor", "Certificate")
			if len(d.Spec.Template.Spec.TopologySpreadConstraints) != 0 {
				t.Error("topology spread with one replica")
			}
			if c := clientRemoteIP(t, objs); c.Header != "" || len(c.TrustedProxies) != 0 {
				t.Errorf("clientRemoteIP %+v without an Ingress", c)
			}
			checkConfig(t, objs)
		},
		"ha": func(t *testing.T, objs []Object) {
			d := one[*appsv1.Deployment](t, objs, "Deployment")
			if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
				t.Errorf("replicas %d strategy %s, want 3 RollingUpdate", *d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			pdb := one[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PDB minAvailable %v", pdb.Spec.MinAvailable)
			}
			tsc := d.Spec.Template.Spec.TopologySpreadConstraints
			if len(tsc) != 2 || tsc[0].TopologyKey != "kubernetes.io/hostname" || tsc[0].LabelSelector == nil ||
				tsc[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "gatehouse" {
				t.Errorf("topology spread %+v", tsc)
			}
			if vol := volume(d, "data"); vol.EmptyDir == nil {
				t.Errorf("data volume %+v, want an emptyDir with postgres", vol)
			}
			none(t, objs, "PersistentVolumeClaim")
			checkConfig(t, objs)
		},
		"ingress-cert-manager": func(t *testing.T, objs []Object) {
			ing := one[*networkingv1.Ingress](t, objs, "Ingress")
			if ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt-prod" || ing.Annotations["nginx.ingress.kubernetes.io/proxy-buffer-size"] != "16k" {
				t.Errorf("annotations %v", ing.Annotations)
			}
			if ptr.Deref(ing.Spec.IngressClassName, "") != "nginx" {
				t.Errorf("ingressClassName %v", ing.Spec.IngressClassName)
			}
			if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].Hosts[0] != "login.example.com" || ing.Spec.Rules[0].Host != "login.example.com" {
				t.Errorf("host from the issuer: tls %+v rules %+v", ing.Spec.TLS, ing.Spec.Rules)
			}
			if p := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service; p.Port.Name != "http" {
				t.Errorf("backend %+v", p)
			}
			none(t, objs, "Certificate")
			// The config's own clientRemoteIP is kept.
			if c := clientRemoteIP(t, objs); c.Header != "X-Forwarded-For" || !reflect.DeepEqual(c.TrustedProxies, []string{"10.0.0.0/8"}) {
				t.Errorf("clientRemoteIP %+v, want the config's", c)
			}
			checkConfig(t, objs)
		},
		"ingress-certificate": func(t *testing.T, objs []Object) {
			ing := one[*networkingv1.Ingress](t, objs, "Ingress")
			if _, ok := ing.Annotations["cert-manager.io/cluster-issuer"]; ok {
				t.Error("cluster-issuer annotation next to a Certificate")
			}
			c := one[*Certificate](t, objs, "Certificate")
			if c.Spec.SecretName != "login-example-com-tls" || c.Spec.SecretName != ing.Spec.TLS[0].SecretName ||
				c.Spec.IssuerRef.Kind != "ClusterIssuer" || c.Spec.IssuerRef.Name != "letsencrypt-prod" || c.Spec.DNSNames[0] != "login.example.com" {
				t.Errorf("certificate %+v", c.Spec)
			}
			// Behind the Ingress: X-Forwarded-For from the private ranges.
			want := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}
			if c := clientRemoteIP(t, objs); c.Header != "X-Forwarded-For" || !reflect.DeepEqual(c.TrustedProxies, want) {
				t.Errorf("clientRemoteIP %+v, want X-Forwarded-For from %v", c, want)
			}
			checkConfig(t, objs)
		},
		"existing-secret": func(t *testing.T, objs []Object) {
			none(t, objs, "Secret", "PersistentVolumeClaim")
			d := one[*appsv1.Deployment](t, objs, "Deployment")
			if vol := volume(d, "config"); vol.Secret == nil || vol.Secret.SecretName != "gatehouse-config" {
				t.Errorf("config volume %+v", vol)
			}
		},
		"audit-sink": func(t *testing.T, objs []Object) {
			var sink *corev1.Service
			for _, o := range Find(objs, "Service") {
				if strings.HasSuffix(o.Name, "-audit-sink") {
					sink = o.Typed.(*corev1.Service)
				}
			}
			if sink == nil {
				t.Fatal("no audit-sink Service")
			}
			if sink.Spec.Type != corev1.ServiceTypeNodePort || sink.Spec.Ports[0].NodePort != 31556 || sink.Spec.Ports[0].TargetPort.String() != "http" || sink.Spec.Ports[0].Port != 80 {
				t.Errorf("audit sink %+v", sink.Spec)
			}
			// The split layout (the default): the sink's own Deployment,
			// volume and memory; kube-apiserver's Service selects its pods
			// and the issuer's Service does not.
			issuer, split := auditDeployments(t, objs)
			checkSplitSink(t, objs, issuer, split, "352Mi", "160MiB")
			if !selects(sink.Spec.Selector, split.Spec.Template.Labels) || selects(sink.Spec.Selector, issuer.Spec.Template.Labels) {
				t.Errorf("audit-sink Service selects %v: want the sink's pods only", sink.Spec.Selector)
			}
			if vol := volume(split, "data"); vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != "gatehouse-audit-sink" {
				t.Errorf("sink data volume %+v, want its own claim", vol)
			}
			if n := len(Find(objs, "PersistentVolumeClaim")); n != 2 {
				t.Errorf("%d PersistentVolumeClaims, want the issuer's and the sink's", n)
			}
			checkConfig(t, objs)
		},
		"audit-combined": func(t *testing.T, objs []Object) {
			d := one[*appsv1.Deployment](t, objs, "Deployment")
			if args := d.Spec.Template.Spec.Containers[0].Args; args[0] != "serve" {
				t.Errorf("args %v", args)
			}
			if strings.Contains(renderedConfig(t, objs), "separate") {
				t.Error("combined layout: the config leaves the webhook to another process")
			}
			checkConfig(t, objs)
		},
		"audit-split-postgres-servicemonitor": func(t *testing.T, objs []Object) {
			issuer, split := auditDeployments(t, objs)
			checkSplitSink(t, objs, issuer, split, "176Mi", "96MiB")
			if *split.Spec.Replicas != 2 || split.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
				t.Errorf("sink replicas %d strategy %s, want 2 RollingUpdate on PostgreSQL", *split.Spec.Replicas, split.Spec.Strategy.Type)
			}
			var route *networkingv1.Ingress
			for _, o := range Find(objs, "Ingress") {
				if strings.HasSuffix(o.Name, "-audit-sink") {
					route = o.Typed.(*networkingv1.Ingress)
				}
			}
			if route == nil {
				t.Fatal("no Ingress route for the webhook path")
			}
			p := route.Spec.Rules[0].HTTP.Paths[0]
			if p.Path != "/audit/webhook" || *p.PathType != networkingv1.PathTypeExact || p.Backend.Service.Name != "gatehouse-audit-sink-internal" ||
				route.Spec.Rules[0].Host != "login.example.com" || route.Annotations["cert-manager.io/cluster-issuer"] != "" {
				t.Errorf("webhook route %+v", route.Spec)
			}
			for _, o := range Find(objs, "NetworkPolicy") {
				np := o.Typed.(*networkingv1.NetworkPolicy)
				sinkPods := selects(np.Spec.PodSelector.MatchLabels, split.Spec.Template.Labels)
				if sinkPods == selects(np.Spec.PodSelector.MatchLabels, issuer.Spec.Template.Labels) {
					t.Errorf("NetworkPolicy %s selects %v: want one policy per workload", np.Name, np.Spec.PodSelector.MatchLabels)
				}
				if sinkPods && !strings.Contains(fmt.Sprint(np.Spec.Ingress[0].From), "10.0.0.0/24") {
					t.Errorf("the sink's policy does not let kube-apiserver in: %v", np.Spec.Ingress[0].From)
				}
			}
			if n := len(Find(objs, "ServiceMonitor")); n != 2 {
				t.Errorf("%d ServiceMonitors, want the issuer's and the sink's", n)
			}
			none(t, objs, "PersistentVolumeClaim")
			checkConfig(t, objs)
		},
		"kubernetes-storage": func(t *testing.T, objs []Object) {
			d := one[*appsv1.Deployment](t, objs, "Deployment")
			if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
				t.Errorf("replicas %d strategy %s, want 3 RollingUpdate", *d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			if !ptr.Deref(d.Spec.Template.Spec.AutomountServiceAccountToken, false) {
				t.Error("no service-account token for the kubernetes storage")
			}
			role := one[*rbacv1.Role](t, objs, "Role")
			if len(role.Rules) != 1 || role.Rules[0].APIGroups[0] != "dex.coreos.com" || strings.Join(role.Rules[0].Verbs, ",") != "get,list,create,update,delete" {
				t.Errorf("role %+v", role.Rules)
			}
			rb := one[*rbacv1.RoleBinding](t, objs, "RoleBinding")
			sa := one[*corev1.ServiceAccount](t, objs, "ServiceAccount")
			if rb.RoleRef.Name != role.Name || rb.Subjects[0].Name != sa.Name || d.Spec.Template.Spec.ServiceAccountName != sa.Name {
				t.Errorf("binding %+v of role %s to %s", rb, role.Name, sa.Name)
			}
			cr := one[*rbacv1.ClusterRole](t, objs, "ClusterRole")
			if len(cr.Rules) != 1 || cr.Rules[0].Resources[0] != "customresourcedefinitions" || strings.Join(cr.Rules[0].Verbs, ",") != "list,create" {
				t.Errorf("cluster role %+v", cr.Rules)
			}
			one[*rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding")
			none(t, objs, "PersistentVolumeClaim", "CustomResourceDefinition")
			checkConfig(t, objs)
		},
		// With the definitions in the chart, gatehouse needs no
		// cluster-wide rights.
		"kubernetes-storage-crds": func(t *testing.T, objs []Object) {
			one[*rbacv1.Role](t, objs, "Role")
			none(t, objs, "ClusterRole", "ClusterRoleBinding")
			checkConfig(t, objs)
			crds := Find(objs, "CustomResourceDefinition")
			want, err := kubernetes.CRDNames()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range crds {
				c := o.Typed.(*CustomResourceDefinition)
				got = append(got, c.Metadata.Name)
				if c.Metadata.Annotations["helm.sh/resource-policy"] != "keep" || c.Spec.Group != "dex.coreos.com" || !c.Spec.Versions[0].Schema.OpenAPIV3Schema.PreserveUnknownFields {
					t.Errorf("CRD %s: %+v", c.Metadata.Name, c)
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("CRDs %v, want %v", got, want)
			}
		},
		"proxy-beside": checkProxyBeside,
		"proxy-only":   checkProxyOnly,
		"servicemonitor-networkpolicy": func(t *testing.T, objs []Object) {
			sm := one[*ServiceMonitor](t, objs, "ServiceMonitor")
			if sm.Spec.Endpoints[0].Port != "telemetry" || sm.Metadata.Labels["release"] != "prometheus" {
				t.Errorf("service monitor %+v", sm)
			}
			np := one[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy")
			if len(np.Spec.Ingress) != 2 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" || np.Spec.Ingress[1].Ports[0].Port.String() != "telemetry" {
				t.Errorf("network policy %+v", np.Spec.Ingress)
			}
			checkConfig(t, objs)
		},
	}
	for name := range checks {
		if _, ok := sets[name]; !ok {
			t.Errorf("no ci/%s-values.yaml", name)
		}
	}
	eachHelm(t, func(t *testing.T, helm string) {
		for name, vs := range sets {
			t.Run(name, func(t *testing.T) {
				check, ok := checks[name]
				if !ok {
					t.Fatalf("ci/%s-values.yaml has no expectations in TestTemplate", name)
				}
				objs := renderWith(t, helm, vs)
				tmpls := PodTemplates(objs)
				if want := workloads(name); len(tmpls) != want {
					t.Fatalf("%d workloads, want %d", len(tmpls), want)
				}
				for id, tmpl := range tmpls {
					if err := Restricted(tmpl); err != nil {
						t.Errorf("%s: %v", id, err)
					}
					harden := Hardened
					switch {
					case strings.HasSuffix(id, "-proxy"):
						harden = HardenedProxy
					case usesKubernetesStorage(t, objs):
						harden = HardenedAPIClient
					}
					if err := harden(tmpl); err != nil {
						t.Errorf("%s: %v", id, err)
					}
				}
				for _, o := range objs {
					if clusterScoped[o.Kind] {
						continue
					}
					if ns := namespaceOf(o); ns != namespace {
						t.Errorf("%s %s in namespace %q", o.Kind, o.Name, ns)
					}
				}
				check(t, objs)
			})
		}
	})
}

// clusterScoped are the kinds the chart renders without a namespace.
var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true}

// usesKubernetesStorage reports whether the rendered config keeps its
// state in custom resources (the pod then calls the API server).
func usesKubernetesStorage(t *testing.T, objs []Object) bool {
	t.Helper()
	for _, o := range Find(objs, "Secret") {
		data, ok := o.Typed.(*corev1.Secret).Data["config.yaml"]
		if !ok {
			continue
		}
		var cfg struct {
			Storage struct {
				Type string `json:"type"`
			} `json:"storage"`
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Storage.Type == config.StorageKubernetes
	}
	return false
}

func namespaceOf(o Object) string {
	switch v := o.Typed.(type) {
	case interface{ GetNamespace() string }:
		return v.GetNamespace()
	case *Certificate:
		return v.Metadata.Namespace
	case *ServiceMonitor:
		return v.Metadata.Namespace
	}
	return ""
}

func volume(d *appsv1.Deployment, name string) corev1.Volume {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

// TestCertManagerAnnotationOnce: the cluster issuer given both as an
// annotation and as ingress.tls.certManager.clusterIssuer, with one value,
// is written once (Decode refuses a key written twice).
func TestCertManagerAnnotationOnce(t *testing.T) {
	objs := render(t, valueSets(t)["ingress-cert-manager"], "--set", `ingress.annotations.cert-manager\.io/cluster-issuer=letsencrypt-prod`)
	if ing := one[*networkingv1.Ingress](t, objs, "Ingress"); ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt-prod" {
		t.Fatalf("annotations %v", ing.Annotations)
	}
}

// TestServiceMonitorNeedsCRD: without monitoring.coreos.com/v1 among the
// cluster's API versions, no ServiceMonitor is rendered.
func TestServiceMonitorNeedsCRD(t *testing.T) {
	vs := valueSets(t)["servicemonitor-networkpolicy"]
	vs.APIVersions = nil
	none(t, render(t, vs), "ServiceMonitor")
}

// TestConfigChangeRestartsPods: the checksum annotation follows the config.
func TestConfigChangeRestartsPods(t *testing.T) {
	vs := valueSets(t)["default"]
	sum := func(objs []Object) string {
		return one[*appsv1.Deployment](t, objs, "Deployment").Spec.Template.Annotations["checksum/config"]
	}
	a := sum(render(t, vs))
	b := sum(render(t, vs, "--set", "config.oauth2.skipApprovalScreen=false"))
	if a == "" || a == b {
		t.Fatalf("checksum %q then %q: a config change does not roll the pods", a, b)
	}
}

func TestRenderFails(t *testing.T) {
	sets := valueSets(t)
	tests := []struct {
		name string
		set  string
		args []string
		want string
	}{
		{"several replicas on SQLite", "default", []string{"--set", "replicaCount=3"},
			"SQLite is one file on one pod's volume, so only one replica can use it. Set config.storage.type: postgres (with storage.config for your PostgreSQL) or kubernetes"},
		{"several replicas, existing secret on SQLite", "existing-secret", []string{"--set", "replicaCount=2"}, "SQLite is one file"},
		{"audit sink without audit", "default", []string{"--set", "auditSink.enabled=true"}, "auditSink.enabled needs config.audit.enabled"},
		{"audit sink on https without TLS", "audit-sink", []string{"--set", "auditSink.targetPort=https"}, "serves no TLS"},
		{"split sink replicas on SQLite", "audit-sink", []string{"--set", "auditSink.replicaCount=2"}, "auditSink.replicaCount is 2 but the audit store is sqlite3"},
		{"schema: sink layout", "audit-sink", []string{"--set", "auditSink.layout=sidecar"}, "auditSink.layout"},
		{"web port disagrees", "default", []string{"--set", "config.web.http=0.0.0.0:8080"}, `config.web.http is "0.0.0.0:8080" but ports.http is 5556`},
		{"telemetry port disagrees", "default", []string{"--set", "config.telemetry.http=:9000"}, "config.telemetry.http"},
		{"certificate without issuer", "ingress-certificate", []string{"--set", "ingress.tls.certManager.clusterIssuer="}, "needs ingress.tls.certManager.clusterIssuer"},
		{"no issuer", "default", []string{"--set", "config.issuer=null"}, "config.issuer is required"},
		{"no issuer, ingress on", "ingress-cert-manager", []string{"--set", "config.issuer=null"}, "config.issuer is required"},
		{"existing secret, ingress on, no host", "existing-secret", []string{"--set", "ingress.enabled=true"}, "ingress.host is required with existingSecret"},
		{"schema: misspelt key inside config", "default", []string{"--set", "config.oauth2.skipAprovalScreen=true"}, "skipAprovalScreen"},
		{"schema: misspelt connector key", "default", []string{"--set-json", `config.connectors=[{"type":"github","id":"github","name":"GitHub","config":{"clientID":"a","clientSecrt":"b"}}]`}, "clientSecrt"},
		{"schema: http issuer on a public host", "default", []string{"--set", "config.issuer=http://login.example.com/dex"}, "/config/issuer"},
		{"cert-manager issuer given twice", "ingress-cert-manager", []string{"--set", `ingress.annotations.cert-manager\.io/cluster-issuer=letsencrypt-staging`}, "keep one of them"},
		{"grace period too short for the drain", "default", []string{"--set", "terminationGracePeriodSeconds=10"}, "must exceed shutdownDelaySeconds (5) + 15"},
		{"schema: issuer not a URL", "default", []string{"--set", "config.issuer=login.example.com"}, "/config/issuer"},
		{"schema: misspelt key", "default", []string{"--set", "replicaCont=2"}, "additional properties 'replicaCont' not allowed"},
		{"schema: storage type", "default", []string{"--set", "config.storage.type=etcd"}, "config.storage.type"},
		// gatehouse proxy.
		{"no issuer URL without the issuer", "proxy-only", []string{"--set", "proxy.cluster.issuer.url="}, "proxy.cluster.issuer.url is required"},
		{"issuer URL with a trailing slash", "proxy-only", []string{"--set", "proxy.cluster.issuer.url=https://login.example.com/"}, "proxy.cluster.issuer.url"},
		{"no certificate", "proxy-only", []string{"--set", "proxy.tls.existingSecret="}, "proxy.tls.existingSecret"},
		{"no host for the certificate", "proxy-beside", []string{"--set", "proxy.host="}, "proxy.host is required"},
		{"Ingress with a LoadBalancer", "proxy-only", []string{"--set", "proxy.service.type=LoadBalancer"}, "set proxy.service.type: ClusterIP"},
		{"proxy beside an existing secret's sink", "existing-secret", []string{"--set", "auditSink.enabled=true", "--set", "proxy.enabled=true",
			"--set", "proxy.cluster.issuer.url=https://login.example.com", "--set", "proxy.tls.existingSecret=t", "--set", "proxy.audit.tokenSecret.name=t"}, "proxy.audit.url is required with existingSecret"},
		{"schema: batch wait", "proxy-only", []string{"--set", "proxy.audit.batchMaxWait=soon"}, "batchMaxWait"},
		{"audit over plain http", "proxy-only", []string{"--set", "proxy.audit.url=http://gatehouse.kube-system.svc:5556/audit/webhook"}, "proxy.audit.url"},
		{"audit without a token", "proxy-only", []string{"--set", "proxy.audit.tokenSecret.name="}, "proxy.audit.tokenSecret.name is required"},
		{"the release's sink without a token", "proxy-beside", []string{"--set", "proxy.audit.tokenSecret.name="}, "proxy.audit.tokenSecret.name is required"},
		{"system: prefix", "proxy-only", []string{"--set", "proxy.cluster.claims.groups.prefix=system:x"}, "proxy.cluster.claims.groups.prefix"},
		{"schema: misspelt proxy key", "proxy-only", []string{"--set", "proxy.replicas=2"}, "replicas"},
		{"schema: cluster name", "proxy-only", []string{"--set", "proxy.clusterName=a b"}, "clusterName"},
	}
	eachHelm(t, func(t *testing.T, helm string) {
		// The chart's defaults alone name the missing issuer.
		if _, err := Template(context.Background(), helm, chartDir(t), namespace, nil, nil); err == nil || !strings.Contains(err.Error(), "config.issuer is required") {
			t.Errorf("chart defaults: %v, want config.issuer is required", err)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				vs := sets[tt.set]
				out, err := Template(context.Background(), helm, chartDir(t), namespace, vs.APIVersions, []string{vs.File}, tt.args...)
				if err == nil {
					t.Fatalf("rendered:\n%s", out)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v\nwant it to say %q", err, tt.want)
				}
			})
		}
	})
}

// TestChecksCatchViolations shows the pod checks fail on a weakened pod.
func TestChecksCatchViolations(t *testing.T) {
	objs := render(t, valueSets(t)["default"])
	base := one[*appsv1.Deployment](t, objs, "Deployment").Spec.Template
	tests := []struct {
		name   string
		mutate func(*corev1.PodTemplateSpec)
		check  func(*corev1.PodTemplateSpec) error
	}{
		{"privilege escalation", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}, Restricted},
		{"no seccomp profile", func(p *corev1.PodTemplateSpec) {
			p.Spec.SecurityContext.SeccompProfile = nil
			p.Spec.Containers[0].SecurityContext.SeccompProfile = nil
		}, Restricted},
		{"capabilities kept", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].SecurityContext.Capabilities = nil
		}, Restricted},
		{"root allowed", func(p *corev1.PodTemplateSpec) {
			p.Spec.SecurityContext.RunAsNonRoot = nil
			p.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
		}, Restricted},
		{"writable root", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
		}, Hardened},
		{"readiness elsewhere", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/"
		}, Hardened},
		{"token mounted", func(p *corev1.PodTemplateSpec) {
			p.Spec.AutomountServiceAccountToken = nil
		}, Hardened},
		{"no token for the kubernetes storage", func(p *corev1.PodTemplateSpec) {}, HardenedAPIClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base.DeepCopy()
			tt.mutate(p)
			if err := tt.check(p); err == nil {
				t.Fatal("check passed")
			}
		})
	}
	if err := Restricted(&base); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeIsStrict(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n"},
		{"duplicate field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n"},
		{"unknown certificate field", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretNam: y}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Servic\nmetadata: {name: x}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.doc); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	objs, err := Decode("---\n# comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
	if err != nil || len(objs) != 1 {
		t.Fatalf("%v %v", objs, err)
	}
}

// workloads is how many pod templates a value set renders: the issuer,
// the audit sink's own Deployment in the split layout, the proxy.
func workloads(set string) int {
	switch {
	case set == "proxy-beside":
		return 3 // issuer, split sink, proxy
	case set == "proxy-only":
		return 1
	case strings.HasPrefix(set, "audit-") && !strings.Contains(set, "combined"):
		return 2
	}
	return 1
}

// auditDeployments returns the issuer's Deployment and the split sink's.
func auditDeployments(t *testing.T, objs []Object) (issuer, sink *appsv1.Deployment) {
	t.Helper()
	for _, o := range Find(objs, "Deployment") {
		d := o.Typed.(*appsv1.Deployment)
		if strings.HasSuffix(d.Name, "-audit-sink") {
			sink = d
		} else {
			issuer = d
		}
	}
	if issuer == nil || sink == nil {
		t.Fatalf("want the issuer's and the audit sink's Deployments")
	}
	return issuer, sink
}

// checkSplitSink checks the split layout: the sink runs `gatehouse audit
// sink` with the memory the budget gives, the issuer leaves it the webhook,
// and no selector of the issuer picks the sink's pods.
func checkSplitSink(t *testing.T, objs []Object, issuer, sink *appsv1.Deployment, memory, gomemlimit string) {
	t.Helper()
	c := sink.Spec.Template.Spec.Containers[0]
	if strings.Join(c.Args, " ") != "audit sink --config /etc/gatehouse/config.yaml" {
		t.Errorf("sink args %v", c.Args)
	}
	if got := c.Resources.Limits.Memory().String(); got != memory || c.Resources.Requests.Memory().String() != memory {
		t.Errorf("sink memory limit %s request %s, want %s (from the budget)", got, c.Resources.Requests.Memory(), memory)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["GOMEMLIMIT"] != gomemlimit {
		t.Errorf("GOMEMLIMIT %q, want %q", env["GOMEMLIMIT"], gomemlimit)
	}
	if issuer.Spec.Template.Spec.Containers[0].Args[0] != "serve" {
		t.Errorf("issuer args %v", issuer.Spec.Template.Spec.Containers[0].Args)
	}
	if !strings.Contains(renderedConfig(t, objs), "separate: true") {
		t.Error("the config does not leave the webhook to the sink (audit.webhook.separate)")
	}
	if selects(issuer.Spec.Selector.MatchLabels, sink.Spec.Template.Labels) || selects(sink.Spec.Selector.MatchLabels, issuer.Spec.Template.Labels) {
		t.Error("the Deployments' selectors overlap")
	}
	for _, o := range Find(objs, "Service") {
		svc := o.Typed.(*corev1.Service)
		if !strings.Contains(svc.Name, "audit-sink") && selects(svc.Spec.Selector, sink.Spec.Template.Labels) {
			t.Errorf("Service %s sends to the sink's pods", svc.Name)
		}
	}
	for _, o := range Find(objs, "PodDisruptionBudget") {
		if selects(o.Typed.(*policyv1.PodDisruptionBudget).Spec.Selector.MatchLabels, sink.Spec.Template.Labels) {
			t.Error("the issuer's PodDisruptionBudget counts the sink's pods")
		}
	}
}

// selects reports whether selector matches labels (an empty selector
// matches nothing here).
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// renderedConfig is the config.yaml of the chart's Secret.
func renderedConfig(t *testing.T, objs []Object) string {
	t.Helper()
	return string(one[*corev1.Secret](t, objs, "Secret").Data["config.yaml"])
}
