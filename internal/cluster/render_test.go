package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit/policy"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/cluster/authnconfig"
)

func renderSeed(t *testing.T, name string) (*Config, map[string]File) {
	t.Helper()
	c, err := Load(filepath.Join("testdata", name, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]File{}
	for _, f := range files {
		m[f.Name] = f
	}
	return c, m
}

// strictYAML decodes YAML into out, failing on unknown or duplicate keys.
func strictYAML(t *testing.T, name string, data []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("%s: strict decode into %T: %v", name, out, err)
	}
}

// authnCase is a config and the authentication-config.yaml it renders.
type authnCase struct {
	c    *Config
	data []byte
}

// renderedAuthn renders authentication-config.yaml for the seed configs
// and for variants that exercise the rest of what gatehouse writes (one or
// several audiences, a CA or none, empty prefixes, the email rule).
func renderedAuthn(t *testing.T) map[string]authnCase {
	t.Helper()
	out := map[string]authnCase{}
	for _, name := range []string{"seed", "seed-email"} {
		c, files := renderSeed(t, name)
		out[name] = authnCase{c, files[FileAuthenticationConfig].Data}
	}
	variants := map[string]string{
		"no prefixes, two audiences": "issuer: {url: https://login.example.com, audiences: [a, b]}\nclaims: {username: {prefix: ''}, groups: {prefix: ''}}\n",
		"email with prefix":          "issuer: {url: https://login.example.com/x}\nclaims: {username: {claim: email, prefix: 'gh:'}}\n",
		"sub":                        "issuer: {url: https://login.example.com, clientID: k8s}\nclaims: {username: {claim: sub}, groups: {claim: teams}}\n",
	}
	for name, y := range variants {
		c, err := Parse([]byte(y + "audit: {webhook: {disabled: true}}\n"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Complete(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		files, err := c.Render()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range files {
			if f.Name == FileAuthenticationConfig {
				out[name] = authnCase{c, f.Data}
			}
		}
	}
	return out
}

// TestAuthenticationConfigValidates decodes every rendered
// authentication-config.yaml as kube-apiserver does (strict, into the
// internal type through v1) and runs the apiserver's own validation, CEL
// compilation included. gatehouse renders it from its own copy of the
// types (package authnconfig, to keep component-base out of the binary):
// the upstream v1 type must also marshal it back byte for byte, so a field
// that upstream renamed, dropped or defaults differently fails here.
func TestAuthenticationConfigValidates(t *testing.T) {
	sch := runtime.NewScheme()
	apiserverinstall.Install(sch)
	decoder := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDecoder()
	for name, r := range renderedAuthn(t) {
		t.Run(name, func(t *testing.T) {
			c, data := r.c, r.data
			var v1cfg apiserverv1.AuthenticationConfiguration
			strictYAML(t, FileAuthenticationConfig, data, &v1cfg)
			again, err := yaml.Marshal(&v1cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("the upstream type writes it differently:\n--- upstream\n%s\n--- rendered\n%s", again, data)
			}

			obj, gvk, err := decoder.Decode(data, nil, &apiserverapi.AuthenticationConfiguration{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if gvk.GroupVersion() != apiserverv1.SchemeGroupVersion {
				t.Errorf("version %v, want %v", gvk, apiserverv1.SchemeGroupVersion)
			}
			cfg := obj.(*apiserverapi.AuthenticationConfiguration)
			if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), cfg, nil); len(errs) > 0 {
				t.Fatalf("kube-apiserver would refuse it: %v", errs.ToAggregate())
			}
			jwt := cfg.JWT[0]
			if jwt.Issuer.URL != c.Issuer.URL {
				t.Errorf("issuer %q, want %q", jwt.Issuer.URL, c.Issuer.URL)
			}
			if !reflect.DeepEqual(jwt.Issuer.Audiences, c.Issuer.Audiences) {
				t.Errorf("audiences %q, want %q", jwt.Issuer.Audiences, c.Issuer.Audiences)
			}
			if got, want := *jwt.ClaimMappings.Username.Prefix, c.UsernamePrefix(); got != want {
				t.Errorf("username prefix %q, want %q", got, want)
			}
			if got, want := *jwt.ClaimMappings.Groups.Prefix, c.GroupsPrefix(); got != want {
				t.Errorf("groups prefix %q, want %q", got, want)
			}
			hasEmailRule := false
			for _, r := range jwt.ClaimValidationRules {
				if strings.Contains(r.Expression, "email_verified") {
					hasEmailRule = true
				}
			}
			if want := c.Claims.Username.Claim == "email"; hasEmailRule != want {
				t.Errorf("email_verified rule present=%v, want %v", hasEmailRule, want)
			}
		})
	}
}

// TestAuthenticationConfigValidationCatchesMistakes proves the validation
// above can fail: a config the apiserver refuses is refused here too.
func TestAuthenticationConfigValidationCatchesMistakes(t *testing.T) {
	c, _ := renderSeed(t, "seed")
	cases := map[string]func(*authnconfig.AuthenticationConfiguration){
		"http issuer": func(a *authnconfig.AuthenticationConfiguration) { a.JWT[0].Issuer.URL = "http://x.example.com" },
		"no prefix":   func(a *authnconfig.AuthenticationConfiguration) { a.JWT[0].ClaimMappings.Username.Prefix = nil },
		"bad CEL": func(a *authnconfig.AuthenticationConfiguration) {
			a.JWT[0].UserValidationRules[0].Expression = "user.username +"
		},
		"no audience": func(a *authnconfig.AuthenticationConfiguration) { a.JWT[0].Issuer.Audiences = nil },
		"email unverify": func(a *authnconfig.AuthenticationConfiguration) {
			a.JWT[0].ClaimMappings.Username = authnconfig.PrefixedClaimOrExpression{Expression: "claims.email"}
		},
	}
	sch := runtime.NewScheme()
	apiserverinstall.Install(sch)
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := c.AuthenticationConfiguration(nil)
			mutate(cfg)
			data, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var v1cfg apiserverv1.AuthenticationConfiguration
			strictYAML(t, name, data, &v1cfg)
			var internal apiserverapi.AuthenticationConfiguration
			if err := sch.Convert(&v1cfg, &internal, nil); err != nil {
				t.Fatal(err)
			}
			if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), &internal, nil); len(errs) == 0 {
				t.Fatal("validation accepted a broken configuration")
			}
		})
	}
}

// TestAuditPolicy loads audit-policy.yaml with kube-apiserver's policy
// loader and asks its rule evaluator what it records.
func TestAuditPolicy(t *testing.T) {
	_, files := renderSeed(t, "seed")
	dir := t.TempDir()
	file := filepath.Join(dir, FileAuditPolicy)
	if err := os.WriteFile(file, files[FileAuditPolicy].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.LoadPolicyFromFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var strict auditv1.Policy
	strictYAML(t, FileAuditPolicy, files[FileAuditPolicy].Data, &strict)
	if !reflect.DeepEqual(strict.Rules, AuditPolicy().Rules) {
		t.Error("the commented file does not decode to the policy it was rendered from")
	}
	if !p.OmitManagedFields {
		t.Error("omitManagedFields is false")
	}
	if !reflect.DeepEqual(p.OmitStages, []auditinternal.Stage{auditinternal.StageRequestReceived}) {
		t.Errorf("omitStages %v", p.OmitStages)
	}
	eval := policy.NewPolicyRuleEvaluator(p)
	alice := &user.DefaultInfo{Name: "oidc:alice", Groups: []string{"oidc:exampleorg:infra-team", "system:authenticated"}}
	node := &user.DefaultInfo{Name: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}}
	res := func(u user.Info, verb, group, resource, sub string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: verb, APIGroup: group, APIVersion: "v1", Resource: resource, Subresource: sub, Namespace: "default", ResourceRequest: true}
	}
	cases := []struct {
		name  string
		attrs authorizer.AttributesRecord
		want  auditinternal.Level
	}{
		{"secret get", res(alice, "get", "", "secrets", ""), auditinternal.LevelMetadata},
		{"secret update", res(alice, "update", "", "secrets", ""), auditinternal.LevelMetadata},
		{"configmap create", res(alice, "create", "", "configmaps", ""), auditinternal.LevelMetadata},
		{"token request", res(alice, "create", "", "serviceaccounts", "token"), auditinternal.LevelMetadata},
		{"tokenreview", res(alice, "create", "authentication.k8s.io", "tokenreviews", ""), auditinternal.LevelMetadata},
		{"clusterrolebinding create", res(alice, "create", "rbac.authorization.k8s.io", "clusterrolebindings", ""), auditinternal.LevelRequestResponse},
		{"role delete", res(alice, "delete", "rbac.authorization.k8s.io", "roles", ""), auditinternal.LevelRequestResponse},
		{"clusterrolebinding get", res(alice, "get", "rbac.authorization.k8s.io", "clusterrolebindings", ""), auditinternal.LevelMetadata},
		{"deployment patch", res(alice, "patch", "apps", "deployments", ""), auditinternal.LevelRequestResponse},
		{"pod create", res(alice, "create", "", "pods", ""), auditinternal.LevelRequestResponse},
		{"pod exec", res(alice, "create", "", "pods", "exec"), auditinternal.LevelMetadata},
		{"pods list", res(alice, "list", "", "pods", ""), auditinternal.LevelMetadata},
		{"namespaces list", res(alice, "list", "", "namespaces", ""), auditinternal.LevelMetadata},
		{"lease update", res(node, "update", "coordination.k8s.io", "leases", ""), auditinternal.LevelNone},
		{"node watches pods", res(node, "watch", "", "pods", ""), auditinternal.LevelNone},
		{"node patches pod status", res(node, "patch", "", "pods", "status"), auditinternal.LevelMetadata},
		{"event create", res(alice, "create", "", "events", ""), auditinternal.LevelNone},
		{"custom resource update", res(alice, "update", "example.com", "widgets", ""), auditinternal.LevelMetadata},
		{"healthz", authorizer.AttributesRecord{User: alice, Verb: "get", Path: "/healthz/etcd"}, auditinternal.LevelNone},
		{"readyz", authorizer.AttributesRecord{User: alice, Verb: "get", Path: "/readyz"}, auditinternal.LevelNone},
		{"openapi", authorizer.AttributesRecord{User: alice, Verb: "get", Path: "/openapi/v3"}, auditinternal.LevelMetadata},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := eval.EvaluatePolicyRule(tc.attrs)
			if got.Level != tc.want {
				t.Errorf("level %s, want %s", got.Level, tc.want)
			}
			if !got.OmitManagedFields {
				t.Error("managed fields not omitted")
			}
		})
	}
}

// TestAuditPolicyCommented checks that every rule carries its reason.
func TestAuditPolicyCommented(t *testing.T) {
	data, err := renderAuditPolicy()
	if err != nil {
		t.Fatal(err)
	}
	rules := AuditPolicyRules()
	if got := strings.Count(string(data), "\n- level: "); got != len(rules) {
		t.Fatalf("%d rules in file, want %d", got, len(rules))
	}
	for i, r := range rules {
		if r.Why == "" {
			t.Errorf("rule %d has no reason", i+1)
		}
		first := strings.Fields(r.Why)[0]
		if !strings.Contains(string(data), "# "+strconv.Itoa(i+1)+". "+first) {
			t.Errorf("rule %d's comment missing", i+1)
		}
	}
}

// TestRBAC decodes rbac.yaml strictly, document by document, with the
// client-go scheme and checks the subjects carry the groups prefix.
func TestRBAC(t *testing.T) {
	for _, name := range []string{"seed", "seed-email"} {
		t.Run(name, func(t *testing.T) {
			_, files := renderSeed(t, name)
			decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
			subjects := map[string]string{} // subject name -> role@namespace
			for _, doc := range bytes.Split(files[FileRBAC].Data, []byte("---\n")) {
				obj, _, err := decoder.Decode(doc, nil, nil)
				if err != nil {
					t.Fatalf("decode: %v\n%s", err, doc)
				}
				switch o := obj.(type) {
				case *rbacv1.ClusterRoleBinding:
					checkManaged(t, o.Labels)
					for _, s := range o.Subjects {
						subjects[s.Kind+" "+s.Name] = o.RoleRef.Name
					}
				case *rbacv1.RoleBinding:
					checkManaged(t, o.Labels)
					for _, s := range o.Subjects {
						subjects[s.Kind+" "+s.Name] += o.RoleRef.Name + "@" + o.Namespace + " "
					}
				default:
					t.Fatalf("unexpected %T", obj)
				}
			}
			want := map[string]string{}
			switch name {
			case "seed":
				want["Group oidc:exampleorg:infra-team"] = "cluster-admin"
				want["Group oidc:exampleorg:web"] = "edit@web "
			case "seed-email":
				want["Group gh:exampleorg:web"] = "view@web view@web-staging "
				want["User alice@example.com"] = "cluster-admin"
			}
			if !reflect.DeepEqual(subjects, want) {
				t.Errorf("subjects %v, want %v", subjects, want)
			}
		})
	}
}

func checkManaged(t *testing.T, labels map[string]string) {
	t.Helper()
	if labels[LabelManagedBy] != LabelManagedByValue {
		t.Errorf("binding without %s=%s", LabelManagedBy, LabelManagedByValue)
	}
}

// TestKubeconfigs decodes both kubeconfigs strictly into clientcmd v1 and
// loads them with clientcmd as kubectl does.
func TestKubeconfigs(t *testing.T) {
	for _, name := range []string{"seed", "seed-email"} {
		t.Run(name, func(t *testing.T) {
			c, files := renderSeed(t, name)
			for _, fn := range []string{FileKubeconfig, FileAuditWebhook} {
				var kc clientcmdv1.Config
				strictYAML(t, fn, files[fn].Data, &kc)
				loaded, err := clientcmd.Load(files[fn].Data)
				if err != nil {
					t.Fatalf("%s: %v", fn, err)
				}
				if err := clientcmd.Validate(*loaded); err != nil {
					t.Errorf("%s: clientcmd rejects it: %v", fn, err)
				}
			}
			if files[FileAuditWebhook].Mode != 0o600 {
				t.Errorf("audit webhook kubeconfig mode %v, want 0600", files[FileAuditWebhook].Mode)
			}
			team, _ := clientcmd.Load(files[FileKubeconfig].Data)
			ctx := team.Contexts[team.CurrentContext]
			exec := team.AuthInfos[ctx.AuthInfo].Exec
			args := strings.Join(exec.Args, " ")
			for _, want := range []string{"get-token", "--oidc-issuer-url=" + c.Issuer.URL, "--oidc-client-id=" + c.Issuer.ClientID} {
				if !strings.Contains(args, want) {
					t.Errorf("exec args %q lack %q", args, want)
				}
			}
			if exec.Command != "kubectl" || exec.Args[0] != c.Kubeconfig.Plugin {
				t.Errorf("exec %s %v", exec.Command, exec.Args)
			}
			if team.Clusters[ctx.Cluster].Server != c.Server {
				t.Errorf("server %q", team.Clusters[ctx.Cluster].Server)
			}
			sink, _ := clientcmd.Load(files[FileAuditWebhook].Data)
			sctx := sink.Contexts[sink.CurrentContext]
			if got := sink.Clusters[sctx.Cluster].Server; got != c.Audit.Webhook.URL {
				t.Errorf("sink URL %q, want %q", got, c.Audit.Webhook.URL)
			}
			if sink.AuthInfos[sctx.AuthInfo].Token == "" {
				t.Error("sink credential missing")
			}
		})
	}
}

// TestDistroSnippets decodes the KubeOne and kubeadm snippets strictly into
// their mirror types and checks they name the same flags and files.
func TestDistroSnippets(t *testing.T) {
	c, files := renderSeed(t, "seed")
	var k1 KubeOneFeatures
	strictYAML(t, FileKubeOneFeatures, files[FileKubeOneFeatures].Data, &k1)
	oidc := k1.Features.OpenIDConnect
	if oidc == nil || !oidc.Enable || oidc.Config.IssuerURL != c.Issuer.URL || oidc.Config.UsernamePrefix != "oidc:" || oidc.Config.GroupsPrefix != "oidc:" {
		t.Errorf("openidConnect %+v", oidc)
	}
	if k1.Features.StaticAuditLog == nil || k1.Features.WebhookAuditLog == nil {
		t.Error("audit features missing")
	}
	var kubeadm KubeadmClusterConfiguration
	strictYAML(t, FileKubeadmPatch, files[FileKubeadmPatch].Data, &kubeadm)
	args := map[string]string{}
	for _, a := range kubeadm.APIServer.ExtraArgs {
		args[a.Name] = a.Value
	}
	if args["authentication-config"] != "/etc/kubernetes/gatehouse/authentication-config.yaml" {
		t.Errorf("authentication-config %q", args["authentication-config"])
	}
	if _, ok := args["oidc-issuer-url"]; ok {
		t.Error("structured mode must not set --oidc-* flags too (kube-apiserver refuses both)")
	}
	for _, f := range c.AuditFlags() {
		if args[f.Name] != f.Value {
			t.Errorf("kubeadm %s=%q, audit-flags.txt says %q", f.Name, args[f.Name], f.Value)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "issuer: {url: https://a.example.com}\nteam: {}\n", `unknown field "team"`},
		{"http issuer", "issuer: {url: http://a.example.com}\naudit: {webhook: {disabled: true}}\n", "issuer.url"},
		{"trailing slash", "issuer: {url: https://a.example.com/}\naudit: {webhook: {disabled: true}}\n", "ends in /"},
		{"no sink credential", "issuer: {url: https://a.example.com}\n", "audit.webhook: needs a credential"},
		{"dash prefix", "issuer: {url: https://a.example.com}\nclaims: {username: {prefix: '-'}}\naudit: {webhook: {disabled: true}}\n", "claims.username.prefix"},
		{"system prefix", "issuer: {url: https://a.example.com}\nclaims: {groups: {prefix: 'system:'}}\naudit: {webhook: {disabled: true}}\n", "claims.groups.prefix"},
		{"bad namespace", "issuer: {url: https://a.example.com}\nteams: {'o:t': {role: edit, namespace: Web_1}}\naudit: {webhook: {disabled: true}}\n", "teams[o:t].namespace"},
		{"unknown binding key", "issuer: {url: https://a.example.com}\nteams: {'o:t': {role: edit, ns: web}}\naudit: {webhook: {disabled: true}}\n", "unknown field"},
		{"no role", "issuer: {url: https://a.example.com}\nteams: {'o:t': {namespace: web}}\naudit: {webhook: {disabled: true}}\n", "teams[o:t].role"},
		{"mode", "authentication: both\nissuer: {url: https://a.example.com}\naudit: {webhook: {disabled: true}}\n", "authentication"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err == nil {
				err = c.Complete()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("issuer: {url: https://login.example.com/dex}\naudit: {webhook: {bearerToken: abc}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	if c.Audit.Webhook.URL != "https://login.example.com/audit/webhook" {
		t.Errorf("sink URL %q", c.Audit.Webhook.URL)
	}
	if !reflect.DeepEqual(c.Issuer.ExtraScopes, []string{"groups", "offline_access", "profile"}) {
		t.Errorf("scopes %v", c.Issuer.ExtraScopes)
	}
	if c.UsernamePrefix() != "oidc:" || c.GroupsPrefix() != "oidc:" || c.Issuer.ClientID != "kubernetes" {
		t.Errorf("defaults %q %q %q", c.UsernamePrefix(), c.GroupsPrefix(), c.Issuer.ClientID)
	}
	if _, err := c.Render(); err != nil {
		t.Fatal(err)
	}
}

// TestAuditWebhookClientCert: a client certificate instead of a token ends
// up inline in the webhook kubeconfig, and half a pair is refused.
func TestAuditWebhookClientCert(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kube-apiserver"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(filepath.Join(dir, "sink.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sink.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, webhook, wantErr string
	}{
		{name: "pair", webhook: "{clientCertFile: sink.crt, clientKeyFile: sink.key}"},
		{name: "half", webhook: "{clientCertFile: sink.crt}", wantErr: "go together"},
		{name: "missing file", webhook: "{clientCertFile: nope.crt, clientKeyFile: sink.key}", wantErr: "nope.crt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "cluster.yaml")
			if err := os.WriteFile(file, []byte("issuer: {url: https://login.example.com}\naudit: {webhook: "+tc.webhook+"}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(file)
			var files []File
			if err == nil {
				files, err = c.Render()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.Name != FileAuditWebhook {
					continue
				}
				kc, err := clientcmd.Load(f.Data)
				if err != nil {
					t.Fatal(err)
				}
				u := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
				if !bytes.Equal(u.ClientCertificateData, certPEM) || !bytes.Equal(u.ClientKeyData, keyPEM) || u.Token != "" {
					t.Errorf("credential not inline as given: %+v", u)
				}
				return
			}
			t.Fatal("no audit webhook kubeconfig rendered")
		})
	}
}
