package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// TestGracefulShutdown is a rolling update's view of SIGTERM: readiness
// fails at once while the issuer still answers (the delay lets endpoints
// drop the pod), then the listeners close, and a request that was in
// flight all along (its body still arriving) gets its full answer.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	path, s := writeConfig(t, dir, "  type: memory")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.issuer)
	tlsCfg := s.client.Transport.(*http.Transport).TLSClientConfig

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	draining := make(chan struct{})
	checked := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serveWith(ctx, cfg, runOptions{LogOut: io.Discard, Draining: func() {
			close(draining)
			<-checked // the shutdown delay lasts while the test looks
		}})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + s.telemetry + "/healthz/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A request in flight: the handler runs (it asked for the body, so
	// the server sent 100 Continue) and half the body is sent.
	body := url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid"}}.Encode()
	conn, err := tls.Dial("tcp", u.Host, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s/token HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic a3ViZXJuZXRlczprdWJlLXNlY3JldA==\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n",
		u.Path, u.Host, len(body))
	br := bufio.NewReader(conn)
	if cont, err := http.ReadResponse(br, nil); err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("no 100 Continue: %v %v", cont, err)
	}
	if _, err := io.WriteString(conn, body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	cancel() // SIGTERM
	<-draining
	if resp, err := http.Get("http://" + s.telemetry + "/healthz/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readiness while draining: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	if got := get(t, s, "/.well-known/openid-configuration"); !strings.Contains(got, `"issuer"`) {
		t.Errorf("not serving during the delay: %q", got)
	}
	close(checked)

	// The listeners close: new connections are refused...
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ... and the request in flight finishes.
	if _, err := io.WriteString(conn, body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("request in flight cut: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "id_token") {
		t.Fatalf("request in flight: %s %s", resp.Status, b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
}
