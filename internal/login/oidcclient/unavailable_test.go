package oidcclient

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestUnavailable(t *testing.T) {
	resp := func(code int, retry string) *http.Response {
		h := http.Header{}
		if retry != "" {
			h.Set("Retry-After", retry)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := http.Get("http://" + addr + "/token") // nothing listens there now
	if dialErr == nil {
		t.Fatal("a closed port answered")
	}
	cases := []struct {
		name  string
		err   error
		want  bool
		retry time.Duration
	}{
		{"gatehouse 503", &oauth2.RetrieveError{Response: resp(503, "42"), ErrorCode: "temporarily_unavailable", ErrorDescription: "GitHub is down"}, true, 42 * time.Second},
		{"dex 500", &oauth2.RetrieveError{Response: resp(500, ""), ErrorCode: "invalid_request"}, true, 0},
		{"429", &oauth2.RetrieveError{Response: resp(429, "7")}, true, 7 * time.Second},
		{"unreachable", fmt.Errorf("refresh: %w", dialErr), true, 0},
		{"invalid_grant", &oauth2.RetrieveError{Response: resp(400, ""), ErrorCode: "invalid_grant"}, false, 0},
		{"invalid_client", &oauth2.RetrieveError{Response: resp(401, ""), ErrorCode: "invalid_client"}, false, 0},
		{"other", errors.New("the ID token's signature is invalid"), false, 0},
	}
	for _, tc := range cases {
		var ue *UnavailableError
		got := errors.As(Unavailable(tc.err), &ue)
		if got != tc.want || got && ue.RetryAfter != tc.retry {
			t.Errorf("%s: Unavailable = %v (%+v), want %v with Retry-After %s", tc.name, got, ue, tc.want, tc.retry)
		}
		if got && !errors.Is(ue, tc.err) {
			t.Errorf("%s: the cause is lost", tc.name)
		}
	}
}
