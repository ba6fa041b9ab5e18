package proxy

import (
	"fmt"
	"net/http"
	"strings"

	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/transport"
)

// identityPrefixes are the header name prefixes that carry an identity
// to some API server or authenticating proxy: impersonation, the
// request-header authenticator (X-Remote-*), and the headers that
// oauth2-proxy and similar front ends set. None may reach the API server
// as the client sent it: the proxy's own credentials would vouch for them.
var identityPrefixes = []string{
	"Impersonate-",
	"X-Remote-",
	"X-Forwarded-User",
	"X-Forwarded-Groups",
	"X-Forwarded-Email",
	"X-Forwarded-Preferred-Username",
	"X-Forwarded-Access-Token",
	"X-Auth-Request-",
}

// identityHeaders are single header names with the same risk.
var identityHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// wsBearerProtocol is the WebSocket subprotocol prefix that carries a
// bearer token (k8s.io/apiserver/pkg/authentication/request/websocket).
const wsBearerProtocol = "base64url.bearer.authorization.k8s.io."

// stripIdentity removes from h every header through which a client could
// name an identity or pass a credential to the API server.
func stripIdentity(h http.Header) {
	for name := range h {
		if isIdentityHeader(name) {
			delete(h, name)
		}
	}
	stripBearerProtocol(h)
}

func isIdentityHeader(name string) bool {
	canon := http.CanonicalHeaderKey(name)
	for _, n := range identityHeaders {
		if canon == n {
			return true
		}
	}
	for _, p := range identityPrefixes {
		if strings.HasPrefix(canon, p) {
			return true
		}
	}
	return false
}

// stripBearerProtocol drops the bearer-token WebSocket subprotocol, which
// the protocol authenticator already removes when it authenticates; a
// second one (or one sent beside an Authorization header) would survive.
func stripBearerProtocol(h http.Header) {
	const name = "Sec-Websocket-Protocol"
	values, ok := h[name]
	if !ok {
		return
	}
	var keep []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p != "" && !strings.HasPrefix(p, wsBearerProtocol) {
				keep = append(keep, p)
			}
		}
	}
	if len(keep) == 0 {
		delete(h, name)
		return
	}
	h[name] = []string{strings.Join(keep, ",")}
}

// impersonate returns a copy of req, stripped of the client's identity
// headers, that carries u as Impersonate-User, -Uid, -Group (each group)
// and -Extra-<key> (percent-encoded), set by client-go's impersonating
// round tripper so the encoding is the one kube-apiserver decodes.
func impersonate(req *http.Request, u user.Info) (*http.Request, error) {
	if u.GetName() == "" {
		// WithAuthentication never lets an unnamed user through; if it
		// did, the request would run with the proxy's own rights.
		return nil, fmt.Errorf("no user to impersonate")
	}
	out := req.Clone(req.Context())
	stripIdentity(out.Header)
	rt := transport.NewImpersonatingRoundTripper(transport.ImpersonationConfig{
		UserName: u.GetName(),
		UID:      u.GetUID(),
		Groups:   u.GetGroups(),
		Extra:    u.GetExtra(),
	}, utilproxy.MirrorRequest)
	resp, err := rt.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	return resp.Request, nil
}
