package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/syncbuf"
)

// printedCommand returns the shell command of the printed instructions
// that starts with prefix (two spaces of indent, continuation lines ending
// in a backslash), as a user would copy it.
func printedCommand(t *testing.T, out, prefix string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "  "+prefix) {
			continue
		}
		cmd := []string{l}
		for strings.HasSuffix(lines[i], `\`) && i+1 < len(lines) {
			i++
			cmd = append(cmd, lines[i])
		}
		return strings.Join(cmd, "\n")
	}
	t.Fatalf("no %q command in:\n%s", prefix, out)
	return ""
}

// printedFlags returns the --oidc-* flags printed for kube-apiserver.
func printedFlags(out string) map[string]string {
	flags := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  --(oidc-[a-z-]+)=(\S+)$`).FindAllStringSubmatch(out, -1) {
		flags[m[1]] = m[2]
	}
	return flags
}

// fakeBrowser is an xdg-open that logs in as a person would in a
// browser, with curl: it follows the login URL to the password page,
// posts the form with its hidden fields, and follows the redirects to the
// plugin's loopback server.
const fakeBrowser = `#!/bin/sh
set -e
jar=$(mktemp)
page=$(curl -sS -k -c "$jar" -b "$jar" -L "$1")
field() { printf '%s' "$page" | sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p"; }
action=$(printf '%s' "$page" | sed -n 's/.*<form method="post" action="\([^"]*\)".*/\1/p')
origin=$(printf '%s' "$1" | sed 's#^\(https://[^/]*\).*#\1#')
curl -sS -k -c "$jar" -b "$jar" -L -o /dev/null \
  --data-urlencode "req=$(field req)" --data-urlencode "hmac=$(field hmac)" \
  --data-urlencode "login=$LOGIN" --data-urlencode "password=$PASSWORD" "$origin$action"
`

// TestDevStory runs what `gatehouse serve --dev` prints, pasted as
// printed: the password-grant curl command and the plugin's setup (with a
// browser that logs in). The username the printed kube-apiserver flags
// derive from the token, the one setup's simulation reports, and the one
// `gatehouse cluster render`'s defaults produce are the same.
func TestDevStory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kubectl-gatehouse")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_CURL") != "" {
			t.Fatal("GATEHOUSE_REQUIRE_CURL is set but curl is not installed: apt-get install curl")
		}
		t.Skip("needs curl (apt-get install curl)")
	}
	dir := t.TempDir()
	d, err := prepareDevAt(filepath.Join(dir, "gatehouse-data"), freeAddr(t), freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	var printed syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncbuf.Buffer{}
	go func() {
		done <- serveWith(ctx, d.config, runOptions{LogOut: logs, Ready: func() { d.printInstructions(&printed) }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitReady(t, d.telemetry, done)
	out := printed.String()

	// The flags kube-apiserver gets, and the defaults of cluster render.
	flags := printedFlags(out)
	def := &cluster.Config{Issuer: cluster.Issuer{URL: "https://login.example.com/dex"}, Audit: cluster.Audit{Webhook: cluster.AuditWebhook{Disabled: true}}}
	if err := def.Complete(); err != nil {
		t.Fatal(err)
	}
	if flags["oidc-username-claim"] != def.Claims.Username.Claim || flags["oidc-username-prefix"] != def.UsernamePrefix() || flags["oidc-groups-prefix"] != def.GroupsPrefix() {
		t.Fatalf("--dev prints %v; cluster render's defaults are claim %s prefix %s", flags, def.Claims.Username.Claim, def.UsernamePrefix())
	}

	// The curl command, as printed.
	cmd := exec.Command("sh", "-c", printedCommand(t, out, "curl "))
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("printed curl: %v\n%s", err, b)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("printed curl answered %s", b)
	}
	claims := jwtClaims(t, tok.IDToken)
	value, _ := claims[flags["oidc-username-claim"]].(string)
	if value == "" {
		t.Fatalf("the token has no %s claim for the printed flags: %v", flags["oidc-username-claim"], claims)
	}
	username := flags["oidc-username-prefix"] + value

	// The setup command, as printed: kubectl runs kubectl-gatehouse.
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-gatehouse"), "../kubectl-gatehouse")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kubectl-gatehouse: %v\n%s", err, b)
	}
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(fakeBrowser), 0o755); err != nil {
		t.Fatal(err)
	}
	setup := printedCommand(t, out, "kubectl gatehouse setup ")
	setupCmd := exec.Command("sh", "-c", strings.Replace(setup, "kubectl gatehouse", "kubectl-gatehouse", 1))
	// A desktop session (DISPLAY), whose xdg-open is the fake browser.
	setupCmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+filepath.Join(dir, "home"),
		"DISPLAY=:99", "LOGIN="+devUserEmail, "PASSWORD="+d.password)
	var setupOut syncbuf.Buffer
	setupCmd.Stdout, setupCmd.Stderr = &setupOut, &setupOut
	errc := make(chan error, 1)
	if err := setupCmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { errc <- setupCmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("printed setup: %v\n%s", err, setupOut.String())
		}
	case <-time.After(2 * time.Minute):
		_ = setupCmd.Process.Kill()
		t.Fatalf("printed setup did not finish:\n%s", setupOut.String())
	}
	so := setupOut.String()
	if !strings.Contains(so, "username: "+username+"\n") {
		t.Fatalf("setup's simulation does not name the user %s that the printed flags give:\n%s", username, so)
	}
	if !strings.Contains(so, "--user="+username) {
		t.Errorf("setup suggests a binding for another user than %s:\n%s", username, so)
	}
	if username != "oidc:admin" {
		t.Errorf("the dev user is %s, want oidc:admin", username)
	}
}
