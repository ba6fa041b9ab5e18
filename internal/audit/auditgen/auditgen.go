// Package auditgen generates realistic kube-apiserver audit events for
// tests and benchmarks: the users, verbs and resources a busy cluster
// produces, about 1 KB each, built from the audit.k8s.io/v1 types.
package auditgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Users, Verbs, Resources and Namespaces are the values events draw from.
var (
	Users = []struct {
		Name   string
		Groups []string
	}{
		{"oidc:alice", []string{"oidc:exampleorg:infra-team", "oidc:exampleorg:dev", "system:authenticated"}},
		{"oidc:bob", []string{"oidc:exampleorg:dev", "system:authenticated"}},
		{"oidc:carol", []string{"oidc:exampleorg:sre", "system:authenticated"}},
		{"system:serviceaccount:kube-system:replicaset-controller", []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
		{"system:serviceaccount:kube-system:endpointslice-controller", []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
		{"system:node:cp-1", []string{"system:nodes", "system:authenticated"}},
		{"system:node:worker-1", []string{"system:nodes", "system:authenticated"}},
		{"system:kube-scheduler", []string{"system:authenticated"}},
		{"system:kube-controller-manager", []string{"system:authenticated"}},
		{"system:apiserver", []string{"system:masters"}},
	}
	Verbs      = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	Resources  = []string{"pods", "configmaps", "secrets", "deployments", "leases", "nodes", "events", "services", "endpointslices", "serviceaccounts"}
	Namespaces = []string{"default", "kube-system", "monitoring", "payments", "web", "ingress-nginx", "cert-manager", "argocd"}
)

// Gen produces events deterministically from a seed.
type Gen struct {
	r     *rand.Rand
	start time.Time
	step  time.Duration
	n     int
}

// New returns a generator whose events start at start and are step apart.
func New(seed uint64, start time.Time, step time.Duration) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: start, step: step}
}

// Event returns the next event as the audit type.
func (g *Gen) Event() auditv1.Event {
	i := g.n
	g.n++
	u := Users[g.r.IntN(len(Users))]
	verb := Verbs[g.r.IntN(len(Verbs))]
	res := Resources[g.r.IntN(len(Resources))]
	ns := Namespaces[g.r.IntN(len(Namespaces))]
	name := fmt.Sprintf("%s-%d", res[:len(res)-1], g.r.IntN(200))
	code := int32(200)
	switch g.r.IntN(20) {
	case 0:
		code = 403
	case 1:
		code = 404
	case 2:
		code = 201
	}
	t := g.start.Add(time.Duration(i) * g.step)
	uri := fmt.Sprintf("/api/v1/namespaces/%s/%s/%s", ns, res, name)
	e := auditv1.Event{
		TypeMeta:   metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:      auditv1.LevelRequestResponse,
		AuditID:    types.UID(fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", g.r.Uint32(), g.r.IntN(1<<16), g.r.IntN(1<<12), g.r.IntN(1<<12), g.r.Uint64()&(1<<48-1))),
		Stage:      auditv1.StageResponseComplete,
		RequestURI: uri,
		Verb:       verb,
		User: authnv1.UserInfo{
			Username: u.Name,
			Groups:   u.Groups,
			Extra:    map[string]authnv1.ExtraValue{"authentication.kubernetes.io/credential-id": {fmt.Sprintf("JTI=%08x", g.r.Uint32())}},
		},
		SourceIPs: []string{fmt.Sprintf("10.0.%d.%d", g.r.IntN(4), 2+g.r.IntN(250))},
		UserAgent: "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0",
		ObjectRef: &auditv1.ObjectReference{
			Resource: res, Namespace: ns, Name: name, APIVersion: "v1",
		},
		ResponseStatus:           &metav1.Status{Code: code},
		RequestReceivedTimestamp: metav1.NewMicroTime(t),
		StageTimestamp:           metav1.NewMicroTime(t.Add(3 * time.Millisecond)),
		Annotations: map[string]string{
			"authorization.k8s.io/decision": "allow",
			"authorization.k8s.io/reason":   fmt.Sprintf("RBAC: allowed by ClusterRoleBinding \"%s-binding\" of ClusterRole \"edit\" to Group \"%s\"", res, u.Groups[0]),
		},
	}
	if verb == "create" || verb == "update" || verb == "patch" {
		obj := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"data":{"key":"value-%d"}}`, name, ns, g.r.IntN(1000))
		e.RequestObject = &runtime.Unknown{Raw: []byte(obj), ContentType: runtime.ContentTypeJSON}
		e.ResponseObject = &runtime.Unknown{Raw: []byte(obj), ContentType: runtime.ContentTypeJSON}
	}
	return e
}

// JSON returns the next event as one line of JSON, as the log backend
// writes it.
func (g *Gen) JSON() []byte {
	e := g.Event()
	b, err := json.Marshal(&e)
	if err != nil {
		panic(err) // the types always marshal
	}
	return b
}

// Batch returns n events as raw JSON.
func (g *Gen) Batch(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = g.JSON()
	}
	return out
}
