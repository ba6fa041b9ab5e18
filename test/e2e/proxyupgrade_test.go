package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/gatehouse-dev/gatehouse/test/e2e/internal/kube"
)

// hostIP is a non-loopback IPv4 address of this machine: kube-apiserver
// refuses to proxy to loopback addresses.
func hostIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// startEchoBackend serves /ws (WebSocket: each message back, prefixed
// "echo: ") and /spdy (SPDY/3.1: each stream's bytes back) on ip.
func startEchoBackend(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/spdy", func(w http.ResponseWriter, r *http.Request) {
		conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, replySent <-chan struct{}) error {
			go func() {
				<-replySent
				_, _ = io.Copy(s, s)
			}()
			return nil
		})
		if conn == nil {
			return
		}
		<-conn.CloseChan()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// proxyUpgrades opens a WebSocket and a SPDY/3.1 connection through
// gatehouse-proxy and kube-apiserver's service proxy subresource to an
// echo server, as kubectl exec/attach/port-forward/cp open theirs to a
// kubelet (there is no kubelet here): bytes go both ways through the
// proxy's HTTP/1.1 upgrade path, authenticated as the person (the proxy
// subresource needs RBAC: octocat is cluster-admin).
func proxyUpgrades(t *testing.T, c *kube.Cluster, p *runningProxy, rec *recorder, token string) {
	ip := hostIP()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address for kube-apiserver to proxy to")
	}
	port := startEchoBackend(t, ip)
	// kube-apiserver proxies only to endpoints that are a pod's IP: a
	// pod (never scheduled: there is no node) whose status names ours.
	c.AdminKubectl(t, "apply", "-f", writeFile(t, filepath.Join(c.Dir, "echo.yaml"), fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: web}
---
apiVersion: v1
kind: Pod
metadata: {name: echo, namespace: web}
spec:
  automountServiceAccountToken: false
  containers: [{name: echo, image: echo.invalid/none}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: web}
spec:
  ports: [{name: http, port: 80, targetPort: %[2]d}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: echo, namespace: web}
subsets:
- addresses: [{ip: %[1]s}]
  ports: [{name: http, port: %[2]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: web, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
endpoints: [{addresses: [%[1]s], targetRef: {kind: Pod, namespace: web, name: echo}}]
ports: [{name: http, port: %[2]d, protocol: TCP}]
`, ip, port)))
	c.AdminKubectl(t, "-n", "web", "patch", "pod", "echo", "--subresource=status", "--type=merge",
		"-p", fmt.Sprintf(`{"status":{"podIP":%[1]q,"podIPs":[{"ip":%[1]q}]}}`, ip))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	tlsConfig := &tls.Config{RootCAs: pool}
	base := strings.TrimPrefix(p.URL, "https://") + "/api/v1/namespaces/web/services/echo:http/proxy"
	auth := http.Header{"Authorization": {"Bearer " + token}}

	t.Run("websocket", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: tlsConfig, HandshakeTimeout: 30 * time.Second}
		var conn *websocket.Conn
		var resp *http.Response
		// kube-apiserver sees the EndpointSlice through an informer.
		err := kube.WaitFor(30*time.Second, func() error {
			var err error
			conn, resp, err = d.Dial("wss://"+base+"/ws", auth)
			return err
		})
		if err != nil {
			body := ""
			if resp != nil {
				b, _ := io.ReadAll(resp.Body)
				body = resp.Status + " " + string(b)
			}
			t.Fatalf("dial: %v %s", err, body)
		}
		defer conn.Close()
		for _, msg := range []string{"hello", strings.Repeat("x", 100000)} {
			if err := conn.WriteMessage(websocket.BinaryMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, got, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "echo: "+msg {
				t.Errorf("read %d bytes, want the %d-byte echo", len(got), len(msg)+6)
			}
		}
		seen := rec.at("/api/v1/namespaces/web/services/echo:http/proxy/ws")
		if len(seen) == 0 || seen[0].Header.Get("Impersonate-User") != "oidc:octocat" || strings.Contains(seen[0].Header.Get("Authorization"), token) {
			t.Errorf("kube-apiserver received %+v", seen)
		}
	})

	t.Run("spdy", func(t *testing.T) {
		rt, err := spdy.NewRoundTripper(tlsConfig)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://"+base+"/spdy", nil)
		req.Header = auth.Clone()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := rt.NewConnection(resp)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		defer conn.Close()
		for i := 0; i < 2; i++ {
			s, err := conn.CreateStream(http.Header{"Streamtype": {"data"}, "Stream-Id": {strconv.Itoa(i)}})
			if err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprintf("stream %d says hello\n", i)
			if _, err := io.WriteString(s, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			done := make(chan error, 1)
			go func() { _, err := io.ReadFull(s, buf); done <- err }()
			select {
			case err := <-done:
				if err != nil || string(buf) != msg {
					t.Errorf("stream %d: read %q (%v), want %q", i, buf, err, msg)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("stream %d: no echo", i)
			}
			s.Close()
		}
	})
}
