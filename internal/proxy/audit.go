package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/audit/buffered"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"
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
	// Source names the cluster to the sink (the X-Audit-Source header
	// on every batch).
	Source string
	// MaxBatchWait is the longest an event waits before it is sent
	// (kube-apiserver's --audit-webhook-batch-max-wait).
	MaxBatchWait time.Duration
}

// NewAuditBackend returns kube-apiserver's webhook backend in its
// buffered (batch) mode, sending audit.k8s.io/v1 EventLists to the
// sink that the configuration names, loaded and encoded as
// kube-apiserver does, with the source header added. Call Run before use
// and Shutdown at the end (it sends what is buffered).
func NewAuditBackend(o AuditOptions, log *slog.Logger) (audit.Backend, error) {
	cfg, err := utilwebhook.LoadKubeconfig(o.WebhookConfig, nil)
	if err != nil {
		return nil, fmt.Errorf("--audit-webhook-config %s: %w", o.WebhookConfig, err)
	}
	if o.Source != "" {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return sourceHeader{source: o.Source, next: rt} })
	}
	backoff := wait.Backoff{Duration: time.Second, Factor: 1.5, Jitter: 0.2, Steps: 5}
	gw, err := utilwebhook.NewGenericWebhook(audit.Scheme, audit.Codecs, cfg, []schema.GroupVersion{auditv1.SchemeGroupVersion}, backoff)
	if err != nil {
		return nil, fmt.Errorf("--audit-webhook-config %s: %w", o.WebhookConfig, err)
	}
	wh := webhook.NewDynamicBackend(gw.RestClient, backoff)
	wait := o.MaxBatchWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	log.Info("audit events go to the webhook", "config", o.WebhookConfig, "server", cfg.Host, "source", o.Source, "maxBatchWait", wait)
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

// sourceHeader names the cluster to gatehouse's sink (X-Audit-Source).
type sourceHeader struct {
	source string
	next   http.RoundTripper
}

func (s sourceHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Audit-Source", s.source)
	return s.next.RoundTrip(req)
}
