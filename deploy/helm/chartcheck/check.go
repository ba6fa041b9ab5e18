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
func Hardened(tmpl *corev1.PodTemplateSpec) error { return hardened(tmpl, false) }

// HardenedAPIClient is Hardened for a pod that calls the Kubernetes API
// (kubernetes storage): it must have its service-account token.
func HardenedAPIClient(tmpl *corev1.PodTemplateSpec) error { return hardened(tmpl, true) }

func hardened(tmpl *corev1.PodTemplateSpec, apiClient bool) error {
	var errs []error
	spec := tmpl.Spec
	token := spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken
	switch {
	case token && !apiClient:
		errs = append(errs, errors.New("automountServiceAccountToken is not false"))
	case !token && apiClient:
		errs = append(errs, errors.New("automountServiceAccountToken is false, but the kubernetes storage needs the token"))
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
		for _, p := range []string{"/tmp", "/var/lib/gatehouse", "/etc/gatehouse"} {
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
		probe("readiness", c.ReadinessProbe, "/healthz/ready")
		probe("liveness", c.LivenessProbe, "/healthz")
	}
	if tmpl.Annotations["checksum/config"] == "" {
		errs = append(errs, errors.New("no checksum/config annotation: config changes would not restart the pods"))
	}
	return errors.Join(errs...)
}
