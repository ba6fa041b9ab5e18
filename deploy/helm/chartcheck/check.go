package chartcheck

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

var ioEOF = io.EOF

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// Restricted evaluates a pod template against the "restricted" Pod
// Security Standard (latest version) with kube-apiserver's own
// pod-security-admission checks, and returns why it is refused, or nil.
func Restricted(tmpl *corev1.PodTemplateSpec) error {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return fmt.Errorf("chartcheck: pod security evaluator: %w", err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	agg := policy.AggregateCheckResults(ev.EvaluatePod(lv, &tmpl.ObjectMeta, &tmpl.Spec))
	if !agg.Allowed {
		return fmt.Errorf("violates PodSecurity restricted:latest: %s", agg.ForbiddenDetail())
	}
	return nil
}

// Hardened checks what the chart promises beyond the standard: a
// read-only root filesystem with writable /tmp and data volumes, no
// service-account token, and the health probes on the telemetry port.
func Hardened(tmpl *corev1.PodTemplateSpec) error { return hardened(tmpl, issuerPod) }

// HardenedAPIClient is Hardened for a pod that calls the Kubernetes API
// (kubernetes storage): it must have its service-account token.
func HardenedAPIClient(tmpl *corev1.PodTemplateSpec) error {
	r := issuerPod
	r.apiClient = true
	return hardened(tmpl, r)
}

// HardenedProxy is Hardened for `gatehouse proxy`: it forwards with its
// service-account token (unless it has an upstream kubeconfig, see
// HardenedProxyKubeconfig), reads its files from /etc/gatehouse/proxy and
// /etc/gatehouse/tls, keeps no data, and answers readiness on /readyz.
func HardenedProxy(tmpl *corev1.PodTemplateSpec) error { return hardened(tmpl, proxyPod) }

// HardenedProxyKubeconfig is HardenedProxy for a proxy given an upstream
// kubeconfig: no service-account token then.
func HardenedProxyKubeconfig(tmpl *corev1.PodTemplateSpec) error {
	r := proxyPod
	r.apiClient = false
	r.mounts = append(append([]string(nil), r.mounts...), "/etc/gatehouse/upstream")
	return hardened(tmpl, r)
}

// podRules are what hardened expects of one kind of pod.
type podRules struct {
	// apiClient: the pod has its service-account token.
	apiClient bool
	// mounts that must be volumes.
	mounts []string
	// readiness is the readiness probe's path.
	readiness string
}

var (
	issuerPod = podRules{mounts: []string{"/tmp", "/var/lib/gatehouse", "/etc/gatehouse"}, readiness: "/healthz/ready"}
	proxyPod  = podRules{apiClient: true, mounts: []string{"/tmp", "/etc/gatehouse/proxy", "/etc/gatehouse/tls"}, readiness: "/readyz"}
)

func hardened(tmpl *corev1.PodTemplateSpec, r podRules) error {
	var errs []error
	spec := tmpl.Spec
	token := spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken
	switch {
	case token && !r.apiClient:
		errs = append(errs, errors.New("automountServiceAccountToken is not false"))
	case !token && r.apiClient:
		errs = append(errs, errors.New("automountServiceAccountToken is false, but the pod calls the API server with its token"))
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			errs = append(errs, fmt.Errorf("container %s: root filesystem is not read-only", c.Name))
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m.Name
		}
		for _, p := range r.mounts {
			if _, ok := vols[mounts[p]]; !ok {
				errs = append(errs, fmt.Errorf("container %s: no volume at %s", c.Name, p))
			}
		}
		if v, ok := vols[mounts["/tmp"]]; ok && v.EmptyDir == nil {
			errs = append(errs, fmt.Errorf("container %s: /tmp is not an emptyDir", c.Name))
		}
		probe := func(name string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil {
				errs = append(errs, fmt.Errorf("container %s: no HTTP %s probe", c.Name, name))
				return
			}
			if p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "telemetry" {
				errs = append(errs, fmt.Errorf("container %s: %s probe is %s on %s, want %s on telemetry", c.Name, name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path))
			}
		}
		probe("readiness", c.ReadinessProbe, r.readiness)
		probe("liveness", c.LivenessProbe, "/healthz")
	}
	if tmpl.Annotations["checksum/config"] == "" {
		errs = append(errs, errors.New("no checksum/config annotation: config changes would not restart the pods"))
	}
	return errors.Join(errs...)
}
