package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// TestCheckReportEscapesClusterData: everything `cluster check` prints
// that the cluster chose (binding names and annotations, subjects, the
// server version, kube-apiserver's messages, the token's user and groups)
// holds each attack; the report must carry no control and exactly one
// status line per finding.
func TestCheckReportEscapesClusterData(t *testing.T) {
	c := completeConfig(t, "issuer: {url: https://login.example.com}\n"+
		"teams: {'org:infra': cluster-admin}\naudit: {webhook: {disabled: true}}\n")
	infra := c.RBACObjects().ClusterRoleBindings[0]
	names := make([]string, 0, len(termsafetest.Attacks))
	for name := range termsafetest.Attacks {
		names = append(names, name)
	}
	sort.Strings(names)
	var attacks []string
	for _, n := range names {
		attacks = append(attacks, termsafetest.Attacks[n])
	}
	all := strings.Join(attacks, "|")

	f := &fakeAPIServer{
		version:     "v1.31.2" + all,
		tokenReview: authenticationv1.TokenReviewStatus{Error: "invalid bearer token" + all},
		users: map[string]authenticationv1.UserInfo{
			"t": {Username: "oidc:" + all, Groups: append([]string{"system:authenticated"}, attacks...)},
		},
		namespaces: map[string]bool{},
		bindings:   map[string]json.RawMessage{},
	}
	live := *infra.DeepCopy()
	for _, a := range attacks {
		live.Subjects = append(live.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind + a, APIGroup: rbacv1.GroupName, Name: a})
	}
	f.put(t, &live)
	for _, a := range attacks {
		stale := *infra.DeepCopy()
		stale.Name = "stale" + a
		stale.Annotations = map[string]string{AnnotationSource: a}
		f.put(t, &stale)
		rb := rbacv1.RoleBinding{ObjectMeta: stale.ObjectMeta, RoleRef: stale.RoleRef, Subjects: stale.Subjects}
		rb.Namespace = "ns" + a
		f.put(t, &rb)
	}
	r, err := c.Check(context.Background(), f.start(t), CheckOptions{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.Write(&b)
	out := b.String()
	termsafetest.CheckOutput(t, out)

	findings := 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(line, "         ") {
			continue
		}
		status, _, _ := strings.Cut(line, " ")
		switch Status(status) {
		case StatusOK, StatusMissing, StatusDiffers, StatusExtra, StatusFailed, StatusInfo:
			findings++
		default:
			t.Errorf("a line that is neither a finding nor its detail (forged?): %q", line)
		}
	}
	if findings != len(r.Findings) {
		t.Errorf("%d status lines for %d findings:\n%s", findings, len(r.Findings), out)
	}
	extra := 0
	for _, fd := range r.Findings {
		if fd.Status == StatusExtra {
			extra++
		}
	}
	if extra != 2*len(attacks) {
		t.Errorf("%d stale bindings reported, want %d:\n%s", extra, 2*len(attacks), out)
	}
	for _, want := range []string{
		"ClusterRoleBinding " + termsafe.String("stale"+termsafetest.Attacks["osc title"]),
		termsafe.String(termsafetest.Attacks["lf forged row"]),
		termsafe.String(termsafetest.ViaJSON("oidc:" + all)),
		`groups system:authenticated, "ding\a", `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not show %s:\n%s", want, out)
		}
	}
}
