package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// Group and version of every resource gatehouse keeps: Dex's.
const (
	Group      = "dex.coreos.com"
	Version    = "v1"
	apiVersion = Group + "/" + Version
)

// client is client-go's REST client on the dex.coreos.com/v1 resources of
// one namespace. Objects are plain Go structs encoded with encoding/json:
// the custom resources have no generated types, and the clientset's
// scheme is kept out of the binary (docs/architecture.md).
type client struct {
	rest      *rest.RESTClient
	host      string // the API server, for messages
	namespace string
	base      string // /apis/dex.coreos.com/v1/namespaces/<ns>/
}

// errConflict is an update that lost against another writer (HTTP 409 on
// PUT): the caller reads again and retries.
var errConflict = errors.New("kubernetes storage: resourceVersion conflict")

func newClient(rc *rest.Config, namespace string) (*client, error) {
	sch := runtime.NewScheme()
	// metav1.Status, so that error answers decode into StatusError.
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	c := rest.CopyConfig(rc)
	c.GroupVersion = &schema.GroupVersion{Group: Group, Version: Version}
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	// Every refresh grant is a few requests: client-go's default
	// client-side limit (5 per second) would be the bottleneck.
	c.QPS, c.Burst = -1, 0
	if c.UserAgent == "" {
		c.UserAgent = "gatehouse (kubernetes storage)"
	}
	rc2, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes storage: %w", err)
	}
	return &client{rest: rc2, host: rc.Host, namespace: namespace,
		base: "/apis/" + apiVersion + "/namespaces/" + url.PathEscape(namespace) + "/"}, nil
}

func (c *client) path(resource, name string) string {
	if name == "" {
		return c.base + resource
	}
	return c.base + resource + "/" + name
}

// mapErr turns API errors into storage errors.
func mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return storage.ErrNotFound
	case apierrors.IsAlreadyExists(err):
		return storage.ErrAlreadyExists
	case apierrors.IsConflict(err):
		return errConflict
	}
	return fmt.Errorf("kubernetes storage: %s: %w", what, err)
}

// get reads an object into v.
func (c *client) get(ctx context.Context, resource, name string, v any) error {
	body, err := c.rest.Get().AbsPath(c.path(resource, name)).Do(ctx).Raw()
	if err != nil {
		return mapErr(err, "get "+resource+"/"+name)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("kubernetes storage: decode %s/%s: %w", resource, name, err)
	}
	return nil
}

// create posts a new object.
func (c *client) create(ctx context.Context, resource string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("kubernetes storage: encode %s: %w", resource, err)
	}
	err = c.rest.Post().AbsPath(c.path(resource, "")).Body(data).Do(ctx).Error()
	return mapErr(err, "create "+resource)
}

// update replaces an object; its metadata.resourceVersion makes the write
// conditional (errConflict when another writer came first).
func (c *client) update(ctx context.Context, resource, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("kubernetes storage: encode %s/%s: %w", resource, name, err)
	}
	err = c.rest.Put().AbsPath(c.path(resource, name)).Body(data).Do(ctx).Error()
	return mapErr(err, "update "+resource+"/"+name)
}

// remove deletes an object; with a resourceVersion only that version
// (errConflict otherwise).
func (c *client) remove(ctx context.Context, resource, name, resourceVersion string) error {
	req := c.rest.Delete().AbsPath(c.path(resource, name))
	if resourceVersion != "" {
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &resourceVersion}}
		data, err := json.Marshal(opts)
		if err != nil {
			return err
		}
		req = req.Body(data)
	}
	return mapErr(req.Do(ctx).Error(), "delete "+resource+"/"+name)
}

// listPage is the part of a list answer the pager reads; Items stay raw
// for the caller to decode into its own type.
type listPage struct {
	Metadata metav1.ListMeta   `json:"metadata"`
	Items    []json.RawMessage `json:"items"`
}

// listChunk is how many objects one list request returns.
const listChunk = 500

// list calls each with every object of resource matching labelSelector
// (may be empty), in pages of listChunk.
func (c *client) list(ctx context.Context, resource, labelSelector string, each func(item []byte) error) error {
	cont := ""
	for {
		req := c.rest.Get().AbsPath(c.path(resource, "")).Param("limit", strconv.Itoa(listChunk))
		if labelSelector != "" {
			req = req.Param("labelSelector", labelSelector)
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		body, err := req.Do(ctx).Raw()
		if err != nil {
			return mapErr(err, "list "+resource)
		}
		var page listPage
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("kubernetes storage: decode list of %s: %w", resource, err)
		}
		for _, it := range page.Items {
			if err := each(it); err != nil {
				return err
			}
		}
		if cont = page.Metadata.Continue; cont == "" {
			return nil
		}
	}
}
