package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// fakeAPIServer answers the requests `cluster check` makes, over HTTP as
// kube-apiserver does, from bindings held in memory: /version,
// TokenReview, SelfSubjectReview, and get, list and server-side dry-run
// apply of (Cluster)RoleBindings. A dry-run apply returns the applied
// object with the live one's subjects and the applied ones merged, as a
// second field manager's entries survive an apply.
type fakeAPIServer struct {
	version     string
	tokenReview authenticationv1.TokenReviewStatus
	// users maps a bearer token to the identity SelfSubjectReview returns;
	// other tokens are Unauthorized.
	users      map[string]authenticationv1.UserInfo
	namespaces map[string]bool

	mu       sync.Mutex
	bindings map[string]json.RawMessage // resource/namespace/name -> object
	probe    string                     // the last TokenReview's token
	applies  []*http.Request
}

func (f *fakeAPIServer) key(resource, ns, name string) string {
	return resource + "/" + ns + "/" + name
}

func (f *fakeAPIServer) put(t *testing.T, obj any) {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	switch b := obj.(type) {
	case *rbacv1.ClusterRoleBinding:
		f.bindings[f.key("clusterrolebindings", "", b.Name)] = data
	case *rbacv1.RoleBinding:
		f.bindings[f.key("rolebindings", b.Namespace, b.Name)] = data
	default:
		t.Fatalf("put %T", obj)
	}
}

func (f *fakeAPIServer) start(t *testing.T) *rest.Config {
	t.Helper()
	const rbac = "/apis/rbac.authorization.k8s.io/v1/"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"gitVersion": f.version, "major": "1"})
	})
	mux.HandleFunc("POST /apis/authentication.k8s.io/v1/tokenreviews", func(w http.ResponseWriter, r *http.Request) {
		var tr authenticationv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil || tr.Kind != "TokenReview" || tr.APIVersion != "authentication.k8s.io/v1" {
			writeStatus(w, http.StatusBadRequest, "BadRequest", "want a TokenReview")
			return
		}
		f.mu.Lock()
		f.probe = tr.Spec.Token
		f.mu.Unlock()
		tr.Status = f.tokenReview
		writeJSON(w, http.StatusCreated, tr)
	})
	mux.HandleFunc("POST /apis/authentication.k8s.io/v1/selfsubjectreviews", func(w http.ResponseWriter, r *http.Request) {
		u, ok := f.users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return
		}
		writeJSON(w, http.StatusCreated, authenticationv1.SelfSubjectReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "SelfSubjectReview"},
			Status:   authenticationv1.SelfSubjectReviewStatus{UserInfo: u},
		})
	})
	list := func(resource, kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
			if err != nil {
				writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			items := []json.RawMessage{}
			for k, data := range f.bindings {
				var m metav1.PartialObjectMetadata
				if err := json.Unmarshal(data, &m); err != nil {
					writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
					return
				}
				if strings.HasPrefix(k, resource+"/") && sel.Matches(labels.Set(m.Labels)) {
					items = append(items, data)
				}
			}
			writeJSON(w, http.StatusOK, map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "items": items})
		}
	}
	one := func(resource string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ns, name := r.PathValue("ns"), r.PathValue("name")
			f.mu.Lock()
			defer f.mu.Unlock()
			live, found := f.bindings[f.key(resource, ns, name)]
			if r.Method == http.MethodGet {
				if !found {
					writeStatus(w, http.StatusNotFound, "NotFound", resource+" "+name+" not found")
					return
				}
				writeJSON(w, http.StatusOK, live)
				return
			}
			f.applies = append(f.applies, r)
			q := r.URL.Query()
			if r.Header.Get("Content-Type") != "application/apply-patch+yaml" || q.Get("dryRun") != "All" || q.Get("force") != "true" || q.Get("fieldManager") == "" {
				writeStatus(w, http.StatusBadRequest, "BadRequest", "want a forced dry-run apply, got "+r.Header.Get("Content-Type")+" "+q.Encode())
				return
			}
			if ns != "" && !f.namespaces[ns] {
				writeStatus(w, http.StatusNotFound, "NotFound", `namespaces "`+ns+`" not found`)
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
				return
			}
			var applied, old rbacv1.RoleBinding // the same shape as a ClusterRoleBinding
			if err := yaml.UnmarshalStrict(body, &applied); err != nil {
				writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
				return
			}
			if found {
				if err := json.Unmarshal(live, &old); err != nil {
					writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
					return
				}
				if old.RoleRef != applied.RoleRef {
					writeStatus(w, http.StatusUnprocessableEntity, "Invalid", "roleRef: Invalid value: cannot change roleRef")
					return
				}
				applied.Subjects = mergeSubjects(old.Subjects, applied.Subjects)
			}
			writeJSON(w, http.StatusOK, applied)
		}
	}
	mux.HandleFunc("GET "+rbac+"clusterrolebindings", list("clusterrolebindings", "ClusterRoleBindingList"))
	mux.HandleFunc("GET "+rbac+"rolebindings", list("rolebindings", "RoleBindingList"))
	mux.HandleFunc("GET "+rbac+"clusterrolebindings/{name}", one("clusterrolebindings"))
	mux.HandleFunc("PATCH "+rbac+"clusterrolebindings/{name}", one("clusterrolebindings"))
	mux.HandleFunc("GET "+rbac+"namespaces/{ns}/rolebindings/{name}", one("rolebindings"))
	mux.HandleFunc("PATCH "+rbac+"namespaces/{ns}/rolebindings/{name}", one("rolebindings"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, "NotFound", "the fake has no "+r.Method+" "+r.URL.Path)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}
}

func mergeSubjects(a, b []rbacv1.Subject) []rbacv1.Subject {
	out := append([]rbacv1.Subject(nil), a...)
	for _, s := range b {
		found := false
		for _, x := range a {
			found = found || x == s
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if raw, ok := v.(json.RawMessage); ok {
		_, _ = w.Write(raw)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	writeJSON(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
}

func completeConfig(t *testing.T, y string) *Config {
	t.Helper()
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckIssuer reads kube-apiserver's answers to the probe token (the
// e2e suite gets each of them from a real kube-apiserver).
func TestCheckIssuer(t *testing.T) {
	c := completeConfig(t, "issuer: {url: https://login.example.com/dex, audiences: [kubernetes, kubectl]}\naudit: {webhook: {disabled: true}}\n")
	cases := []struct {
		name   string
		status authenticationv1.TokenReviewStatus
		want   Status
		detail string
	}{
		{"keys fetched", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: verify token: failed to verify signature: failed to verify id token signature]"}, StatusOK, "fetched its keys"},
		{"not initialized", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: authenticator not initialized]"}, StatusDiffers, "could not fetch"},
		{"no authenticator", authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}, StatusDiffers, "no authenticator for this issuer"},
		{"other oidc error", authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, oidc: verify token: audience mismatch]"}, StatusDiffers, "another reason"},
		{"accepted", authenticationv1.TokenReviewStatus{Authenticated: true}, StatusFailed, "made-up signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPIServer{tokenReview: tc.status}
			cs, err := newAPIClient(f.start(t))
			if err != nil {
				t.Fatal(err)
			}
			var r Report
			c.checkIssuer(context.Background(), cs, &r)
			if len(r.Findings) != 1 || r.Findings[0].Status != tc.want || !strings.Contains(r.Findings[0].Detail, tc.detail) {
				t.Fatalf("findings %+v, want %s with %q", r.Findings, tc.want, tc.detail)
			}
			parts := strings.Split(f.probe, ".")
			if len(parts) != 3 {
				t.Fatalf("probe %q is not a JWT", f.probe)
			}
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Iss string `json:"iss"`
				Aud string `json:"aud"`
				Exp int64  `json:"exp"`
			}
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			if claims.Iss != c.Issuer.URL || claims.Aud != "kubernetes" || claims.Exp <= time.Now().Unix() {
				t.Errorf("probe claims %+v", claims)
			}
		})
	}
}

// TestCheck runs the whole check against the fake kube-apiserver, with
// the bindings in every state check tells apart.
func TestCheck(t *testing.T) {
	const cfg = "issuer: {url: https://login.example.com}\n" +
		"teams: {'org:infra': cluster-admin, 'org:web': {role: edit, namespace: web}}\n" +
		"audit: {webhook: {disabled: true}}\n"
	c := completeConfig(t, cfg)
	objs := c.RBACObjects()
	infra, web := objs.ClusterRoleBindings[0], objs.RoleBindings[0]
	other := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bob"}

	cases := []struct {
		name    string
		version string
		setup   func(t *testing.T, f *fakeAPIServer)
		token   string
		want    map[string]Status // subject -> status
		detail  map[string]string // subject -> part of the detail
	}{
		{
			name: "nothing applied", version: "v1.31.2",
			want: map[string]Status{
				"server version v1.31.2":           StatusInfo,
				"ClusterRoleBinding " + infra.Name: StatusMissing,
				"RoleBinding web/" + web.Name:      StatusMissing,
			},
		},
		{
			name: "all applied", version: "v1.31.2",
			setup: func(t *testing.T, f *fakeAPIServer) { f.put(t, &infra); f.put(t, &web) },
			want: map[string]Status{
				"ClusterRoleBinding " + infra.Name: StatusOK,
				"RoleBinding web/" + web.Name:      StatusOK,
			},
		},
		{
			name: "drift", version: "v1.29.4",
			setup: func(t *testing.T, f *fakeAPIServer) {
				b := *infra.DeepCopy()
				b.Subjects = append(b.Subjects, other)
				f.put(t, &b)
				rb := *web.DeepCopy()
				rb.RoleRef.Name = "admin"
				f.put(t, &rb)
				stale := *infra.DeepCopy()
				stale.Name = "gatehouse:group:org:gone:view"
				f.put(t, &stale)
				unmanaged := *infra.DeepCopy()
				unmanaged.Name, unmanaged.Labels = "someone-else", nil
				f.put(t, &unmanaged)
			},
			want: map[string]Status{
				"server version v1.29.4":                           StatusDiffers,
				"ClusterRoleBinding " + infra.Name:                 StatusDiffers,
				"RoleBinding web/" + web.Name:                      StatusDiffers,
				"ClusterRoleBinding gatehouse:group:org:gone:view": StatusExtra,
			},
			detail: map[string]string{
				"ClusterRoleBinding " + infra.Name: `User "bob"`,
				"RoleBinding web/" + web.Name:      "roleRef is ClusterRole admin",
			},
		},
		{
			name: "no namespace", version: "v1.31.2",
			setup: func(_ *testing.T, f *fakeAPIServer) { f.namespaces = nil },
			want: map[string]Status{
				"RoleBinding web/" + web.Name: StatusFailed,
			},
			detail: map[string]string{"RoleBinding web/" + web.Name: "kubectl create namespace web"},
		},
		{
			name: "token of a team member", version: "v1.31.2", token: "alice-token",
			want: map[string]Status{
				"token identity": StatusInfo,
				"team org:infra": StatusOK,
			},
		},
		{
			name: "token refused", version: "v1.31.2", token: "expired",
			want:   map[string]Status{"token identity": StatusFailed},
			detail: map[string]string{"token identity": "Unauthorized"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPIServer{
				version:     tc.version,
				tokenReview: authenticationv1.TokenReviewStatus{Error: "oidc: verify token: failed to verify signature"},
				users: map[string]authenticationv1.UserInfo{
					"alice-token": {Username: "oidc:alice", Groups: []string{"oidc:org:infra", "system:authenticated"}},
				},
				namespaces: map[string]bool{"web": true},
				bindings:   map[string]json.RawMessage{},
			}
			if tc.setup != nil {
				tc.setup(t, f)
			}
			r, err := c.Check(context.Background(), f.start(t), CheckOptions{Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Finding{}
			for _, fd := range r.Findings {
				got[fd.Subject] = fd
			}
			for subject, want := range tc.want {
				if got[subject].Status != want {
					t.Errorf("%s: %q, want %q (findings %+v)", subject, got[subject].Status, want, r.Findings)
				}
			}
			for subject, want := range tc.detail {
				if !strings.Contains(got[subject].Detail, want) {
					t.Errorf("%s: detail %q lacks %q", subject, got[subject].Detail, want)
				}
			}
			if _, ok := got["ClusterRoleBinding someone-else"]; ok {
				t.Error("a binding without gatehouse's label is reported")
			}
			if got["issuer "+c.Issuer.URL].Status != StatusOK {
				t.Errorf("issuer finding %+v", got["issuer "+c.Issuer.URL])
			}
			for _, a := range f.applies {
				if a.URL.Query().Get("fieldManager") != "gatehouse" {
					t.Errorf("apply with field manager %q", a.URL.Query().Get("fieldManager"))
				}
			}
		})
	}
}
