package proxy

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/plugin/pkg/audit/buffered"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"
	"k8s.io/client-go/tools/clientcmd"
)

// LoadAuditPolicy reads the audit policy as kube-apiserver reads
// --audit-policy-file; an empty path means Metadata level for every
// request.
func LoadAuditPolicy(path string) (audit.PolicyRuleEvaluator, error) {
	if path == "" {
		return policy.NewPolicyRuleEvaluator(&auditinternal.Policy{
			Rules: []auditinternal.PolicyRule{{Level: auditinternal.LevelMetadata}},
		}), nil
	}
	p, err := policy.LoadPolicyFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("--audit-policy: %w", err)
	}
	return policy.NewPolicyRuleEvaluator(p), nil
}

// AuditOptions configure the audit webhook.
type AuditOptions struct {
	// WebhookConfig is the kubeconfig-format webhook configuration
	// (`gatehouse cluster render`'s audit-webhook.kubeconfig).
	WebhookConfig string
	// Source names the cluster to the sink (its "source" query
	// parameter) unless the configuration's URL already names one.
	Source string
	// MaxBatchWait is the longest an event waits before it is sent
	// (kube-apiserver's --audit-webhook-batch-max-wait).
	MaxBatchWait time.Duration
	// TempDir holds the configuration rewritten with the source.
	TempDir string
}

// NewAuditBackend returns kube-apiserver's webhook backend in its
// buffered (batch) mode, sending audit.k8s.io/v1 EventLists to the
// sink that the configuration names. Call Run before use and Shutdown
// at the end (it sends what is buffered).
func NewAuditBackend(o AuditOptions, log *slog.Logger) (audit.Backend, error) {
	file := o.WebhookConfig
	if o.Source != "" {
		var err error
		if file, err = withSource(o.WebhookConfig, o.Source, o.TempDir); err != nil {
			return nil, err
		}
	}
	backoff := wait.Backoff{Duration: time.Second, Factor: 1.5, Jitter: 0.2, Steps: 5}
	wh, err := webhook.NewBackend(file, auditv1.SchemeGroupVersion, backoff, nil)
	if err != nil {
		return nil, fmt.Errorf("--audit-webhook-config %s: %w", o.WebhookConfig, err)
	}
	wait := o.MaxBatchWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	log.Info("audit events go to the webhook", "config", o.WebhookConfig, "source", o.Source, "maxBatchWait", wait)
	// kube-apiserver's batch defaults, but for the wait.
	return buffered.NewBackend(wh, buffered.BatchConfig{
		BufferSize:     10000,
		MaxBatchSize:   400,
		MaxBatchWait:   wait,
		ThrottleEnable: true,
		ThrottleQPS:    10,
		ThrottleBurst:  15,
		AsyncDelegate:  true,
	}), nil
}

// withSource writes a copy of the webhook kubeconfig whose clusters'
// server URLs carry source=<name> (a URL that names a source keeps it).
func withSource(path, source, dir string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "", fmt.Errorf("--audit-webhook-config %s: %w", path, err)
	}
	if len(cfg.Clusters) == 0 {
		return "", fmt.Errorf("--audit-webhook-config %s: no cluster (the sink's URL); use the audit-webhook.kubeconfig that `gatehouse cluster render` writes", path)
	}
	for name, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("--audit-webhook-config %s: clusters[%s].cluster.server %q is not a URL", path, name, c.Server)
		}
		q := u.Query()
		if q.Get("source") == "" {
			q.Set("source", source)
			u.RawQuery = q.Encode()
		}
		c.Server = u.String()
	}
	// Relative file references stay valid from the copy's directory.
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		return "", fmt.Errorf("--audit-webhook-config %s: %w", path, err)
	}
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "gatehouse-proxy-audit-webhook-*.kubeconfig")
	if err != nil {
		return "", fmt.Errorf("audit webhook config copy: %w", err)
	}
	f.Close()
	if err := clientcmd.WriteToFile(*cfg, f.Name()); err != nil {
		return "", fmt.Errorf("audit webhook config copy: %w", err)
	}
	return f.Name(), nil
}
