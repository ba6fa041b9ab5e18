package kubernetes

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"
)

// CRDs is the manifest of the custom resource definitions the storage
// uses (YAML, several documents).
//
//go:embed crds/crds.yaml
var CRDs []byte

// crd is one definition of CRDs, as the JSON to post and its resource.
type crd struct {
	resource string
	name     string
	json     []byte
}

func parseCRDs() ([]crd, error) {
	var out []crd
	for _, doc := range bytes.Split(CRDs, []byte("\n---\n")) {
		var m struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Names struct {
					Plural string `json:"plural"`
				} `json:"names"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("kubernetes storage: CRD manifest: %w", err)
		}
		if m.Metadata.Name == "" {
			continue // the leading comment
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes storage: CRD manifest: %w", err)
		}
		out = append(out, crd{resource: m.Spec.Names.Plural, name: m.Metadata.Name, json: js})
	}
	return out, nil
}

// ensureCRDs checks that every resource is served, as Dex does: by
// listing it in the namespace (which needs no cluster-wide read). With
// mode CRDEnsure it creates the missing definitions and waits until they
// are served; with CRDCheck it names them and fails.
func (s *Storage) ensureCRDs(ctx context.Context, mode string) error {
	defs, err := parseCRDs()
	if err != nil {
		return err
	}
	var missing []crd
	for _, d := range defs {
		served, err := s.served(ctx, d.resource)
		if err != nil {
			return err
		}
		if !served {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, len(missing))
	for i, d := range missing {
		names[i] = d.name
	}
	if mode == CRDCheck {
		return fmt.Errorf("kubernetes storage: custom resource definitions missing: %s (storage.config.crdHandling is check): apply them (kubectl apply -f deploy/helm/gatehouse/files/crds.yaml, or the chart with kubernetesStorage.installCRDs: true), or set crdHandling: ensure", strings.Join(names, ", "))
	}
	for _, d := range missing {
		err := s.c.rest.Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").Body(d.json).Do(ctx).Error()
		switch {
		case err == nil:
			s.log.Info("created custom resource definition", "name", d.name)
		case apierrors.IsAlreadyExists(err):
		case apierrors.IsForbidden(err):
			return fmt.Errorf("kubernetes storage: creating custom resource definition %s is forbidden (%w): grant list and create on customresourcedefinitions (the chart does, with kubernetesStorage.rbac and without installCRDs), or install the definitions beforehand and set crdHandling: check", d.name, err)
		default:
			return fmt.Errorf("kubernetes storage: create custom resource definition %s: %w", d.name, err)
		}
	}
	// A new definition is served once it is Established, a moment later.
	deadline := time.Now().Add(time.Minute)
	for _, d := range missing {
		for {
			served, err := s.served(ctx, d.resource)
			if err != nil {
				return err
			}
			if served {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kubernetes storage: custom resource definition %s created but not served after a minute", d.name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// served lists one object of resource: false when the API server does not
// know the resource.
func (s *Storage) served(ctx context.Context, resource string) (bool, error) {
	err := s.c.rest.Get().AbsPath(s.c.path(resource, "")).Param("limit", "1").Do(ctx).Error()
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case apierrors.IsForbidden(err):
		return false, fmt.Errorf("kubernetes storage: listing %s.%s in namespace %q is forbidden (%w): grant the ServiceAccount get, list, create, update and delete on the dex.coreos.com resources in this namespace (the chart does)", resource, Group, s.c.namespace, err)
	}
	return false, fmt.Errorf("kubernetes storage: list %s.%s in namespace %q: %w", resource, Group, s.c.namespace, err)
}

// CRDNames returns the names of the definitions in CRDs, in order.
func CRDNames() ([]string, error) {
	defs, err := parseCRDs()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.name
	}
	return names, nil
}
