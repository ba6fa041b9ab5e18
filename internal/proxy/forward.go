package proxy

import (
	"fmt"
	"log/slog"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// forwarder sends an authenticated request to the API server as the
// user in the request's context (the token's user, or the identity a
// `kubectl --as` was allowed to take).
type forwarder struct {
	handler    *utilproxy.UpgradeAwareHandler
	serializer runtime.NegotiatedSerializer
	log        *slog.Logger
}

func newForwarder(up *Upstream, s runtime.NegotiatedSerializer, log *slog.Logger) *forwarder {
	f := &forwarder{serializer: s, log: log}
	h := utilproxy.NewUpgradeAwareHandler(up.URL, up.Transport, false, false, f)
	h.UpgradeTransport = up.Upgrade
	// The request's own path and query, sent to the upstream's host (and
	// under its path, when the API server is served under one).
	h.UseRequestLocation = true
	h.AppendLocationPath = up.URL.Path != "/"
	h.UseLocationHost = true
	// Watches and chunked lists are flushed as they arrive (the reverse
	// proxy also flushes at once any response of unknown length).
	h.FlushInterval = -1
	// A redirect from the API server is passed on, as kube-apiserver's
	// own responses are; the client follows it through the proxy.
	f.handler = h
	return f
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	u, ok := request.UserFrom(req.Context())
	if !ok {
		responsewriters.InternalError(w, req, fmt.Errorf("no user in the request context"))
		return
	}
	out, err := impersonate(req, u)
	if err != nil {
		responsewriters.InternalError(w, req, err)
		return
	}
	f.handler.ServeHTTP(w, out)
}

// Error answers a request that could not reach the API server with a
// 503 Status, as kube-apiserver's aggregator does for an unavailable
// backend.
func (f *forwarder) Error(w http.ResponseWriter, req *http.Request, err error) {
	f.log.Warn("forwarding to the API server failed", "path", req.URL.Path, "err", err)
	responsewriters.ErrorNegotiated(errServiceUnavailable(err), f.serializer, schemaGV, w, req)
}
