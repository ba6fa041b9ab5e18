package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Status of one check finding.
type Status string

// Finding statuses.
const (
	StatusOK      Status = "ok"
	StatusMissing Status = "missing"
	StatusDiffers Status = "differs"
	StatusExtra   Status = "extra"
	StatusFailed  Status = "failed"
	StatusInfo    Status = "info"
)

// Finding is one thing `cluster check` compared.
type Finding struct {
	Status Status
	// Subject names what was compared, e.g. "ClusterRoleBinding x".
	Subject string
	// Detail says what differs and what to do.
	Detail string
}

// Report is the outcome of Check.
type Report struct {
	Findings []Finding
}

// OK reports whether nothing differs, is missing or failed.
func (r Report) OK() bool {
	for _, f := range r.Findings {
		switch f.Status {
		case StatusOK, StatusInfo:
		default:
			return false
		}
	}
	return true
}

// Write prints the findings, one per line, details indented. Findings
// made by Check already show the cluster's data (names, users, messages)
// escaped; Write escapes whatever else would act on a terminal, line by
// line, so that no finding can forge another.
func (r Report) Write(w io.Writer) {
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-8s %s\n", termsafe.String(string(f.Status)), termsafe.String(f.Subject))
		if f.Detail != "" {
			for _, line := range strings.Split(f.Detail, "\n") {
				fmt.Fprintf(w, "         %s\n", termsafe.String(line))
			}
		}
	}
}

// add records a finding. The subject's data and the args come from the
// cluster (object names, usernames, kube-apiserver's messages): they are
// rendered by termsafe, while the format's own line breaks stay.
func (r *Report) add(s Status, subject, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Status: s, Subject: subject, Detail: termsafe.Sprintf(format, args...)})
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Token, when set, is an ID token: Check asks the cluster who it is
	// (SelfSubjectReview) and compares with what the config derives.
	Token string
	// FieldManager for the dry-run apply (default "gatehouse").
	FieldManager string
}

// Check compares a live cluster, reached with admin credentials, with the
// rendered configuration: the server version against the authentication
// mode, every rendered binding through a server-side dry-run apply, stale
// bindings gatehouse rendered before, and, given a token, the identity
// kube-apiserver derives from it.
func (c *Config) Check(ctx context.Context, admin *rest.Config, opts CheckOptions) (Report, error) {
	var r Report
	if opts.FieldManager == "" {
		opts.FieldManager = "gatehouse"
	}
	cs, err := newAPIClient(admin)
	if err != nil {
		return r, fmt.Errorf("cluster check: %w", err)
	}
	tokenBase := rest.AnonymousClientConfig(admin)
	if c.Proxy != nil {
		// kube-apiserver knows nothing of the issuer: the proxy
		// authenticates, so the token is shown to the proxy.
		r.add(StatusInfo, "issuer "+c.Issuer.URL, "kube-apiserver is not asked: gatehouse proxy at %s authenticates the tokens (docs/proxy.md)", c.Proxy.URL)
		ca, err := c.readPEM("proxy.caFile", c.Proxy.CAFile, c.Proxy.CAData)
		if err != nil {
			return r, err
		}
		tokenBase = &rest.Config{Host: c.Proxy.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}, Timeout: admin.Timeout}
	} else {
		c.checkVersion(ctx, cs, &r)
		c.checkIssuer(ctx, cs, &r)
	}
	if err := c.checkRBAC(ctx, cs, opts.FieldManager, &r); err != nil {
		return r, err
	}
	if opts.Token != "" {
		c.checkToken(ctx, tokenBase, opts.Token, &r)
	}
	return r, nil
}

func (c *Config) checkVersion(ctx context.Context, cs *apiClient, r *Report) {
	info, err := cs.serverVersion(ctx)
	if err != nil {
		r.add(StatusFailed, "server version", "cannot read the server version: %v", err)
		return
	}
	v, err := version.ParseGeneric(info.GitVersion)
	if err != nil {
		r.add(StatusInfo, "server version", "%s (not parsed: %v)", info.GitVersion, err)
		return
	}
	structuredOK := v.AtLeast(version.MajorMinor(1, 30))
	switch {
	case c.Authentication == ModeStructured && !structuredOK:
		r.add(StatusDiffers, "server version "+termsafe.String(info.GitVersion),
			"kube-apiserver %s predates the structured authentication config (1.30); use %s (authentication: flags)", info.GitVersion, FileAPIServerFlags)
	default:
		r.add(StatusInfo, "server version "+termsafe.String(info.GitVersion), "authentication: %s", c.Authentication)
	}
}

func (c *Config) checkRBAC(ctx context.Context, cs *apiClient, manager string, r *Report) error {
	objs := c.RBACObjects()
	force := true
	patchOpts := metav1.PatchOptions{FieldManager: manager, Force: &force, DryRun: []string{metav1.DryRunAll}}
	want := map[string]bool{}

	for i := range objs.ClusterRoleBindings {
		b := &objs.ClusterRoleBindings[i]
		subject := "ClusterRoleBinding " + b.Name
		want[subject] = true
		var live, applied rbacv1.ClusterRoleBinding
		getErr := cs.getBinding(ctx, "clusterrolebindings", "", b.Name, &live)
		if getErr != nil && !apierrors.IsNotFound(getErr) {
			return fmt.Errorf("cluster check: get %s: %w", subject, getErr)
		}
		data, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("cluster check: %w", err)
		}
		aerr := cs.applyBinding(ctx, "clusterrolebindings", "", b.Name, data, &patchOpts, &applied)
		var liveRef *rbacv1.RoleRef
		var liveSubjects []rbacv1.Subject
		if getErr == nil {
			liveRef, liveSubjects = &live.RoleRef, live.Subjects
		}
		compareBinding(r, subject, getErr != nil, liveRef, liveSubjects, b.RoleRef, b.Subjects, applied.Subjects, aerr, "kubectl apply --server-side -f "+FileRBAC)
	}
	for i := range objs.RoleBindings {
		b := &objs.RoleBindings[i]
		subject := "RoleBinding " + b.Namespace + "/" + b.Name
		want[subject] = true
		var live, applied rbacv1.RoleBinding
		getErr := cs.getBinding(ctx, "rolebindings", b.Namespace, b.Name, &live)
		if getErr != nil && !apierrors.IsNotFound(getErr) {
			return fmt.Errorf("cluster check: get %s: %w", subject, getErr)
		}
		data, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("cluster check: %w", err)
		}
		aerr := cs.applyBinding(ctx, "rolebindings", b.Namespace, b.Name, data, &patchOpts, &applied)
		var liveRef *rbacv1.RoleRef
		var liveSubjects []rbacv1.Subject
		if getErr == nil {
			liveRef, liveSubjects = &live.RoleRef, live.Subjects
		}
		if aerr != nil && apierrors.IsNotFound(aerr) {
			aerr = fmt.Errorf("namespace %s does not exist: create it first (kubectl create namespace %s)", b.Namespace, b.Namespace)
		}
		compareBinding(r, subject, getErr != nil, liveRef, liveSubjects, b.RoleRef, b.Subjects, applied.Subjects, aerr, "kubectl apply --server-side -f "+FileRBAC)
	}

	// Bindings gatehouse rendered before that are no longer in the config.
	sel := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + LabelManagedByValue}
	var crbs rbacv1.ClusterRoleBindingList
	if err := cs.listBindings(ctx, "clusterrolebindings", &sel, &crbs); err != nil {
		return fmt.Errorf("cluster check: list ClusterRoleBindings: %w", err)
	}
	for _, b := range crbs.Items {
		if s := "ClusterRoleBinding " + termsafe.String(b.Name); !want[s] {
			r.add(StatusExtra, s, "carries %s=%s but is not in the config (%s); remove it: kubectl delete clusterrolebinding %s", LabelManagedBy, LabelManagedByValue, b.Annotations[AnnotationSource], b.Name)
		}
	}
	var rbs rbacv1.RoleBindingList
	if err := cs.listBindings(ctx, "rolebindings", &sel, &rbs); err != nil {
		return fmt.Errorf("cluster check: list RoleBindings: %w", err)
	}
	for _, b := range rbs.Items {
		if s := "RoleBinding " + termsafe.String(b.Namespace+"/"+b.Name); !want[s] {
			r.add(StatusExtra, s, "carries %s=%s but is not in the config (%s); remove it: kubectl -n %s delete rolebinding %s", LabelManagedBy, LabelManagedByValue, b.Annotations[AnnotationSource], b.Namespace, b.Name)
		}
	}
	return nil
}

func compareBinding(r *Report, subject string, missing bool, liveRef *rbacv1.RoleRef, liveSubjects []rbacv1.Subject,
	wantRef rbacv1.RoleRef, wantSubjects, appliedSubjects []rbacv1.Subject, applyErr error, fix string) {
	switch {
	case missing && applyErr != nil:
		r.add(StatusFailed, subject, "missing, and a dry-run apply fails: %v", applyErr)
	case missing:
		r.add(StatusMissing, subject, "would be created by: %s", fix)
	case liveRef != nil && *liveRef != wantRef:
		r.add(StatusDiffers, subject, "roleRef is %s %s, the config says %s %s; roleRef cannot change in place: delete the binding, then %s",
			liveRef.Kind, liveRef.Name, wantRef.Kind, wantRef.Name, fix)
	case applyErr != nil:
		r.add(StatusFailed, subject, "dry-run apply fails: %v", applyErr)
	case !sameSubjects(liveSubjects, appliedSubjects):
		r.add(StatusDiffers, subject, "subjects are %s; after %s they would be %s", subjectList(liveSubjects), fix, subjectList(appliedSubjects))
	case !sameSubjects(liveSubjects, wantSubjects):
		r.add(StatusDiffers, subject, "subjects are %s, the config says %s (another field manager owns some; apply with --force-conflicts)", subjectList(liveSubjects), subjectList(wantSubjects))
	default:
		r.add(StatusOK, subject, "%s %s for %s", wantRef.Kind, wantRef.Name, subjectList(wantSubjects))
	}
}

func sameSubjects(a, b []rbacv1.Subject) bool {
	key := func(s []rbacv1.Subject) []string {
		out := make([]string, 0, len(s))
		for _, x := range s {
			out = append(out, x.Kind+"/"+x.Namespace+"/"+x.Name)
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(key(a), key(b))
}

func subjectList(s []rbacv1.Subject) string {
	if len(s) == 0 {
		return "(none)"
	}
	parts := make([]string, 0, len(s))
	for _, x := range s {
		parts = append(parts, termsafe.Sprintf("%s %q", x.Kind, x.Name))
	}
	return strings.Join(parts, ", ")
}

// checkToken asks kube-apiserver who the token's bearer is.
// checkToken asks who the token's bearer is (SelfSubjectReview) at base:
// kube-apiserver, or gatehouse proxy in front of it.
func (c *Config) checkToken(ctx context.Context, base *rest.Config, token string, r *Report) {
	const subject = "token identity"
	cfg := rest.CopyConfig(base)
	cfg.BearerToken = token
	cs, err := newAPIClient(cfg)
	if err != nil {
		r.add(StatusFailed, subject, "%v", err)
		return
	}
	var review authenticationv1.SelfSubjectReview
	if err := cs.create(ctx, "selfsubjectreviews", &authenticationv1.SelfSubjectReview{}, &review); err != nil {
		if apierrors.IsUnauthorized(err) && c.Proxy != nil {
			r.add(StatusFailed, subject, "gatehouse proxy at %s rejects the token (Unauthorized): check that the proxy runs with this %s "+
				"(the token's iss must be exactly %s and its aud contain %s), that the token has not expired, and the proxy's log",
				c.Proxy.URL, FileAuthenticationConfig, c.Issuer.URL, strings.Join(c.Issuer.Audiences, " or "))
			return
		}
		if apierrors.IsUnauthorized(err) {
			r.add(StatusFailed, subject, "kube-apiserver rejects the token (Unauthorized). Check, in this order:\n"+
				"- kube-apiserver runs with %s (or the flags in %s) and was restarted after the change;\n"+
				"- the token's iss is exactly %s and its aud contains %s;\n"+
				"- the token has not expired (kubectl gatehouse get-token --force-refresh);\n"+
				"- kube-apiserver trusts the issuer's certificate (issuer.caFile) and can reach %s/.well-known/openid-configuration;\n"+
				"- the token has the claims %q and %q (request the scopes %s);\n"+
				"- kube-apiserver's log says why: look for \"Unable to authenticate the request\".",
				FileAuthenticationConfig, FileAPIServerFlags, c.Issuer.URL, strings.Join(c.Issuer.Audiences, " or "),
				c.Issuer.URL, c.Claims.Username.Claim, c.Claims.Groups.Claim, strings.Join(c.Issuer.ExtraScopes, ","))
			return
		}
		r.add(StatusFailed, subject, "SelfSubjectReview: %v", err)
		return
	}
	u := review.Status.UserInfo
	r.add(StatusInfo, subject, "username %q, groups %s", u.Username, termsafe.Join(u.Groups, ", "))
	if p := c.UsernamePrefix(); p != "" && !strings.HasPrefix(u.Username, p) {
		r.add(StatusDiffers, "username prefix", "the cluster calls the user %q, but the config prefixes usernames with %q: kube-apiserver runs with other OIDC settings than the rendered ones", u.Username, p)
	}
	bound := false
	for _, team := range sortedKeys(c.Teams) {
		g := c.GroupsPrefix() + team
		for _, have := range u.Groups {
			if have == g {
				bound = true
				r.add(StatusOK, "team "+team, "the token's group %q matches the binding for %s", g, team)
			}
		}
	}
	if !bound && len(c.Teams) > 0 {
		var oidcGroups []string
		for _, g := range u.Groups {
			if !strings.HasPrefix(g, "system:") {
				oidcGroups = append(oidcGroups, g)
			}
		}
		r.add(StatusDiffers, "teams", "none of the token's groups (%s) is a team in the config; the user gets no rights from it (expected groups look like %q)",
			termsafe.Join(oidcGroups, ", "), c.GroupsPrefix()+sortedKeys(c.Teams)[0])
	}
}

// probeToken is a JWT with the configured issuer and audience and a
// signature nobody made: kube-apiserver never accepts it, but how it
// refuses it (TokenReview) says whether it has an authenticator for the
// issuer and whether that authenticator has fetched the issuer's keys.
func (c *Config) probeToken(now time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "gatehouse-cluster-check"})
	payload, _ := json.Marshal(map[string]any{
		"iss": c.Issuer.URL, "aud": c.Issuer.Audiences[0], "sub": "gatehouse-cluster-check",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	return enc(header) + "." + enc(payload) + "." + enc([]byte("gatehouse cluster check: not a signature"))
}

// checkIssuer asks kube-apiserver (TokenReview, as the admin) about a
// probe token for the configured issuer.
func (c *Config) checkIssuer(ctx context.Context, cs *apiClient, r *Report) {
	subject := "issuer " + c.Issuer.URL
	var review authenticationv1.TokenReview
	err := cs.create(ctx, "tokenreviews", &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: c.probeToken(time.Now())},
	}, &review)
	if err != nil {
		r.add(StatusFailed, subject, "TokenReview: %v", err)
		return
	}
	msg := review.Status.Error
	switch {
	case review.Status.Authenticated:
		r.add(StatusFailed, subject, "kube-apiserver accepted a token with a made-up signature as %q: check its authenticators", review.Status.User.Username)
	case strings.Contains(msg, "verify signature") || strings.Contains(msg, "verify id token signature"):
		r.add(StatusOK, subject, "kube-apiserver has an authenticator for this issuer and has fetched its keys")
	case strings.Contains(msg, "not initialized"):
		r.add(StatusDiffers, subject, "kube-apiserver has an authenticator for this issuer but could not fetch its discovery document and keys yet: "+
			"check that the control-plane nodes can reach %s/.well-known/openid-configuration and trust its certificate (issuer.caFile); kube-apiserver says: %s", c.Issuer.URL, msg)
	case strings.Contains(msg, "oidc") || strings.Contains(msg, "jwt"):
		r.add(StatusDiffers, subject, "kube-apiserver has an authenticator for this issuer but refused the probe for another reason: %s", msg)
	default:
		r.add(StatusDiffers, subject, "kube-apiserver has no authenticator for this issuer: it runs without %s (or the %s flags), was not restarted after the change, or is configured for another issuer URL (the iss claim must match exactly); kube-apiserver says: %s",
			FileAuthenticationConfig, FileAPIServerFlags, msg)
	}
}
