package proxy

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	webhookmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
)

// Impersonation decisions (`kubectl --as`) are cached like kube-apiserver's
// webhook authorizer caches them, but briefly: a revoked right to
// impersonate stops working within authorizedTTL.
const (
	authorizedTTL   = 10 * time.Second
	unauthorizedTTL = 5 * time.Second
)

// NewImpersonationAuthorizer asks the API server, with a
// SubjectAccessReview (authorization.k8s.io/v1) created with the proxy's
// credentials, whether the authenticated person may impersonate what a
// request's Impersonate-* headers ask for. k8s.io/apiserver's
// constrained impersonation filter makes the same checks kube-apiserver
// makes (impersonate:user-info, impersonate-on:user-info:<verb>, then
// legacy impersonate on users/groups/uids/userextras) through it. An
// error from the API server denies.
func NewImpersonationAuthorizer(cfg *rest.Config) (authorizer.UnconditionalAuthorizer, error) {
	client, err := authorizationv1client.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("subjectaccessreview client: %w", err)
	}
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}
	a, err := webhook.NewFromInterface(client, authorizedTTL, unauthorizedTTL, backoff,
		authorizer.DecisionDeny, webhookmetrics.NoopAuthorizerMetrics{}, authorizationcel.NewDefaultCompiler())
	if err != nil {
		return nil, fmt.Errorf("subjectaccessreview authorizer: %w", err)
	}
	return a, nil
}
