package proxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkGet compares a GET through the proxy's whole chain (JWT
// authentication, audit at Metadata level to an in-memory sink,
// impersonation headers, UpgradeAwareHandler over HTTP/2) with the same
// GET straight to the same fake API server. The difference is what the
// proxy adds on this machine; bench/proxy measures it against a real
// kube-apiserver.
func BenchmarkGet(b *testing.B) {
	p := newTestProxy(b, nil, "")
	token := p.iss.token(b, map[string]any{"preferred_username": "alice", "groups": []string{"a", "b"}})
	direct := &http.Client{Transport: p.api.srv.Client().Transport}
	run := func(b *testing.B, c *http.Client, url, auth string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, direct, p.api.srv.URL+"/api/v1/namespaces/default/configmaps/x", "Bearer proxy-token")
	})
	b.Run("proxy", func(b *testing.B) {
		run(b, p.srv.Client(), p.srv.URL+"/api/v1/namespaces/default/configmaps/x", "Bearer "+token)
	})
}
