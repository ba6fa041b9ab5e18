package usecase

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/login/apiserversim"
	"github.com/gatehouse-dev/gatehouse/internal/login/oidcclient"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Setup is `setup`: log in, show the token's claims, what kube-apiserver
// will derive from them, and the RBAC commands that grant access.
type Setup struct {
	Login interface {
		Interactive(ctx context.Context) (oidcclient.TokenSet, error)
	}
	// Exchange, when set (--exchange-audience), turns the login's ID token
	// into the cluster's, as get-token does; the report is about that one.
	Exchange func(ctx context.Context, subject string) (oidcclient.TokenSet, error)
	// Authenticator is the cluster's jwt authenticator, or nil to select
	// one from Config by the token's issuer.
	Authenticator *apiserversim.JWT
	Config        *apiserversim.AuthenticationConfiguration
	// Source says where the settings come from (for the report).
	Source string
	// ClusterRole bound to the user and the groups; Namespace for the
	// RoleBinding variant.
	ClusterRole, Namespace string
	// GetTokenArgs are the get-token flags for the kubeconfig snippet.
	GetTokenArgs []string
	// Command runs the plugin under the name it was run as: the exec
	// command and the arguments before get-token (default kubectl
	// gatehouse; kubectl oidc-login when installed as kubectl-oidc_login).
	Command []string
	// Whoami shows the identity the cluster derives (default kubectl
	// gatehouse whoami).
	Whoami string
	Stdout io.Writer
	Stderr io.Writer
}

// Run executes the use case.
func (u *Setup) Run(ctx context.Context) error {
	fmt.Fprintln(u.Stderr, "Logging in...")
	ts, err := u.Login.Interactive(ctx)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if u.Exchange != nil {
		if ts, err = u.Exchange(ctx, ts.IDToken); err != nil {
			return err
		}
	}
	w := u.Stdout
	// The claims are the identity provider's data: encoding/json escapes
	// C0 controls, termsafe.JSON the C1 controls and bidi overrides it
	// leaves raw.
	pretty, _ := json.MarshalIndent(ts.Claims, "  ", "  ")
	fmt.Fprintf(w, "## 1. The token's claims\n\n  %s\n\n", termsafe.JSON(pretty))

	j := u.Authenticator
	if j == nil {
		sel, err := apiserversim.Select(u.Config, ts.Claims)
		if err != nil {
			termsafe.Fprintf(w, "## 2. What the API server will make of it (%s)\n\n  REJECTED: %v\n", u.Source, err)
			return nil
		}
		j = &sel
	}
	res := apiserversim.Evaluate(*j, ts.Claims)
	termsafe.Fprintf(w, "## 2. What the API server will make of it (%s)\n\n", u.Source)
	describeMapping(w, *j)
	if len(res.Rejected) > 0 {
		fmt.Fprintln(w, "\n  The API server would REJECT this token:")
		for _, r := range res.Rejected {
			termsafe.Fprintf(w, "    - %s\n", r)
		}
	}
	if res.Username != "" {
		termsafe.Fprintf(w, "\n  username: %s\n", res.Username)
	}
	if len(res.Groups) > 0 {
		termsafe.Fprintf(w, "  groups:   %s\n", termsafe.Join(res.Groups, ", "))
	} else if j.ClaimMappings.Groups.Claim != "" {
		termsafe.Fprintf(w, "  groups:   none (the token has no %q claim; request the scope that carries it, e.g. --oidc-extra-scope=groups)\n", j.ClaimMappings.Groups.Claim)
	}
	if len(res.CEL) > 0 {
		whoami := u.Whoami
		if whoami == "" {
			whoami = "kubectl gatehouse whoami"
		}
		fmt.Fprintln(w, "\n  CEL expressions are evaluated by the API server, not here; after binding a role,")
		termsafe.Fprintf(w, "  run `%s` to see the identity the cluster derives:\n", whoami)
		for _, c := range res.CEL {
			termsafe.Fprintf(w, "    - %s\n", c)
		}
	}
	if len(res.Rejected) > 0 || (res.Username == "" && len(res.Groups) == 0) {
		return nil
	}

	fmt.Fprintf(w, "\n## 3. Grant access (run with an admin kubeconfig)\n\n")
	role := u.ClusterRole
	if res.Username != "" {
		termsafe.Fprintf(w, "  # the user, cluster-wide:\n  kubectl create clusterrolebinding %s --clusterrole=%s --user=%s\n",
			bindingName("oidc-user", res.Username, role), termsafe.Text(shellQuote(role)), termsafe.Text(shellQuote(res.Username)))
		termsafe.Fprintf(w, "  # or only in namespace %s:\n  kubectl create rolebinding %s --namespace=%s --clusterrole=%s --user=%s\n",
			u.Namespace, bindingName("oidc-user", res.Username, role), termsafe.Text(shellQuote(u.Namespace)), termsafe.Text(shellQuote(role)), termsafe.Text(shellQuote(res.Username)))
	}
	for _, g := range res.Groups {
		termsafe.Fprintf(w, "  # everyone in group %s:\n  kubectl create clusterrolebinding %s --clusterrole=%s --group=%s\n",
			g, bindingName("oidc-group", g, role), termsafe.Text(shellQuote(role)), termsafe.Text(shellQuote(g)))
		termsafe.Fprintf(w, "  kubectl create rolebinding %s --namespace=%s --clusterrole=%s --group=%s\n",
			bindingName("oidc-group", g, role), termsafe.Text(shellQuote(u.Namespace)), termsafe.Text(shellQuote(role)), termsafe.Text(shellQuote(g)))
	}

	command := u.Command
	if len(command) == 0 {
		command = []string{"kubectl", "gatehouse"}
	}
	fmt.Fprintf(w, "\n## 4. Set up the kubeconfig\n\n  kubectl config set-credentials oidc \\\n    --exec-api-version=client.authentication.k8s.io/v1 \\\n    --exec-interactive-mode=IfAvailable \\\n    --exec-command=%s", shellQuote(command[0]))
	for _, a := range append(append([]string(nil), command[1:]...), "get-token") {
		fmt.Fprintf(w, " \\\n    --exec-arg=%s", shellQuote(a))
	}
	for _, a := range u.GetTokenArgs {
		fmt.Fprintf(w, " \\\n    --exec-arg=%s", shellQuote(a))
	}
	fmt.Fprintln(w, "\n\n  (or let the cluster's operator run `gatehouse kubeconfig`.)")
	return nil
}

func describeMapping(w io.Writer, j apiserversim.JWT) {
	um, gm := j.ClaimMappings.Username, j.ClaimMappings.Groups
	switch {
	case um.Expression != "":
		termsafe.Fprintf(w, "  username from the CEL expression %s\n", um.Expression)
	default:
		p := "(no prefix)"
		if um.Prefix != nil && *um.Prefix != "" {
			p = fmt.Sprintf("prefixed with %q", *um.Prefix)
		}
		fmt.Fprintf(w, "  username from claim %q, %s\n", um.Claim, p)
	}
	if gm.Claim != "" {
		p := "(no prefix)"
		if gm.Prefix != nil && *gm.Prefix != "" {
			p = fmt.Sprintf("prefixed with %q", *gm.Prefix)
		}
		fmt.Fprintf(w, "  groups from claim %q, %s\n", gm.Claim, p)
	}
}

// bindingName makes a valid object name (DNS subdomain) from a user or
// group name.
func bindingName(kind, subject, role string) string {
	n := strings.Trim(dnsLabelish(subject), "-.")
	name := kind + "-" + n + "-" + dnsLabelish(role)
	if len(name) > 253 {
		name = name[:253]
	}
	return strings.Trim(name, "-.")
}

// dnsLabelish lowercases s and replaces each run of characters other than
// [a-z0-9.-] with one "-".
func dnsLabelish(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '-' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return b.String()
}

// shellQuote quotes one word of a command printed for a person to copy
// (termsafe.ShellQuote: $'...' with escapes when it holds controls).
func shellQuote(s string) string { return termsafe.ShellQuote(s) }
