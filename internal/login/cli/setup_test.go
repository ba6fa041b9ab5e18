package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSetup(t *testing.T) {
	r := newRig(t, time.Hour)
	base := []string{"kubectl-gatehouse", "setup", "--oidc-issuer-url=" + r.srv.URL, "--oidc-client-id=" + r.srv.ClientID,
		"--oidc-client-secret=" + r.srv.ClientSecret, "--certificate-authority=" + r.srv.CAFile, "--listen-address=127.0.0.1:0"}
	authn := filepath.Join(t.TempDir(), "authn.yaml")
	if err := os.WriteFile(authn, []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: `+r.srv.URL+`
    audiences: [kubernetes]
  claimMappings:
    username:
      claim: email
      prefix: "gh:"
    groups:
      claim: groups
      prefix: "gh:"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"kube-apiserver defaults: issuer# and sub", []string{"--oidc-extra-scope=email"},
			[]string{`"sub":`, "username: " + r.srv.URL + "#", "kubectl create clusterrolebinding", "--user='" + r.srv.URL + "#"}, nil},
		{"email claim: no prefix", []string{"--oidc-extra-scope=email", "--apiserver-oidc-username-claim=email"},
			[]string{"username: " + r.srv.Username, "--user=" + r.srv.Username, "kubectl create rolebinding", "--namespace=default"}, nil},
		{"seed article's flags", []string{"--oidc-extra-scope=groups,profile", "--apiserver-oidc-username-claim=name", "--apiserver-oidc-username-prefix=oidc:"},
			[]string{"username: oidc:admin", "--exec-arg=--oidc-extra-scope=groups", "--exec-arg=--oidc-extra-scope=profile"}, []string{"--exec-arg=--apiserver"}},
		{"missing claim is a rejection", []string{"--apiserver-oidc-username-claim=preferred_username_x"},
			[]string{"REJECT", "not present"}, []string{"clusterrolebinding"}},
		{"authentication config", []string{"--oidc-extra-scope=email", "--authentication-config=" + authn},
			[]string{"username: gh:" + r.srv.Username, `claim "groups"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.run(context.Background(), "", append(append([]string{}, base...), tt.args...))
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, res.stdout)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(res.stdout, n) {
					t.Errorf("output has %q:\n%s", n, res.stdout)
				}
			}
		})
	}
}

// whoami goes through kubectl; here a stand-in kubectl answers like the API
// server and records what it was asked.
func TestWhoami(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	kubectl := filepath.Join(dir, "kubectl")
	script := `#!/bin/sh
echo "$@" >> ` + log + `
body=$(cat)
case "$*" in
*selfsubjectreviews*) echo '{"kind":"SelfSubjectReview","status":{"userInfo":{"username":"oidc:alice","groups":["oidc:acme:infra","system:authenticated"]}}}' ;;
*selfsubjectrulesreviews*) case "$body" in *'"namespace":"team-a"'*) echo '{"status":{"resourceRules":[{"verbs":["get","list"],"apiGroups":[""],"resources":["pods"]}],"nonResourceRules":[{"verbs":["get"],"nonResourceURLs":["/healthz"]}],"incomplete":false}}' ;; *) exit 3 ;; esac ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(kubectl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, clock: newClock(), br: &httpBrowser{t: t}}
	res := r.run(context.Background(), "", []string{"kubectl-gatehouse", "whoami", "--kubectl=" + kubectl, "--context=prod", "--can-i", "-n", "team-a"})
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, w := range []string{"oidc:alice", "oidc:acme:infra, system:authenticated", "pods", "[get list]", "/healthz"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, res.stdout)
		}
	}
	calls, _ := os.ReadFile(log)
	if !strings.Contains(string(calls), "--context=prod create --raw /apis/authentication.k8s.io/v1/selfsubjectreviews -f -") {
		t.Errorf("kubectl calls: %s", calls)
	}
	// A failing kubectl is reported, not hidden.
	res = r.run(context.Background(), "", []string{"kubectl-gatehouse", "whoami", "--kubectl=" + kubectl, "--can-i", "-n", "other"})
	if res.code == 0 || !strings.Contains(res.stderr, "SelfSubjectRulesReview") {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
}
