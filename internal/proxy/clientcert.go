package proxy

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
)

// withoutClientCertificates passes a request that presents a TLS client
// certificate to refused instead of next. kube-apiserver would
// authenticate the certificate with its client CA, which the proxy
// neither has nor can forward: a certificate cannot be passed on, and
// taking only the token beside it would let a client believe its
// certificate counted. So the proxy refuses (401), and says to use a
// token alone.
func withoutClientCertificates(next, refused http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
			refused.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// refuseClientCertificate writes the 401 Status.
func refuseClientCertificate(w http.ResponseWriter, req *http.Request) {
	err := apierrors.NewUnauthorized("gatehouse-proxy does not accept client certificates: the API server behind it cannot see them; remove client-certificate-data/client-key-data from the kubeconfig user and log in with a token")
	responsewriters.ErrorNegotiated(err, statusCodecs, schemaGV, w, req)
}
