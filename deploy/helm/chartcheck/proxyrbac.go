package chartcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ProxyRBACCase is one request the proxy's ServiceAccount makes to the
// API server in ProxyRBAC, and whether RBAC must let it through.
type ProxyRBACCase struct {
	// Name says what is tried.
	Name string
	// Method and Path of the request; Body is its JSON.
	Method, Path, Body string
	// Impersonate is what the request's Impersonate-* headers name.
	Impersonate rest.ImpersonationConfig
	// Allowed: the API server answers 2xx; else 403.
	Allowed bool
}

const selfSubjectReview = `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`

// whoami is a SelfSubjectReview (any authenticated user may create one)
// made as the impersonated identity: it succeeds only if the proxy may
// impersonate all of it.
func whoami(name string, allowed bool, imp rest.ImpersonationConfig) ProxyRBACCase {
	return ProxyRBACCase{Name: name, Method: http.MethodPost, Path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		Body: selfSubjectReview, Impersonate: imp, Allowed: allowed}
}

// ProxyRBACCases are the requests ProxyRBAC makes with the chart's
// default ClusterRole (allUserExtras: what changes with
// proxy.rbac.allUserExtras: true): what the proxy forwards passes, and
// everything else is refused.
func ProxyRBACCases(allUserExtras bool) []ProxyRBACCase {
	person := rest.ImpersonationConfig{UserName: "oidc:xrstf", Groups: []string{"oidc:exampleorg:infra-team"}}
	with := func(f func(*rest.ImpersonationConfig)) rest.ImpersonationConfig {
		c := person
		c.Extra = map[string][]string{}
		f(&c)
		return c
	}
	return []ProxyRBACCase{
		whoami("impersonate a person and a team", true, person),
		whoami("impersonate a uid", true, with(func(c *rest.ImpersonationConfig) { c.UID = "1234" })),
		whoami("impersonate the credential-id extra", true, with(func(c *rest.ImpersonationConfig) {
			c.Extra["authentication.kubernetes.io/credential-id"] = []string{"JTI=0f1e2d"}
		})),
		whoami("impersonate an extra the proxy does not forward", allUserExtras, with(func(c *rest.ImpersonationConfig) {
			c.Extra["example.com/team"] = []string{"infra"}
		})),
		whoami("impersonate a ServiceAccount", false, rest.ImpersonationConfig{UserName: "system:serviceaccount:kube-system:default"}),
		{Name: "create a SubjectAccessReview", Method: http.MethodPost, Path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
			Body:    `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"oidc:xrstf","resourceAttributes":{"verb":"impersonate","resource":"users","name":"jane"}}}`,
			Allowed: true},
		{Name: "read Secrets as itself", Method: http.MethodGet, Path: "/api/v1/secrets"},
		{Name: "list Pods as itself", Method: http.MethodGet, Path: "/api/v1/pods"},
		{Name: "create a TokenReview", Method: http.MethodPost, Path: "/apis/authentication.k8s.io/v1/tokenreviews",
			Body: `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}`},
	}
}

// ProxyRBACObjects renders the chart's proxy-only value set (plus extra
// --set arguments) into namespace ns and returns the proxy's ServiceAccount
// name and the documents of that ServiceAccount, its ClusterRole and
// ClusterRoleBinding (JSON, to apply), with every rendered object.
func ProxyRBACObjects(ctx context.Context, helm, chart, ns string, extra ...string) (account string, docs []string, objs []Object, err error) {
	values := filepath.Join(chart, "ci", "proxy-only-values.yaml")
	out, err := Template(ctx, helm, chart, ns, nil, []string{values}, extra...)
	if err != nil {
		return "", nil, nil, err
	}
	if objs, err = Decode(out); err != nil {
		return "", nil, nil, err
	}
	for _, o := range objs {
		switch o.Kind {
		case "ServiceAccount":
			account = o.Name
			docs = append(docs, string(o.Raw))
		case "ClusterRole", "ClusterRoleBinding":
			docs = append(docs, string(o.Raw))
		}
	}
	if account == "" || len(docs) != 3 {
		return "", nil, nil, fmt.Errorf("chartcheck: the proxy-only rendering has %d of ServiceAccount, ClusterRole, ClusterRoleBinding", len(docs))
	}
	return account, docs, objs, nil
}

// ProxyRBAC applies the proxy's ServiceAccount, ClusterRole and
// ClusterRoleBinding, as the chart renders them (the proxy-only value
// set, plus extra --set arguments), to a real cluster, in opts.Namespace
// (default "gatehouse-chartcheck-proxy", created), takes a token for the
// ServiceAccount and makes each case's request with it, impersonating as
// the proxy does: kube-apiserver's own impersonation filter and RBAC
// judge. It returns every case whose answer differs from the intended
// one. The objects are deleted at the end.
func ProxyRBAC(ctx context.Context, opts DryRunOptions, cases []ProxyRBACCase, extra ...string) error {
	ns, helm, chart, err := opts.prepare(ctx, "ProxyRBAC", "gatehouse-chartcheck-proxy")
	if err != nil {
		return err
	}
	account, docs, objs, err := ProxyRBACObjects(ctx, helm, chart, ns, extra...)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "chartcheck-proxyrbac-")
	if err != nil {
		return fmt.Errorf("chartcheck: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "rbac.yaml")
	nsDoc := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, ns)
	if err := os.WriteFile(file, []byte(nsDoc+"\n---\n"+strings.Join(docs, "\n---\n")), 0o600); err != nil {
		return fmt.Errorf("chartcheck: %w", err)
	}
	if _, err := kubectl(ctx, opts, "apply", "--server-side", "--force-conflicts", "--field-manager=chartcheck", "-f", file); err != nil {
		return err
	}
	defer func() {
		// The namespace stays (other checks may use it); the cluster-wide
		// objects go.
		for _, o := range objs {
			if o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding" {
				_, _ = kubectl(context.WithoutCancel(ctx), opts, "delete", strings.ToLower(o.Kind), o.Name, "--ignore-not-found")
			}
		}
	}()
	token, _, err := runKubectl(ctx, opts, "create", "token", account, "--namespace", ns, "--duration", "10m")
	if err != nil {
		return err
	}
	admin, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("chartcheck: %w", err)
	}
	// The proxy's credentials only: the token, the cluster's CA.
	base := rest.AnonymousClientConfig(admin)
	base.BearerToken = strings.TrimSpace(token)

	var errs []error
	for _, c := range cases {
		cfg := rest.CopyConfig(base)
		cfg.Impersonate = c.Impersonate
		code, body, err := do(ctx, cfg, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			continue
		}
		ok := code >= 200 && code < 300
		if ok != c.Allowed || (!ok && code != http.StatusForbidden) {
			errs = append(errs, fmt.Errorf("%s: the API server answered %d, want %s: %s", c.Name, code,
				map[bool]string{true: "2xx", false: "403"}[c.Allowed], strings.TrimSpace(body)))
			continue
		}
		if ok && c.Impersonate.UserName != "" {
			// The person the API server saw is the impersonated one.
			var r struct {
				Status struct {
					UserInfo struct {
						Username string `json:"username"`
					} `json:"userInfo"`
				} `json:"status"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status.UserInfo.Username != c.Impersonate.UserName {
				errs = append(errs, fmt.Errorf("%s: the API server saw %q, want %q", c.Name, r.Status.UserInfo.Username, c.Impersonate.UserName))
			}
		}
	}
	return errors.Join(errs...)
}

// do makes one case's request with cfg's credentials and impersonation.
func do(ctx context.Context, cfg *rest.Config, c ProxyRBACCase) (int, string, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0, "", err
	}
	var body io.Reader
	if c.Body != "" {
		body = bytes.NewReader([]byte(c.Body))
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, strings.TrimSuffix(cfg.Host, "/")+c.Path, body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}
