package kubeconfig

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdlatest "k8s.io/client-go/tools/clientcmd/api/latest"
	"sigs.k8s.io/yaml"
)

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Every value reads back, with kubectl's YAML reader (sigs.k8s.io/yaml,
// YAML 1.1 rules), as the JSON it was written from.
func TestWriteYAMLReadsBack(t *testing.T) {
	tricky := []string{"", "true", "True", "false", "yes", "No", "on", "OFF", "y", "n", "null", "~", "007", "1.5", "1e3", "0x1F", "-1",
		"+1", ".inf", ".5", "-x", "- x", "-", "--flag=x", "-.5", "-.inf", "---", "?x", "? x", ":x", "-\tx", "a: b", "a:b", "key:", ":", "#x", "x #y", "x#y", "é", "line\nbreak", "tab\there", "  lead",
		"trail ", "http://127.0.0.1:8000/cb?x=1&y=2", "LS0tLS1CRUdJTi==", "ab+/cd==", "@at", "`tick", "%p", "*star", "&amp",
		"!bang", "|", ">", "'q", `"dq`, "=", "<<", "[a]", "{a}", "a,b", "?", "\\back", "\x7f", "\u0085", "\x01", "1:20", "2001-01-01", "oidc:alice"}
	doc := map[string]any{"list": []any{}, "map": map[string]any{}, "nums": []any{json.Number("3"), json.Number("-1.5"), true, false, nil}}
	var items []any
	for i, s := range tricky {
		items = append(items, map[string]any{"name": s, "value": map[string]any{s + "k": s}})
		doc[s+"-"+string(rune('a'+i%26))] = s
	}
	doc["items"] = items
	in, _ := json.Marshal(doc)
	var out bytes.Buffer
	writeYAML(&out, decodeJSON(t, string(in)), 0)
	back, err := yaml.YAMLToJSON(out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(decodeJSON(t, string(back)), decodeJSON(t, string(in))) {
		t.Errorf("read back differs:\nwritten:\n%s\nback: %s\nin:   %s", out.String(), back, in)
	}
}

// A kubeconfig is written as clientcmd (kubelogin, kubectl) writes it.
func TestWriteYAMLLikeClientcmd(t *testing.T) {
	src := `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    insecure-skip-tls-verify: false
    tls-server-name: "007"
contexts:
- name: prod
  context: {cluster: prod, user: oidc, namespace: web}
current-context: prod
users:
- name: oidc
  user:
    auth-provider:
      name: oidc
      config:
        idp-issuer-url: https://login.example.com/dex
        client-id: kubernetes
        extra-scopes: email,groups
        id-token: eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubectl
      args: [oidc-login, get-token, --oidc-issuer-url=https://login.example.com/dex]
      env:
      - name: A
        value: "true"
      provideClusterInfo: true
      interactiveMode: IfAvailable
`
	cfg, err := clientcmd.Load([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	// What kubectl config view --raw -o json prints.
	v1, err := clientcmdlatest.Scheme.ConvertToVersion(cfg, clientcmdlatest.ExternalVersion)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeYAML(&got, decodeJSON(t, string(js)), 0)
	if got.String() != string(want) {
		t.Errorf("written:\n%s\nclientcmd writes:\n%s", got.String(), want)
	}
}
