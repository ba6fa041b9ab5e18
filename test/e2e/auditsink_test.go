package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
	"github.com/gatehouse-dev/gatehouse/internal/tlsutil"
	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// TestAuditSinkProcess runs the audit sink as the split layout does: the
// `gatehouse audit sink` binary on its own, with a byte budget, taking
// kube-apiserver's real audit webhook over TLS (kube-apiserver sends its
// token only over https), and the trail read back with `gatehouse audit
// query`. No issuer runs: the sink needs none.
func TestAuditSinkProcess(t *testing.T) {
	dir := t.TempDir()
	bundle, err := tlsutil.NewBundle([]string{"127.0.0.1"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsPaths, err := bundle.WriteDir(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	web, telemetry := freeAddr(t), freeAddr(t)
	configFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configFile, []byte(fmt.Sprintf(`issuer: https://%s/dex
storage:
  type: sqlite3
  config: {file: %s}
web:
  https: %s
  tlsCert: %s
  tlsKey: %s
telemetry:
  http: %s
audit:
  enabled: true
  storage: {type: sqlite3, config: {file: %s}}
  webhook:
    bearerTokens: [%s]
    maxInFlightBytes: 67108864
    separate: true
`, web, filepath.Join(dir, "gatehouse.db"), web, tlsPaths.ServerCert, tlsPaths.ServerKey, telemetry,
		filepath.Join(dir, "audit.db"), sinkToken)), 0o600); err != nil {
		t.Fatal(err)
	}

	runGatehouse(t, filepath.Join(dir, "sink.log"), telemetry, "audit", "sink", "--config", configFile)

	// The webhook goes to the sink's host, as cluster render derives it
	// from the issuer URL.
	c := kube.Start(t, kube.Options{Binaries: bins, Config: seedConfig("https://"+web+"/dex", bundle.CACert), Mode: cluster.ModeStructured})
	if got := c.Config.Audit.Webhook.URL; got != "https://"+web+"/audit/webhook" {
		t.Fatalf("webhook URL %q", got)
	}
	c.AdminKubectl(t, "create", "namespace", "payments")
	c.AdminKubectl(t, "-n", "payments", "create", "configmap", "settings", "--from-literal=a=b")

	waitAuditEvent(t, configFile, `"gatehouse-e2e-admin"`, "--namespace", "payments", "--resource", "configmaps", "--name", "settings", "--verb", "create")
	resp, err := http.Get("http://" + telemetry + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gatehouse_audit_events_stored_total", "gatehouse_audit_inflight_bytes 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("the sink's metrics lack %q", want)
		}
	}
	if strings.Contains(string(metrics), `gatehouse_audit_events_rejected_total{reason="unauthenticated"}`) {
		t.Error("kube-apiserver's batches arrived without its token")
	}
}
