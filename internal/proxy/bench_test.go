package proxy

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
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

// BenchmarkIdleWatch reports the proxy process's memory per open idle
// watch (HTTP/2 from the client, as kubectl): Go heap in use and stacks,
// before and after b.N watches, measured in the same process as the
// fake API server and the clients, so each side's share is included;
// bench/proxy measures the proxy alone against kube-apiserver.
func BenchmarkIdleWatch(b *testing.B) {
	p := newTestProxy(b, nil, "")
	token := p.iss.token(b, map[string]any{"preferred_username": "alice"})
	client := p.srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.srv.URL+"/api/v1/namespaces/default/configmaps?watch=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	b.StopTimer()
	time.Sleep(time.Second)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/watch")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(b.N), "stack-B/watch")
	cancel()
	wg.Wait()
}
