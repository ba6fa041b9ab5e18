package proxy

import (
	"log/slog"
	"net/http"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/filters/impersonation"
	"k8s.io/apiserver/pkg/endpoints/request"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
)

// Chain is what the handler needs.
type Chain struct {
	// Authenticator names the person from the request's token.
	Authenticator authenticator.Request
	// Impersonation decides `kubectl --as` (NewImpersonationAuthorizer).
	Impersonation authorizer.UnconditionalAuthorizer
	// Upstream is the API server and the proxy's credentials.
	Upstream *Upstream
	// AuditSink receives the audit events; nil: none are written.
	AuditSink audit.Sink
	// AuditPolicy decides each request's audit level and stages.
	AuditPolicy audit.PolicyRuleEvaluator
	Log         *slog.Logger
}

// requestInfo resolves verbs, resources and names as kube-apiserver's
// default RequestInfoFactory does.
var requestInfo = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// longRunning is kube-apiserver's check: watches and the exec, attach,
// port-forward, proxy and log subresources (their audit events have a
// ResponseStarted stage).
var longRunning = genericfilters.BasicLongRunningRequestCheck(
	sets.NewString("watch", "proxy"),
	sets.NewString("attach", "exec", "proxy", "log", "portforward"),
)

// Handler builds the proxy's handler: k8s.io/apiserver's filters in the
// order of kube-apiserver's DefaultBuildHandlerChain, around the
// forwarder instead of the API's handlers. The API server behind
// authorizes the forwarded request itself, as the user it impersonates.
func (c Chain) Handler() http.Handler {
	var h http.Handler = newForwarder(c.Upstream, statusCodecs, c.Log)
	h = impersonation.WithConstrainedImpersonation(h, c.Impersonation, statusCodecs)
	var failed http.Handler = filters.Unauthorized(statusCodecs)
	refused := http.Handler(http.HandlerFunc(refuseClientCertificate))
	if c.AuditSink != nil {
		h = filters.WithAudit(h, c.AuditSink, c.AuditPolicy, longRunning)
		failed = filters.WithFailedAuthenticationAudit(failed, c.AuditSink, c.AuditPolicy)
		refused = filters.WithFailedAuthenticationAudit(refused, c.AuditSink, c.AuditPolicy)
	}
	h = filters.WithAuthentication(h, c.Authenticator, failed, nil, nil)
	h = withoutClientCertificates(h, refused)
	h = filters.WithRequestInfo(h, requestInfo)
	h = filters.WithRequestReceivedTimestamp(h)
	h = genericfilters.WithPanicRecovery(h, requestInfo)
	h = filters.WithAuditInit(h)
	return h
}
