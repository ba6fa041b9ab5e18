package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// File is one rendered file.
type File struct {
	Name string
	Data []byte
	// Mode is 0600 for files holding a credential, 0644 otherwise.
	Mode os.FileMode
	// Purpose is one line saying what the file is for.
	Purpose string
}

// Render builds every file from a completed Config.
func (c *Config) Render() ([]File, error) {
	issuerCA, err := c.readPEM("issuer.caFile", c.Issuer.CAFile, c.Issuer.CAData)
	if err != nil {
		return nil, err
	}
	hasCA := len(issuerCA) > 0
	var files []File
	add := func(name, purpose string, mode os.FileMode, data []byte) {
		files = append(files, File{Name: name, Data: data, Mode: mode, Purpose: purpose})
	}

	// With the proxy, kube-apiserver stays as it is: the proxy reads the
	// authentication config, audit policy and webhook config, and nothing
	// goes to the control-plane nodes.
	proxy := c.Proxy != nil
	purpose := func(apiserver, proxied string) string {
		if proxy {
			return proxied
		}
		return apiserver
	}

	authn, err := marshal(c.AuthenticationConfiguration(issuerCA))
	if err != nil {
		return nil, err
	}
	add(FileAuthenticationConfig, purpose("kube-apiserver --authentication-config (Kubernetes 1.30+)",
		"gatehouse proxy --authentication-config (the chart: proxy.existingConfigMap)"), 0o644, authn)
	if !proxy {
		add(FileAPIServerFlags, "the same as legacy --oidc-* kube-apiserver flags (before 1.30, KubeOne)", 0o644, flagLines(c.LegacyOIDCFlags(hasCA)))
		if hasCA {
			add(FileIssuerCA, "the issuer's CA, for --oidc-ca-file on the nodes", 0o644, issuerCA)
		}
	}
	if c.Cluster != "" {
		client, err := c.renderGatehouseClient()
		if err != nil {
			return nil, err
		}
		add(FileGatehouseClient, "gatehouse's config.yaml: this cluster's own client (audience), trusting the plugin's", 0o644, client)
	}

	policy, err := renderAuditPolicy()
	if err != nil {
		return nil, err
	}
	add(FileAuditPolicy, purpose("kube-apiserver --audit-policy-file", "gatehouse proxy --audit-policy"), 0o644, policy)
	if !c.Audit.Webhook.Disabled {
		kc, err := c.AuditWebhookKubeconfig()
		if err != nil {
			return nil, err
		}
		data, err := marshal(kc)
		if err != nil {
			return nil, err
		}
		add(FileAuditWebhook, purpose("kube-apiserver --audit-webhook-config-file: gatehouse's audit sink and its credential",
			"gatehouse proxy --audit-webhook-config: gatehouse's audit sink and its credential"), 0o600, data)
	}
	if !proxy {
		add(FileAuditFlags, "the --audit-* kube-apiserver flags", 0o644, flagLines(c.AuditFlags()))
		kubeone, err := marshal(c.KubeOne(hasCA))
		if err != nil {
			return nil, err
		}
		add(FileKubeOneFeatures, "KubeOne: paste into the KubeOneCluster manifest", 0o644, kubeone)
		kubeadm, err := marshal(c.Kubeadm(hasCA))
		if err != nil {
			return nil, err
		}
		add(FileKubeadmPatch, "kubeadm: merge into ClusterConfiguration (kubeadm.k8s.io/v1beta4)", 0o644, kubeadm)
	}

	rbac, err := c.renderRBAC()
	if err != nil {
		return nil, err
	}
	add(FileRBAC, "ClusterRoleBindings and RoleBindings for the team mapping (kubectl apply -f)", 0o644, rbac)

	if proxy {
		values, err := c.ProxyValues()
		if err != nil {
			return nil, err
		}
		data, err := marshal(values)
		if err != nil {
			return nil, err
		}
		add(FileProxyValues, "Helm values for the chart's proxy (helm install --values)", 0o644, append([]byte(proxyValuesHeader), data...))
	}

	if c.Server != "" || proxy {
		opts, err := c.KubeconfigOptions()
		if err != nil {
			return nil, err
		}
		kc, err := opts.Kubeconfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		data, err := marshal(kc)
		if err != nil {
			return nil, err
		}
		add(FileKubeconfig, purpose("kubeconfig for team members (runs kubectl gatehouse get-token)",
			"kubeconfig for team members: server is gatehouse proxy (runs kubectl gatehouse get-token)"), 0o644, data)
	}
	return files, nil
}

func (c *Config) renderRBAC() ([]byte, error) {
	objs := c.RBACObjects()
	var docs [][]byte
	for i := range objs.ClusterRoleBindings {
		b, err := marshal(&objs.ClusterRoleBindings[i])
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	for i := range objs.RoleBindings {
		b, err := marshal(&objs.RoleBindings[i])
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	if len(docs) == 0 {
		return []byte("# No teams or users in cluster.yaml: nothing to bind.\n"), nil
	}
	return bytes.Join(docs, []byte("---\n")), nil
}

func marshal(obj any) ([]byte, error) {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", obj, err)
	}
	return b, nil
}

// WriteFiles writes files into dir (created 0755 if missing), each
// atomically with its mode.
func WriteFiles(dir string, files []File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	var errs []error
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.Name), f.Data, f.Mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func writeAtomic(name string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
