package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kubeloginFlags are the flags kubelogin v1.36.3 completes for each
// command (`kubelogin __complete CMD --`, its whole flag set; klog's
// are on every command).
var kubeloginFlags = func() map[string][]string {
	klog := strings.Fields("--add_dir_header --alsologtostderr --alsologtostderrthreshold --legacy_stderr_threshold_behavior --log_backtrace_at --log_dir --log_file --log_file_max_size --logtostderr --one_output --skip_headers --skip_log_headers --stderrthreshold --v --vmodule")
	tls := strings.Fields("--certificate-authority --certificate-authority-data --insecure-skip-tls-verify --tls-renegotiation-once --tls-renegotiation-freely")
	auth := strings.Fields("--grant-type --listen-address --skip-open-browser --browser-command --authentication-timeout-sec --local-server-cert --local-server-key --open-url-after-authentication --oidc-auth-request-extra-params --username --password")
	provider := strings.Fields("--oidc-issuer-url --oidc-client-id --oidc-client-secret --oidc-redirect-url --oidc-extra-scope --oidc-use-access-token --oidc-request-header")
	join := func(parts ...[]string) []string { return slices.Concat(append(parts, []string{"--help"})...) }
	return map[string][]string{
		"":          join(strings.Fields("--kubeconfig --context --user"), tls, auth, klog, []string{"--version"}),
		"get-token": join(klog, provider, strings.Fields("--force-refresh --token-cache-dir --token-cache-storage"), tls, []string{"--oidc-pkce-method"}, auth),
		"setup":     join(klog, provider, tls, []string{"--oidc-pkce-method"}, auth),
		"clean":     join(klog, []string{"--token-cache-dir"}),
		"version":   join(klog),
	}
}()

// completed runs NAME __complete [CMD] -- and returns the flags offered.
func completed(t *testing.T, run func(args ...string) result, cmd string) []string {
	t.Helper()
	args := []string{"__complete"}
	if cmd != "" {
		args = append(args, cmd)
	}
	r := run(append(args, "--")...)
	if r.code != 0 {
		t.Fatalf("__complete %s: exit %d: %s", cmd, r.code, r.stderr)
	}
	var flags []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f, _, _ := strings.Cut(line, "\t"); strings.HasPrefix(f, "--") {
			flags = append(flags, f)
		}
	}
	return flags
}

// TestKubeloginCompletion: `completion SHELL` and the completions behind
// it offer every flag kubelogin offers, under the name the plugin runs as
// (and as kubectl_complete-oidc_login, which kubectl 1.26+ runs to
// complete `kubectl oidc-login ...`).
func TestKubeloginCompletion(t *testing.T) {
	bin := oneFile(t, ".")
	kubelogin := kubeloginBin(t)
	env := isolated(t)
	gate := func(args ...string) result { _, r := runAs(t, bin, "kubectl-oidc_login", "", env, args...); return r }
	for cmd, want := range kubeloginFlags {
		got := completed(t, gate, cmd)
		for _, f := range want {
			if !slices.Contains(got, f) {
				t.Errorf("%q: %s is not completed", cmd, f)
			}
		}
		if kubelogin != "" {
			theirs := completed(t, func(args ...string) result { return runKubelogin(t, kubelogin, env, args...) }, cmd)
			slices.Sort(theirs)
			mine := slices.Sorted(slices.Values(want))
			if !slices.Equal(theirs, mine) {
				t.Errorf("%q: kubelogin completes %v, the test expects %v", cmd, theirs, mine)
			}
		}
	}
	_, r := runAs(t, bin, "kubectl_complete-oidc_login", "", env, "get-token", "--oidc-issuer")
	if r.code != 0 || !strings.Contains(r.stdout, "--oidc-issuer-url\t") {
		t.Errorf("kubectl_complete-oidc_login: exit %d, %q", r.code, r.stdout)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := gate("completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "kubectl-oidc_login") {
			t.Errorf("completion %s: exit %d, %q", shell, r.code, r.stderr)
		}
		if kubelogin != "" {
			if k := runKubelogin(t, kubelogin, env, "completion", shell); k.code != r.code {
				t.Errorf("completion %s: exit %d, kubelogin's %d", shell, r.code, k.code)
			}
		}
	}
	// The bash script loads and completes through the plugin.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "kubectl-oidc_login")); err != nil {
		t.Fatal(err)
	}
	// bash-completion's helper, or a stand-in where it is not installed.
	script := `if [ -f /usr/share/bash-completion/bash_completion ]; then source /usr/share/bash-completion/bash_completion
else _get_comp_words_by_ref() { cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }; fi
source <(kubectl-oidc_login completion bash)
COMP_WORDS=(kubectl-oidc_login get-token --token-cache-st); COMP_CWORD=2; COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
__start_kubectl-oidc_login
printf '%s\n' "${COMPREPLY[@]}"`
	c := exec.Command(bash, "-c", script)
	c.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--token-cache-storage") {
		t.Errorf("bash completion: %v\n%s", err, out)
	}
}
