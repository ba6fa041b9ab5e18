package cluster

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels on every rendered binding, so `gatehouse cluster check` can tell
// gatehouse's bindings from others and find stale ones.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelManagedByValue = "gatehouse"
	// AnnotationSource names the team or user a binding was rendered for.
	AnnotationSource = "gatehouse.dev/source"
)

// RBAC holds the rendered bindings.
type RBAC struct {
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	RoleBindings        []rbacv1.RoleBinding
}

// Subject is a Kubernetes RBAC subject for a team (Group) or user (User),
// named exactly as the authentication config maps it: prefix + name.
func (c *Config) Subject(kind, name string) rbacv1.Subject {
	prefix := c.GroupsPrefix()
	if kind == rbacv1.UserKind {
		prefix = c.UsernamePrefix()
	}
	return rbacv1.Subject{Kind: kind, APIGroup: rbacv1.GroupName, Name: prefix + name}
}

// bindingName is a readable, deterministic object name.
func bindingName(kind, name, role string) string {
	n := "gatehouse:" + strings.ToLower(kind) + ":" + name + ":" + role
	n = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == ':', r == '-', r == '.', r == '_':
			return r
		}
		return '-'
	}, n)
	if len(n) > 253 {
		n = n[:253]
	}
	return n
}

// RBACObjects builds a ClusterRoleBinding for each cluster-wide team or
// user and a RoleBinding (to the ClusterRole) for each namespace.
func (c *Config) RBACObjects() RBAC {
	var out RBAC
	add := func(kind string, m map[string]Binding) {
		for _, name := range sortedKeys(m) {
			b := m[name]
			meta := metav1.ObjectMeta{
				Name:        bindingName(kind, name, b.Role),
				Labels:      map[string]string{LabelManagedBy: LabelManagedByValue},
				Annotations: map[string]string{AnnotationSource: strings.ToLower(kind) + " " + name},
			}
			ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.Role}
			subjects := []rbacv1.Subject{c.Subject(kind, name)}
			namespaces := b.AllNamespaces()
			if len(namespaces) == 0 {
				crb := rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}
				crb.APIVersion = rbacv1.SchemeGroupVersion.String()
				crb.Kind = "ClusterRoleBinding"
				out.ClusterRoleBindings = append(out.ClusterRoleBindings, crb)
				continue
			}
			for _, ns := range namespaces {
				m := *meta.DeepCopy()
				m.Namespace = ns
				rb := rbacv1.RoleBinding{ObjectMeta: m, RoleRef: ref, Subjects: subjects}
				rb.APIVersion = rbacv1.SchemeGroupVersion.String()
				rb.Kind = "RoleBinding"
				out.RoleBindings = append(out.RoleBindings, rb)
			}
		}
	}
	add(rbacv1.GroupKind, c.Teams)
	add(rbacv1.UserKind, c.Users)
	return out
}
