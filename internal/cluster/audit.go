package cluster

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// PolicyRule is an audit policy rule with the reason it exists; the reason
// is written as a comment above the rule in audit-policy.yaml.
type PolicyRule struct {
	Why  string
	Rule auditv1.PolicyRule
}

// Verbs that change state.
var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

// AuditPolicyRules is the curated policy, in order: kube-apiserver uses the
// first rule that matches a request.
func AuditPolicyRules() []PolicyRule {
	return []PolicyRule{
		{
			Why: "Probes, metrics scrapes and version checks arrive every few seconds and change nothing; logging them would drown the log.",
			Rule: auditv1.PolicyRule{
				Level:           auditv1.LevelNone,
				NonResourceURLs: []string{"/healthz*", "/livez*", "/readyz*", "/metrics", "/version", "/version/"},
			},
		},
		{
			Why: "Control-plane components read and watch the API all day; their reads are noise. Their writes stay logged by the rules below.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelNone,
				Users: []string{"system:kube-controller-manager", "system:kube-scheduler", "system:kube-proxy", "system:apiserver"},
				Verbs: []string{"get", "list", "watch"},
			},
		},
		{
			Why: "The same for kubelets (group system:nodes). A rule's users and userGroups must both match, hence a rule of its own.",
			Rule: auditv1.PolicyRule{
				Level:      auditv1.LevelNone,
				UserGroups: []string{"system:nodes"},
				Verbs:      []string{"get", "list", "watch"},
			},
		},
		{
			Why: "Leases are leader election and node heartbeats, renewed every few seconds by every node and controller.",
			Rule: auditv1.PolicyRule{
				Level:     auditv1.LevelNone,
				Resources: []auditv1.GroupResources{{Group: "coordination.k8s.io", Resources: []string{"leases"}}},
			},
		},
		{
			Why: "Events are a record of their own; auditing their creation doubles the volume and adds nothing about who did what.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelNone,
				Resources: []auditv1.GroupResources{
					{Group: "", Resources: []string{"events"}},
					{Group: "events.k8s.io", Resources: []string{"events"}},
				},
			},
		},
		{
			Why: "Secrets, ConfigMaps, token requests and TokenReviews carry credentials in their bodies: record who touched what, never the content. This rule must stay above the RequestResponse rules.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelMetadata,
				Resources: []auditv1.GroupResources{
					{Group: "", Resources: []string{"secrets", "configmaps", "serviceaccounts/token"}},
					{Group: "authentication.k8s.io", Resources: []string{"tokenreviews"}},
				},
			},
		},
		{
			Why: "exec, attach and port-forward: who opened a shell or a tunnel into which pod; the stream itself is not part of the request body.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelMetadata,
				Resources: []auditv1.GroupResources{
					{Group: "", Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}},
				},
			},
		},
		{
			Why: "Who granted what to whom is the question an audit is asked most: keep the full request and response of every RBAC change.",
			Rule: auditv1.PolicyRule{
				Level:     auditv1.LevelRequestResponse,
				Verbs:     writeVerbs,
				Resources: []auditv1.GroupResources{{Group: "rbac.authorization.k8s.io"}},
			},
		},
		{
			Why: "Changes to workloads and namespaces: keep what was asked for and what the API made of it, to reconstruct a deployment or an incident.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelRequestResponse,
				Verbs: writeVerbs,
				Resources: []auditv1.GroupResources{
					{Group: "", Resources: []string{"pods", "services", "namespaces", "replicationcontrollers", "persistentvolumeclaims", "serviceaccounts"}},
					{Group: "apps", Resources: []string{"deployments", "deployments/scale", "statefulsets", "statefulsets/scale", "daemonsets", "replicasets", "replicasets/scale"}},
					{Group: "batch", Resources: []string{"jobs", "cronjobs"}},
				},
			},
		},
		{
			Why: "Reads: who looked at what. Response bodies of lists are large and would repeat the cluster's state in the log.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelMetadata,
				Verbs: []string{"get", "list", "watch"},
			},
		},
		{
			Why: "Everything else (other writes, custom resources whose bodies may hold secrets): metadata only.",
			Rule: auditv1.PolicyRule{
				Level: auditv1.LevelMetadata,
			},
		},
	}
}

// AuditPolicy builds the policy object (audit.k8s.io/v1).
func AuditPolicy() *auditv1.Policy {
	p := &auditv1.Policy{
		// RequestReceived duplicates ResponseComplete for every request;
		// long-running requests still log ResponseStarted.
		OmitStages:        []auditv1.Stage{auditv1.StageRequestReceived},
		OmitManagedFields: true,
	}
	p.APIVersion = auditv1.SchemeGroupVersion.String()
	p.Kind = "Policy"
	for _, r := range AuditPolicyRules() {
		p.Rules = append(p.Rules, r.Rule)
	}
	return p
}

// AuditPolicyYAML is audit-policy.yaml as Render writes it: the policy
// with each rule's reason as a comment. The Helm chart carries a copy for
// `gatehouse proxy` (deploy/helm/gatehouse/files/audit-policy.yaml).
func AuditPolicyYAML() ([]byte, error) { return renderAuditPolicy() }

// renderAuditPolicy marshals the policy with the upstream type and writes
// each rule's reason as a comment above it.
func renderAuditPolicy() ([]byte, error) {
	rules := AuditPolicyRules()
	out, err := yaml.Marshal(AuditPolicy())
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# Audit policy rendered by gatehouse. kube-apiserver applies the first rule\n")
	b.WriteString("# that matches a request, so the order below matters.\n")
	b.WriteString("# omitStages: RequestReceived duplicates ResponseComplete for every request.\n")
	b.WriteString("# omitManagedFields: managedFields repeat the object's field ownership and\n")
	b.WriteString("# say nothing about who changed what.\n")
	inRules, n := false, 0
	for _, line := range strings.SplitAfter(string(out), "\n") {
		switch {
		case line == "rules:\n":
			inRules = true
		case inRules && strings.HasPrefix(line, "- "):
			if n >= len(rules) {
				return nil, fmt.Errorf("audit policy: more rules in the output than defined")
			}
			fmt.Fprintf(&b, "\n# %d. %s\n", n+1, wrap(rules[n].Why, 76, "# "))
			n++
		case inRules && line != "" && !strings.HasPrefix(line, " "):
			inRules = false
		}
		b.WriteString(line)
	}
	if n != len(rules) {
		return nil, fmt.Errorf("audit policy: commented %d of %d rules", n, len(rules))
	}
	return b.Bytes(), nil
}

// wrap breaks text at width, continuing lines with prefix.
func wrap(text string, width int, prefix string) string {
	var b strings.Builder
	col := 0
	for i, w := range strings.Fields(text) {
		if i > 0 {
			if col+1+len(w) > width {
				b.WriteString("\n" + prefix)
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// AuditWebhookKubeconfig builds the kubeconfig kube-apiserver's audit
// webhook backend reads: the sink's URL and CA, and its credential.
func (c *Config) AuditWebhookKubeconfig() (*clientcmdv1.Config, error) {
	w := c.Audit.Webhook
	ca, err := c.readPEM("audit.webhook.caFile", w.CAFile, w.CAData)
	if err != nil {
		return nil, err
	}
	user := clientcmdv1.AuthInfo{Token: w.BearerToken}
	if w.BearerTokenFile != "" {
		t, err := os.ReadFile(c.resolve(w.BearerTokenFile))
		if err != nil {
			return nil, fmt.Errorf("audit.webhook.bearerTokenFile: %w", err)
		}
		user.Token = strings.TrimSpace(string(t))
		if user.Token == "" {
			return nil, fmt.Errorf("audit.webhook.bearerTokenFile: %s is empty", w.BearerTokenFile)
		}
	}
	if w.ClientCertFile != "" {
		if user.ClientCertificateData, err = c.readPEM("audit.webhook.clientCertFile", w.ClientCertFile, ""); err != nil {
			return nil, err
		}
		if user.ClientKeyData, err = c.readPEM("audit.webhook.clientKeyFile", w.ClientKeyFile, ""); err != nil {
			return nil, err
		}
	}
	const cluster, userName, ctx = "gatehouse-audit-sink", "kube-apiserver", "gatehouse-audit"
	kc := &clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    cluster,
			Cluster: clientcmdv1.Cluster{Server: w.URL, CertificateAuthorityData: ca},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{Name: userName, AuthInfo: user}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    ctx,
			Context: clientcmdv1.Context{Cluster: cluster, AuthInfo: userName},
		}},
		CurrentContext: ctx,
	}
	return kc, nil
}

// AuditFlags are the --audit-* kube-apiserver flags for the enabled
// backends, referring to the files in NodeDir.
func (c *Config) AuditFlags() []Flag {
	flags := []Flag{{"audit-policy-file", c.NodePath(FileAuditPolicy)}}
	if l := c.Audit.Log; !l.Disabled {
		flags = append(flags,
			Flag{"audit-log-path", l.Path},
			Flag{"audit-log-format", "json"},
			Flag{"audit-log-maxage", strconv.Itoa(l.MaxAge)},
			Flag{"audit-log-maxbackup", strconv.Itoa(l.MaxBackup)},
			Flag{"audit-log-maxsize", strconv.Itoa(l.MaxSize)},
		)
	}
	if w := c.Audit.Webhook; !w.Disabled {
		flags = append(flags,
			Flag{"audit-webhook-config-file", c.NodePath(FileAuditWebhook)},
			Flag{"audit-webhook-mode", "batch"},
			Flag{"audit-webhook-batch-max-size", strconv.Itoa(w.BatchMaxSize)},
			Flag{"audit-webhook-batch-max-wait", w.BatchMaxWait},
			Flag{"audit-webhook-version", auditv1.SchemeGroupVersion.String()},
		)
	}
	return flags
}
