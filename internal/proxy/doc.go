// Package proxy is `gatehouse-proxy`: an HTTPS reverse proxy in front of a
// cluster's API server for clusters whose API server cannot be configured
// (managed control planes). It authenticates each request's bearer token
// with Kubernetes' own JWT authenticator, configured from the
// AuthenticationConfiguration that `gatehouse cluster render` writes, and
// forwards it with the proxy's own credentials and Impersonate-* headers,
// so the cluster's RBAC decides as if the API server had authenticated the
// token itself. The handler chain is k8s.io/apiserver's own filters
// (request info, audit, authentication, constrained impersonation), so
// users, `kubectl --as` checks and audit events are what kube-apiserver
// would produce; forwarding is k8s.io/apimachinery's UpgradeAwareHandler.
//
// One job per file: authnconfig.go loads the configuration, authn.go builds
// the authenticator, impersonate.go checks `kubectl --as`, headers.go
// decides which headers reach the API server, upstream.go holds the
// proxy's own credentials, forward.go forwards, audit.go writes the
// trail, chain.go puts the filters together, server.go serves.
package proxy
