package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
)

func clusterCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeClusterYAML(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeGatehouseNoAudit writes testdata/gatehouse.yaml without its audit
// section.
func writeGatehouseNoAudit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gatehouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := strings.Cut(string(b), "audit:")
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseBindingFlag(t *testing.T) {
	cases := []struct {
		spec, name string
		want       cluster.Binding
		bad        bool
	}{
		{spec: "exampleorg:infra-team=cluster-admin", name: "exampleorg:infra-team", want: cluster.Binding{Role: "cluster-admin"}},
		{spec: "exampleorg:web=edit@web", name: "exampleorg:web", want: cluster.Binding{Role: "edit", Namespaces: []string{"web"}}},
		{spec: "o:t=view@a,b", name: "o:t", want: cluster.Binding{Role: "view", Namespaces: []string{"a", "b"}}},
		{spec: "alice@example.com=view", name: "alice@example.com", want: cluster.Binding{Role: "view"}},
		{spec: "no-role", bad: true},
		{spec: "=view", bad: true},
		{spec: "o:t=", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.spec, func(t *testing.T) {
			name, b, err := parseBindingFlag(tc.spec)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q", tc.spec)
				}
				return
			}
			if err != nil || name != tc.name || !reflect.DeepEqual(b, tc.want) {
				t.Fatalf("got %q %+v %v, want %q %+v", name, b, err, tc.name, tc.want)
			}
		})
	}
}

func TestClusterRenderCommand(t *testing.T) {
	seed := filepath.Join("..", "..", "internal", "cluster", "testdata", "seed", "cluster.yaml")
	cases := []struct {
		name      string
		args      []string
		files     []string // must exist
		absent    []string
		errSubstr string
		check     func(t *testing.T, dir string)
	}{
		{
			name:   "flags only, no server",
			args:   []string{"--issuer-url", "https://login.example.com", "--team", "exampleorg:infra-team=cluster-admin", "--audit-webhook-token", "abcdefghijklmnop"},
			files:  []string{cluster.FileAuthenticationConfig, cluster.FileAPIServerFlags, cluster.FileAuditPolicy, cluster.FileAuditWebhook, cluster.FileRBAC},
			absent: []string{cluster.FileKubeconfig, cluster.FileIssuerCA},
			check: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, cluster.FileRBAC))
				if !strings.Contains(string(b), "name: oidc:exampleorg:infra-team") {
					t.Errorf("rbac.yaml:\n%s", b)
				}
			},
		},
		{
			name:  "config with overrides",
			args:  []string{"--config", seed, "--server", "https://other.example.com:6443", "--username-prefix", "", "--authentication", "flags"},
			files: []string{cluster.FileKubeconfig, cluster.FileKubeadmPatch},
			check: func(t *testing.T, dir string) {
				kc, err := clientcmd.LoadFromFile(filepath.Join(dir, cluster.FileKubeconfig))
				if err != nil {
					t.Fatal(err)
				}
				if s := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster].Server; s != "https://other.example.com:6443" {
					t.Errorf("server %q", s)
				}
				flags, _ := os.ReadFile(filepath.Join(dir, cluster.FileAPIServerFlags))
				if !strings.Contains(string(flags), "--oidc-username-prefix=-\n") {
					t.Errorf("empty prefix not rendered as -:\n%s", flags)
				}
				patch, _ := os.ReadFile(filepath.Join(dir, cluster.FileKubeadmPatch))
				if !strings.Contains(string(patch), "name: oidc-issuer-url") || strings.Contains(string(patch), "authentication-config") {
					t.Errorf("--authentication flags not honoured:\n%s", patch)
				}
			},
		},
		{
			name:  "from gatehouse's config",
			args:  []string{"--gatehouse-config", filepath.Join("testdata", "gatehouse.yaml"), "--server", "https://api.example.com:6443"},
			files: []string{cluster.FileKubeconfig, cluster.FileAuditWebhook},
			check: func(t *testing.T, dir string) {
				kc, err := clientcmd.LoadFromFile(filepath.Join(dir, cluster.FileKubeconfig))
				if err != nil {
					t.Fatal(err)
				}
				args := strings.Join(kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo].Exec.Args, " ")
				if !strings.Contains(args, "--oidc-issuer-url=https://login.example.com/dex") || !strings.Contains(args, "--oidc-client-secret=kube-secret") {
					t.Errorf("exec args %s", args)
				}
				sink, err := clientcmd.LoadFromFile(filepath.Join(dir, cluster.FileAuditWebhook))
				if err != nil {
					t.Fatal(err)
				}
				ctx := sink.Contexts[sink.CurrentContext]
				if sink.Clusters[ctx.Cluster].Server != "https://login.example.com/audit/webhook" || sink.AuthInfos[ctx.AuthInfo].Token != "0123456789abcdef0123456789abcdef" {
					t.Errorf("sink %s token %q", sink.Clusters[ctx.Cluster].Server, sink.AuthInfos[ctx.AuthInfo].Token)
				}
			},
		},
		{
			name:      "disagreeing with gatehouse's config",
			args:      []string{"--gatehouse-config", filepath.Join("testdata", "gatehouse.yaml"), "--client-id", "k8s"},
			errSubstr: `the flags disagree with testdata/gatehouse.yaml: --client-id: gatehouse has no static client "k8s"`,
		},
		{
			name:      "mistakes are named as typed",
			args:      []string{"--issuer-url", "http://login.example.com", "--team", "o:t=edit@Bad_NS"},
			errSubstr: `--issuer-url: "http://login.example.com" must be an https URL`,
		},
		{
			name:      "advice names the flag",
			args:      []string{"--issuer-url", "https://login.example.com/dex"},
			errSubstr: "the audit webhook: needs a credential for gatehouse's sink: --audit-webhook-token, --audit-webhook-token-file, or --audit-webhook-client-cert and --audit-webhook-client-key (or pass --no-audit-webhook)",
		},
		{
			name:      "sink off in gatehouse's config",
			args:      []string{"--gatehouse-config", writeGatehouseNoAudit(t)},
			errSubstr: "turn it on there, or pass --no-audit-webhook",
		},
		{
			name:      "cluster.yaml keys stay keys",
			args:      []string{"--config", writeClusterYAML(t, "issuer: {url: \"http://login.example.com\"}\n")},
			errSubstr: `issuer.url: "http://login.example.com" must be an https URL`,
		},
		{
			name:      "bad team flag",
			args:      []string{"--issuer-url", "https://login.example.com", "--team", "o:t"},
			errSubstr: "--team",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			out, err := clusterCLI(t, append([]string{"cluster", "render", "--out", dir}, tc.args...)...)
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, f := range tc.files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s not written: %v", f, err)
				}
			}
			for _, f := range tc.absent {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s written, should not be", f)
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, cluster.FileAuditWebhook)); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600 (it holds a credential)", cluster.FileAuditWebhook, fi.Mode().Perm())
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}
}

func TestKubeconfigCommand(t *testing.T) {
	seed := filepath.Join("..", "..", "internal", "cluster", "testdata", "seed", "cluster.yaml")
	cases := []struct {
		name      string
		args      []string
		wantArgs  []string
		server    string
		cluster   string
		caData    string
		errSubstr string
	}{
		{
			name:     "flags",
			args:     []string{"--issuer-url", "https://login.example.com", "--server", "https://api.example.com:6443", "--oidc-extra-scope", "groups,profile"},
			wantArgs: []string{"gatehouse", "get-token", "--oidc-issuer-url=https://login.example.com", "--oidc-client-id=kubernetes", "--oidc-extra-scope=groups", "--oidc-extra-scope=profile"},
			server:   "https://api.example.com:6443",
		},
		{
			name:     "kubelogin",
			args:     []string{"--issuer-url", "https://login.example.com", "--server", "https://api.example.com:6443", "--plugin", "oidc-login", "--client-secret", "s3cret", "--oidc-extra-scope", "groups", "--arg=--grant-type=device-code"},
			wantArgs: []string{"oidc-login", "get-token", "--oidc-issuer-url=https://login.example.com", "--oidc-client-id=kubernetes", "--oidc-client-secret=s3cret", "--oidc-extra-scope=groups", "--grant-type=device-code"},
			server:   "https://api.example.com:6443",
		},
		{
			name:     "from cluster.yaml with override",
			args:     []string{"--config", seed, "--client-id", "kubectl"},
			wantArgs: []string{"gatehouse", "get-token", "--oidc-issuer-url=https://gatehouse.example.com", "--oidc-client-id=kubectl", "--oidc-extra-scope=groups", "--oidc-extra-scope=offline_access", "--oidc-extra-scope=profile"},
			server:   "https://api.example.com:6443",
		},
		{
			name:     "from the admin kubeconfig",
			args:     []string{"--from-kubeconfig", filepath.Join("testdata", "example-kubeconfig"), "--issuer-url", "https://login.example.com", "--oidc-extra-scope", "groups,profile"},
			wantArgs: []string{"gatehouse", "get-token", "--oidc-issuer-url=https://login.example.com", "--oidc-client-id=kubernetes", "--oidc-extra-scope=groups", "--oidc-extra-scope=profile"},
			server:   "https://example.k8s.example.com:6443",
			cluster:  "example",
			caData:   "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		},
		{
			name:     "client secret from gatehouse's config",
			args:     []string{"--gatehouse-config", filepath.Join("testdata", "gatehouse.yaml"), "--server", "https://api.example.com:6443"},
			wantArgs: []string{"gatehouse", "get-token", "--oidc-issuer-url=https://login.example.com/dex", "--oidc-client-id=kubernetes", "--oidc-client-secret=kube-secret", "--oidc-extra-scope=groups", "--oidc-extra-scope=offline_access", "--oidc-extra-scope=profile"},
			server:   "https://api.example.com:6443",
		},
		{name: "client not in gatehouse's config", args: []string{"--gatehouse-config", filepath.Join("testdata", "gatehouse.yaml"), "--client-id", "k8s", "--server", "https://api.example.com:6443"}, errSubstr: `--client-id: gatehouse has no static client "k8s"`},
		{name: "no issuer", args: []string{"--server", "https://api.example.com:6443"}, errSubstr: "issuer URL"},
		{name: "no server", args: []string{"--issuer-url", "https://login.example.com"}, errSubstr: "server"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "team.kubeconfig")
			out, err := clusterCLI(t, append([]string{"kubeconfig", "-o", file}, tc.args...)...)
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			kc, err := clientcmd.LoadFromFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := clientcmd.Validate(*kc); err != nil {
				t.Fatalf("kubectl would reject it: %v", err)
			}
			ctx := kc.Contexts[kc.CurrentContext]
			exec := kc.AuthInfos[ctx.AuthInfo].Exec
			if !reflect.DeepEqual(exec.Args, tc.wantArgs) {
				t.Errorf("exec args\n got %q\nwant %q", exec.Args, tc.wantArgs)
			}
			if exec.APIVersion != "client.authentication.k8s.io/v1" || exec.Command != "kubectl" {
				t.Errorf("exec %s %s", exec.APIVersion, exec.Command)
			}
			if s := kc.Clusters[ctx.Cluster].Server; s != tc.server {
				t.Errorf("server %q, want %q", s, tc.server)
			}
			if tc.cluster != "" && ctx.Cluster != tc.cluster {
				t.Errorf("cluster %q, want %q", ctx.Cluster, tc.cluster)
			}
			if tc.caData != "" && string(kc.Clusters[ctx.Cluster].CertificateAuthorityData) != tc.caData {
				t.Errorf("CA %q, want %q", kc.Clusters[ctx.Cluster].CertificateAuthorityData, tc.caData)
			}
			if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode().Perm())
			}
		})
	}
}

// TestKubeconfigSaysHowToPassTheSecret: without a secret, the command
// says how to give one for a confidential client; with one, it is in the
// kubeconfig.
func TestKubeconfigSaysHowToPassTheSecret(t *testing.T) {
	out, err := clusterCLI(t, "kubeconfig", "-o", filepath.Join(t.TempDir(), "k"), "--issuer-url", "https://login.example.com/dex", "--server", "https://api.example.com:6443")
	if err != nil || !strings.Contains(out, "pass --client-secret, or --gatehouse-config") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = clusterCLI(t, "kubeconfig", "-o", "-", "--issuer-url", "https://login.example.com/dex", "--server", "https://api.example.com:6443", "--client-secret", "s3cret")
	if err != nil || strings.Contains(out, "No client secret") || !strings.Contains(out, "--oidc-client-secret=s3cret") {
		t.Fatalf("%v\n%s", err, out)
	}
}
