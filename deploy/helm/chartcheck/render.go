package chartcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// ValueSet is one named set of values the chart is checked with.
type ValueSet struct {
	// Name is the file's name without "-values.yaml".
	Name string
	// File is a values file (the chart's ci/<name>-values.yaml).
	File string
	// APIVersions are passed as --api-versions (Capabilities).
	APIVersions []string
}

// ValueSets returns the chart's ci/*-values.yaml sets, by name. Each one
// must render; the ServiceMonitor set also claims monitoring.coreos.com/v1.
func ValueSets() ([]ValueSet, error) {
	dir, err := ChartDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "ci", "*-values.yaml"))
	if err != nil {
		return nil, fmt.Errorf("chartcheck: %w", err)
	}
	sort.Strings(files)
	var sets []ValueSet
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		vs := ValueSet{Name: name, File: f}
		if strings.Contains(name, "servicemonitor") {
			vs.APIVersions = []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}
		}
		sets = append(sets, vs)
	}
	if len(sets) == 0 {
		return nil, errors.New("chartcheck: no ci/*-values.yaml in the chart")
	}
	return sets, nil
}

// Helm runs a helm command and returns its standard output; a failure
// carries helm's standard error.
func Helm(ctx context.Context, helm string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, helm, args...)
	// A private HOME: helm reads and writes its config and cache there.
	home, err := os.MkdirTemp("", "chartcheck-helm-home-")
	if err != nil {
		return "", fmt.Errorf("chartcheck: %w", err)
	}
	defer os.RemoveAll(home)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_DATA_HOME=" + filepath.Join(home, "data")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()+"\n"+out.String()))
	}
	return out.String(), nil
}

// Template renders the chart with a release "gatehouse" in namespace for
// the values files given, plus extra --set style arguments.
func Template(ctx context.Context, helm, chartDir, namespace string, apiVersions []string, valueFiles []string, extra ...string) (string, error) {
	args := []string{"template", "gatehouse", chartDir, "--namespace", namespace, "--kube-version", KubeVersion}
	for _, v := range apiVersions {
		args = append(args, "--api-versions", v)
	}
	for _, f := range valueFiles {
		args = append(args, "--values", f)
	}
	args = append(args, extra...)
	return Helm(ctx, helm, args...)
}

// Object is one rendered manifest.
type Object struct {
	// Kind and Name identify it.
	Kind, Name string
	// Raw is its JSON.
	Raw []byte
	// Typed is the decoded Kubernetes object, or for the custom resources
	// the chart renders (cert-manager Certificate, ServiceMonitor) the
	// local struct they decode into.
	Typed any
}

// strictCodecs decode with unknown and duplicate fields as errors.
var strictCodecs = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)

// Decode splits a multi-document manifest and decodes every document
// strictly: Kubernetes kinds into k8s.io/api types with the
// UniversalDeserializer, cert-manager's Certificate and prometheus-operator's
// ServiceMonitor into local structs that mirror their CRDs' fields.
func Decode(manifest string) ([]Object, error) {
	dec := utilyaml.NewYAMLReader(bufioReader(manifest))
	var objs []Object
	for {
		doc, err := dec.Read()
		if err != nil {
			if errors.Is(err, ioEOF) {
				break
			}
			return nil, fmt.Errorf("chartcheck: split manifest: %w", err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("chartcheck: %w\n%s", err, doc)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("chartcheck: %w", err)
		}
		o := Object{Kind: tm.Kind, Name: tm.Metadata.Name, Raw: js}
		switch tm.APIVersion {
		case "cert-manager.io/v1":
			var c Certificate
			if tm.Kind != "Certificate" {
				return nil, fmt.Errorf("chartcheck: unexpected %s %s", tm.APIVersion, tm.Kind)
			}
			if err := strictJSON(js, &c); err != nil {
				return nil, fmt.Errorf("chartcheck: Certificate %s: %w", o.Name, err)
			}
			o.Typed = &c
		case "monitoring.coreos.com/v1":
			var s ServiceMonitor
			if tm.Kind != "ServiceMonitor" {
				return nil, fmt.Errorf("chartcheck: unexpected %s %s", tm.APIVersion, tm.Kind)
			}
			if err := strictJSON(js, &s); err != nil {
				return nil, fmt.Errorf("chartcheck: ServiceMonitor %s: %w", o.Name, err)
			}
			o.Typed = &s
		case "apiextensions.k8s.io/v1":
			var c CustomResourceDefinition
			if tm.Kind != "CustomResourceDefinition" {
				return nil, fmt.Errorf("chartcheck: unexpected %s %s", tm.APIVersion, tm.Kind)
			}
			if err := strictJSON(js, &c); err != nil {
				return nil, fmt.Errorf("chartcheck: CustomResourceDefinition %s: %w", o.Name, err)
			}
			o.Typed = &c
		default:
			obj, _, err := strictCodecs.UniversalDeserializer().Decode(js, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("chartcheck: %s %s: %w", tm.Kind, o.Name, err)
			}
			o.Typed = obj
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func strictJSON(js []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// Certificate mirrors the cert-manager.io/v1 Certificate fields the chart
// sets.
type Certificate struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		SecretName string   `json:"secretName"`
		DNSNames   []string `json:"dnsNames"`
		IssuerRef  struct {
			Group string `json:"group"`
			Kind  string `json:"kind"`
			Name  string `json:"name"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// CustomResourceDefinition mirrors the apiextensions.k8s.io/v1 fields
// the kubernetes storage's definitions set (the apiextensions module is
// not a dependency; the server dry-run checks them against the real
// schema).
type CustomResourceDefinition struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Group string `json:"group"`
		Names struct {
			Kind     string `json:"kind"`
			ListKind string `json:"listKind"`
			Plural   string `json:"plural"`
			Singular string `json:"singular"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name    string `json:"name"`
			Served  bool   `json:"served"`
			Storage bool   `json:"storage"`
			Schema  struct {
				OpenAPIV3Schema struct {
					Type                  string `json:"type"`
					PreserveUnknownFields bool   `json:"x-kubernetes-preserve-unknown-fields"`
				} `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// ServiceMonitor mirrors the monitoring.coreos.com/v1 ServiceMonitor
// fields the chart sets.
type ServiceMonitor struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// PodTemplates returns the pod specs of the workloads among objs, by
// "Kind/name".
func PodTemplates(objs []Object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			out["Deployment/"+o.Name] = &t.Spec.Template
		case *appsv1.StatefulSet:
			out["StatefulSet/"+o.Name] = &t.Spec.Template
		case *appsv1.DaemonSet:
			out["DaemonSet/"+o.Name] = &t.Spec.Template
		case *corev1.Pod:
			out["Pod/"+o.Name] = &corev1.PodTemplateSpec{ObjectMeta: t.ObjectMeta, Spec: t.Spec}
		}
	}
	return out
}

// Find returns the objects of kind.
func Find(objs []Object, kind string) []Object {
	var out []Object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}
