package usecase

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Whoami is `whoami`: it asks the cluster who the current credentials are
// (SelfSubjectReview, authentication.k8s.io/v1) and, with CanI, what that
// identity may do in Namespace (SelfSubjectRulesReview). It goes through
// kubectl, so it uses exactly the kubeconfig, context and exec plugin that
// kubectl would, and the plugin links no Kubernetes client library (which
// would slow down every get-token).
type Whoami struct {
	// Kubectl is the kubectl command (default "kubectl").
	Kubectl string
	// KubectlArgs are passed before the subcommand (--kubeconfig, --context).
	KubectlArgs []string
	CanI        bool
	Namespace   string
	Stdout      io.Writer
	Stderr      io.Writer
}

type selfSubjectReview struct {
	Status struct {
		UserInfo struct {
			Username string              `json:"username"`
			UID      string              `json:"uid"`
			Groups   []string            `json:"groups"`
			Extra    map[string][]string `json:"extra"`
		} `json:"userInfo"`
	} `json:"status"`
}

type rulesReview struct {
	Status struct {
		ResourceRules []struct {
			Verbs         []string `json:"verbs"`
			APIGroups     []string `json:"apiGroups"`
			Resources     []string `json:"resources"`
			ResourceNames []string `json:"resourceNames"`
		} `json:"resourceRules"`
		NonResourceRules []struct {
			Verbs           []string `json:"verbs"`
			NonResourceURLs []string `json:"nonResourceURLs"`
		} `json:"nonResourceRules"`
		Incomplete      bool   `json:"incomplete"`
		EvaluationError string `json:"evaluationError"`
	} `json:"status"`
}

// Run executes the use case.
func (u *Whoami) Run(ctx context.Context) error {
	var ssr selfSubjectReview
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	if err := u.post(ctx, "/apis/authentication.k8s.io/v1/selfsubjectreviews", body, &ssr); err != nil {
		return fmt.Errorf("SelfSubjectReview: %w", err)
	}
	ui := ssr.Status.UserInfo
	w := tabwriter.NewWriter(u.Stdout, 0, 4, 2, ' ', 0)
	// Everything below is the cluster's data (the identity provider
	// chose the names): termsafe shows its controls as escapes, and a tab
	// or line break cannot shift a column or forge a row.
	termsafe.Fprintf(w, "Username\t%s\n", ui.Username)
	if ui.UID != "" {
		termsafe.Fprintf(w, "UID\t%s\n", ui.UID)
	}
	termsafe.Fprintf(w, "Groups\t%s\n", termsafe.Join(ui.Groups, ", "))
	keys := make([]string, 0, len(ui.Extra))
	for k := range ui.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		termsafe.Fprintf(w, "Extra: %s\t%s\n", k, termsafe.Join(ui.Extra[k], ", "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !u.CanI {
		return nil
	}
	var rr rulesReview
	body = fmt.Sprintf(`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectRulesReview","spec":{"namespace":%q}}`, u.Namespace)
	if err := u.post(ctx, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body, &rr); err != nil {
		return fmt.Errorf("SelfSubjectRulesReview: %w", err)
	}
	termsafe.Fprintf(u.Stdout, "\nIn namespace %s this identity may:\n", u.Namespace)
	w = tabwriter.NewWriter(u.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RESOURCES\tNON-RESOURCE URLS\tRESOURCE NAMES\tVERBS")
	for _, r := range rr.Status.ResourceRules {
		res := make([]string, 0, len(r.Resources))
		for _, x := range r.Resources {
			for _, g := range r.APIGroups {
				if g != "" {
					x += "." + g
				}
				res = append(res, x)
				break
			}
		}
		termsafe.Fprintf(w, "%s\t\t[%s]\t[%s]\n", termsafe.Join(res, ","), termsafe.Join(r.ResourceNames, " "), termsafe.Join(r.Verbs, " "))
	}
	for _, r := range rr.Status.NonResourceRules {
		termsafe.Fprintf(w, "\t[%s]\t[]\t[%s]\n", termsafe.Join(r.NonResourceURLs, " "), termsafe.Join(r.Verbs, " "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if rr.Status.Incomplete {
		termsafe.Fprintf(u.Stderr, "warning: the list is incomplete (%s)\n", rr.Status.EvaluationError)
	}
	return nil
}

func (u *Whoami) post(ctx context.Context, path, body string, out any) error {
	kubectl := u.Kubectl
	if kubectl == "" {
		kubectl = "kubectl"
	}
	args := append(append([]string{}, u.KubectlArgs...), "create", "--raw", path, "-f", "-")
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Stdin = strings.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", kubectl, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	return nil
}
