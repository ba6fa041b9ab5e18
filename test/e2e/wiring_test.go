package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

const sinkToken = "e2e-audit-sink-token-0123456789abcdef"

// seedConfig is the seed article's setup pointed at a test issuer URL;
// the audit sink lives on the issuer's host, as in production.
func seedConfig(issuerURL string, issuerCA []byte) *cluster.Config {
	c, err := cluster.Parse([]byte(`
name: e2e
issuer:
  clientID: kubernetes
claims:
  username: {claim: preferred_username, prefix: "oidc:"}
  groups: {claim: groups, prefix: "oidc:"}
teams:
  exampleorg:infra-team: cluster-admin
  exampleorg:web: {role: edit, namespace: web}
audit:
  webhook:
    batchMaxWait: 1s
`))
	if err != nil {
		panic(err)
	}
	c.Issuer.URL = issuerURL
	c.Issuer.CAData = string(issuerCA)
	c.Audit.Webhook.BearerToken = sinkToken
	return c
}

type whoami struct {
	Status struct {
		UserInfo struct {
			Username string   `json:"username"`
			Groups   []string `json:"groups"`
		} `json:"userInfo"`
	} `json:"status"`
}

// TestRenderedWiring needs no issuer: kube-apiserver starts with exactly
// the rendered files (both authentication forms), the rendered RBAC
// passes a server-side dry-run apply, the admin is who it should be, the
// audit policy decides what reaches the log file, and the webhook
// delivers the same events to gatehouse's real audit sink.
func TestRenderedWiring(t *testing.T) {
	for _, mode := range []string{cluster.ModeStructured, cluster.ModeFlags} {
		t.Run(mode, func(t *testing.T) {
			sink := kube.StartSink(t, sinkToken)
			cfg := seedConfig(sink.URL+"/dex", sink.CAPEM)
			start := time.Now()
			c := kube.Start(t, kube.Options{Binaries: bins, Config: cfg, Mode: mode})
			t.Logf("control plane ready in %s", time.Since(start).Round(time.Millisecond))

			// `gatehouse cluster render` writes exactly the files this
			// control plane runs with.
			configFile := filepath.Join(c.Dir, "cluster.yaml")
			writeClusterYAML(t, configFile, c.Config)
			cliDir := filepath.Join(c.Dir, "cli-rendered")
			if b, err := exec.Command(goBinary(t, "gatehouse"), "cluster", "render", "--config", configFile, "--out", cliDir).CombinedOutput(); err != nil {
				t.Fatalf("gatehouse cluster render: %v\n%s", err, b)
			}
			for name, want := range c.Files {
				got, err := os.ReadFile(filepath.Join(cliDir, name))
				if err != nil || string(got) != string(want) {
					t.Errorf("gatehouse cluster render wrote a different %s (%v)", name, err)
				}
			}

			out := c.AdminKubectl(t, "auth", "whoami", "-o", "json")
			var w whoami
			if err := json.Unmarshal([]byte(out), &w); err != nil {
				t.Fatalf("whoami: %v\n%s", err, out)
			}
			if w.Status.UserInfo.Username != "gatehouse-e2e-admin" || !contains(w.Status.UserInfo.Groups, "system:masters") {
				t.Fatalf("admin is %+v", w.Status.UserInfo)
			}

			// No issuer answers at this URL: cluster check says so.
			restCfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			report, err := c.Config.Check(context.Background(), restCfg, cluster.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if f := finding(report, "issuer "+cfg.Issuer.URL); f.Status != cluster.StatusDiffers || !strings.Contains(f.Detail, "could not fetch its discovery document") {
				t.Errorf("cluster check with an unreachable issuer: %+v", f)
			}

			c.AdminKubectl(t, "create", "namespace", "web")
			rbacFile := filepath.Join(c.Config.NodeDir, cluster.FileRBAC)
			out = c.AdminKubectl(t, "apply", "--server-side", "--dry-run=server", "--field-manager=gatehouse", "-f", rbacFile)
			for _, want := range []string{
				"clusterrolebinding.rbac.authorization.k8s.io/gatehouse:group:exampleorg:infra-team:cluster-admin serverside-applied (server dry run)",
				"rolebinding.rbac.authorization.k8s.io/gatehouse:group:exampleorg:web:edit serverside-applied (server dry run)",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("dry-run apply output lacks %q:\n%s", want, out)
				}
			}
			// A dry run changes nothing.
			if _, _, err := c.Kubectl(context.Background(), c.AdminKubeconfig, nil, "get", "clusterrolebinding", "gatehouse:group:exampleorg:infra-team:cluster-admin"); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Errorf("dry run created the binding (err %v)", err)
			}

			// A secret's value must never reach the audit trail; an RBAC
			// change must arrive with its full body.
			const secretValue = "e2e-secret-value-must-not-be-logged"
			c.AdminKubectl(t, "-n", "web", "create", "secret", "generic", "s1", "--from-literal=k="+secretValue)
			c.AdminKubectl(t, "create", "clusterrolebinding", "e2e-probe", "--clusterrole=view", "--group=e2e-probe-group")

			var crbEvent auditv1.Event
			if err := kube.WaitFor(30*time.Second, func() error {
				events, err := c.AuditEvents()
				if err != nil {
					return err
				}
				var secretSeen bool
				crbEvent = auditv1.Event{}
				for _, ev := range events {
					if ev.ObjectRef != nil && ev.ObjectRef.Resource == "secrets" && ev.Verb == "create" && ev.ObjectRef.Name == "s1" {
						secretSeen = true
						if ev.Level != auditv1.LevelMetadata || ev.RequestObject != nil || ev.ResponseObject != nil {
							return fmt.Errorf("secret create logged at %s with bodies", ev.Level)
						}
					}
					if ev.ObjectRef != nil && ev.ObjectRef.Resource == "clusterrolebindings" && ev.Verb == "create" && ev.ObjectRef.Name == "e2e-probe" {
						crbEvent = ev
					}
					if ev.Stage == auditv1.StageRequestReceived {
						return fmt.Errorf("RequestReceived stage logged (omitStages ignored)")
					}
					if strings.HasPrefix(ev.RequestURI, "/readyz") || strings.HasPrefix(ev.RequestURI, "/healthz") {
						return fmt.Errorf("health check logged: %s", ev.RequestURI)
					}
				}
				if !secretSeen || crbEvent.AuditID == "" {
					return fmt.Errorf("secret event seen=%v, clusterrolebinding event seen=%v among %d events", secretSeen, crbEvent.AuditID != "", len(events))
				}
				return nil
			}); err != nil {
				t.Fatalf("audit log: %v", err)
			}
			if crbEvent.Level != auditv1.LevelRequestResponse || crbEvent.RequestObject == nil || crbEvent.ResponseObject == nil {
				t.Errorf("clusterrolebinding create logged at %s (request body %v, response body %v)", crbEvent.Level, crbEvent.RequestObject != nil, crbEvent.ResponseObject != nil)
			}
			if crbEvent.User.Username != "gatehouse-e2e-admin" {
				t.Errorf("event user %q", crbEvent.User.Username)
			}
			raw, _ := os.ReadFile(c.AuditLog)
			if strings.Contains(string(raw), secretValue) || strings.Contains(string(raw), "ZTJlLXNlY3JldC12YWx1ZS1tdXN0LW5vdC1iZS1sb2dnZWQ=") {
				t.Error("the secret's value is in the audit log")
			}

			// The webhook delivers the same event to gatehouse's sink.
			if err := kube.WaitFor(30*time.Second, func() error {
				for _, ev := range sink.Events() {
					if ev.AuditID == string(crbEvent.AuditID) && ev.Stage == string(auditv1.StageResponseComplete) {
						if ev.User != "gatehouse-e2e-admin" || ev.Level != string(auditv1.LevelRequestResponse) {
							return fmt.Errorf("sink got user %q level %s", ev.User, ev.Level)
						}
						return nil
					}
				}
				return fmt.Errorf("event %s not at the sink (%d events there)", crbEvent.AuditID, len(sink.Events()))
			}); err != nil {
				t.Fatalf("audit webhook: %v", err)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
