package kube

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// KubeconfigAt writes a kubeconfig for server (this cluster's
// kube-apiserver, or gatehouse-proxy in front of it) whose CA is caPEM and whose user block (indented by four spaces) is user.
func (c *Cluster) KubeconfigAt(name, server string, caPEM []byte, user string) (string, error) {
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: user
  user:
%scontexts:
- name: e2e
  context: {cluster: e2e, user: user}
current-context: e2e
`, server, base64.StdEncoding.EncodeToString(caPEM), user)
	p := filepath.Join(c.Dir, name)
	return p, os.WriteFile(p, []byte(data), 0o600)
}

// FreePorts returns n different free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) { return freePorts(n) }

// Run starts a program beside the control plane (its output in
// Dir/<name>.log) and stops it when t ends, as etcd and kube-apiserver
// are; it returns the log file's path.
func (c *Cluster) Run(t testing.TB, name, bin string, args ...string) (string, error) {
	logFile := filepath.Join(c.Dir, name+".log")
	return logFile, c.run(t, name, bin, args, logFile)
}

// Tail returns the last n lines of a file (a program's log).
func Tail(file string, n int) string { return tail(file, n) }
