package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"
)

// apiClient is what `cluster check` asks kube-apiserver: client-go's REST
// client on a scheme built at run time with only the API groups check
// uses (rbac.authorization.k8s.io/v1, authentication.k8s.io/v1). The
// clientset (k8s.io/client-go/kubernetes) would do the same, but its
// scheme package registers every API group in an init function, which Go
// runs at every start of the gatehouse binary, `gatehouse serve` included
// (0.67 MB in 5,600 allocations; with the typed clients, discovery and
// OpenAPI packages the clientset brings, 229 packages and 1.4 MB in 11,000
// allocations, GODEBUG=inittrace=1).
type apiClient struct {
	rbac, authn *rest.RESTClient
	params      runtime.ParameterCodec
}

// newAPIClient builds the REST clients for cfg.
func newAPIClient(cfg *rest.Config) (*apiClient, error) {
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{rbacv1.AddToScheme, authenticationv1.AddToScheme} {
		if err := add(sch); err != nil {
			return nil, fmt.Errorf("api scheme: %w", err)
		}
	}
	// metav1.Status and the option types, as client-go's scheme has them.
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(sch)
	client := func(gv schema.GroupVersion) (*rest.RESTClient, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion = &gv
		c.APIPath = "/apis"
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientFor(c)
		if err != nil {
			return nil, fmt.Errorf("%s client: %w", gv, err)
		}
		return rc, nil
	}
	a := &apiClient{params: runtime.NewParameterCodec(sch)}
	var err error
	if a.rbac, err = client(rbacv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if a.authn, err = client(authenticationv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return a, nil
}

// serverVersion reads /version, as discovery does.
func (a *apiClient) serverVersion(ctx context.Context) (*version.Info, error) {
	body, err := a.rbac.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("server version %q: %w", body, err)
	}
	return &info, nil
}

// getBinding reads a ClusterRoleBinding (namespace "") or RoleBinding.
func (a *apiClient) getBinding(ctx context.Context, resource, namespace, name string, into runtime.Object) error {
	return a.rbac.Get().NamespaceIfScoped(namespace, namespace != "").Resource(resource).Name(name).
		VersionedParams(&metav1.GetOptions{}, a.params).Do(ctx).Into(into)
}

// applyBinding sends a server-side apply patch of a binding.
func (a *apiClient) applyBinding(ctx context.Context, resource, namespace, name string, data []byte, opts *metav1.PatchOptions, into runtime.Object) error {
	return a.rbac.Patch(types.ApplyPatchType).NamespaceIfScoped(namespace, namespace != "").Resource(resource).Name(name).
		VersionedParams(opts, a.params).Body(data).Do(ctx).Into(into)
}

// listBindings lists bindings of a kind in all namespaces.
func (a *apiClient) listBindings(ctx context.Context, resource string, opts *metav1.ListOptions, into runtime.Object) error {
	return a.rbac.Get().Resource(resource).VersionedParams(opts, a.params).Do(ctx).Into(into)
}

// create POSTs an authentication.k8s.io/v1 object (TokenReview,
// SelfSubjectReview) and decodes the answer into out.
func (a *apiClient) create(ctx context.Context, resource string, obj, out runtime.Object) error {
	return a.authn.Post().Resource(resource).VersionedParams(&metav1.CreateOptions{}, a.params).Body(obj).Do(ctx).Into(out)
}
