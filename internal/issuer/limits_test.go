package issuer_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/fakeclock"
)

func newClock() *fakeclock.Clock { return fakeclock.New(time.Now()) }

func passwordLogin(t *testing.T, s *issuertest.Server, username, password string) tokenResponse {
	t.Helper()
	return postToken(t, s, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "scope": {"openid"}}, s.ClientID, s.ClientSecret)
}

// pageLogin logs the local user in through the login page (with the
// right password) and returns the status of the last response: 303 with
// a code at the client, or the page's status.
func pageLogin(t *testing.T, s *issuertest.Server) int {
	t.Helper()
	resp, _, err := s.LoginPage(s.Browser(), authURL(s, codeParams(s, newPKCE(), "openid")))
	if resp == nil {
		t.Fatalf("login page: %v", err)
	}
	return resp.StatusCode
}

// TestSuccessfulLoginsAreNotLimited: successful logins take nothing from
// any bucket, whatever the time between the check and the outcome: one
// user (a CI job) logs in 100 times within a minute with the password
// grant, and one address (an office behind NAT, every user behind an
// ingress) logs in 300 times within a minute through the login page.
// The failure budget is whole afterwards.
func TestSuccessfulLoginsAreNotLimited(t *testing.T) {
	t.Run("100 password grants of one user within a minute", func(t *testing.T) {
		clk := newClock()
		s := issuertest.Start(t, issuertest.Options{Now: clk.Now})
		for i := 0; i < 100; i++ {
			if tr := passwordLogin(t, s, s.Username, s.Password); tr.status != 200 {
				t.Fatalf("login %d: %d %s %s", i+1, tr.status, tr.Error, tr.Description)
			}
			clk.Advance(590 * time.Millisecond)
		}
		// The 10 failures a user is allowed are all still there.
		for i := 0; i < 10; i++ {
			if tr := passwordLogin(t, s, s.Username, "wrong"); tr.status != 400 || tr.Error != "invalid_grant" {
				t.Fatalf("wrong password %d after 100 successes: %d %s", i+1, tr.status, tr.Error)
			}
		}
	})
	t.Run("300 logins from one address within a minute, through the login page", func(t *testing.T) {
		clk := newClock()
		s := issuertest.Start(t, issuertest.Options{Now: clk.Now})
		b := s.Browser()
		for i := 0; i < 300; i++ {
			resp, page, err := s.LoginPage(b, authURL(s, codeParams(s, newPKCE(), "openid")))
			if err != nil {
				t.Fatalf("login %d: %v\n%.300s", i+1, err, page)
			}
			if loc, _ := resp.Location(); loc == nil || loc.Query().Get("code") == "" {
				t.Fatalf("login %d: no code at the client: %d %.300s", i+1, resp.StatusCode, page)
			}
			clk.Advance(190 * time.Millisecond)
		}
	})
}

// TestFailedLoginsAreLimited attacks the limits over HTTP: wrong passwords
// for one user, and wrong passwords spread over many users from one
// address, on the password grant and the login page, which share the
// buckets. The issuer's clock stands still, so no bucket refills however
// slowly the machine runs.
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Run("11 wrong passwords for one user", func(t *testing.T) {
		s := issuertest.Start(t, issuertest.Options{Now: newClock().Now}) // a clock that stands still: no refill
		for i := 0; i < 10; i++ {
			if tr := passwordLogin(t, s, s.Username, "wrong"); tr.status != 400 {
				t.Fatalf("wrong password %d: %d %s", i+1, tr.status, tr.Error)
			}
		}
		tr := passwordLogin(t, s, strings.ToUpper(s.Username), "wrong")
		if tr.status != 429 || tr.header.Get("Retry-After") == "" {
			t.Fatalf("11th wrong password: %d %s, want 429 with Retry-After", tr.status, tr.Error)
		}
		if n, err := strconv.Atoi(tr.header.Get("Retry-After")); err != nil || n < 1 || n > 7 {
			t.Errorf("Retry-After %q, want about 6 seconds (10 failures per minute)", tr.header.Get("Retry-After"))
		}
		// The right password is refused too while limited: checked first.
		if tr := passwordLogin(t, s, s.Username, s.Password); tr.status != 429 {
			t.Fatalf("limit bypassed with the right password: %d", tr.status)
		}
		// The login page shares the user's bucket.
		if code := pageLogin(t, s); code != http.StatusTooManyRequests {
			t.Fatalf("login page while the user is limited: %d, want 429", code)
		}
	})
	t.Run("wrong passwords over many users from one address", func(t *testing.T) {
		s := issuertest.Start(t, issuertest.Options{Now: newClock().Now}) // a clock that stands still: no refill
		for i := 0; i < 30; i++ {
			if tr := passwordLogin(t, s, "user"+strconv.Itoa(i)+"@example.com", "guess"); tr.status != 400 {
				t.Fatalf("guess %d: %d %s", i+1, tr.status, tr.Error)
			}
		}
		if tr := passwordLogin(t, s, "user30@example.com", "guess"); tr.status != 429 {
			t.Fatalf("31st guess from one address: %d, want 429", tr.status)
		}
		if code := pageLogin(t, s); code != http.StatusTooManyRequests {
			t.Fatalf("login page from the limited address: %d, want 429", code)
		}
	})
	t.Run("limits from the options", func(t *testing.T) {
		s := issuertest.Start(t, issuertest.Options{Now: newClock().Now, LoginLimits: issuer.LoginLimits{PerUser: issuer.FailureLimit{Failures: 2, Window: time.Hour}}})
		for i := 0; i < 2; i++ {
			if tr := passwordLogin(t, s, s.Username, "wrong"); tr.status != 400 {
				t.Fatalf("wrong password %d: %d", i+1, tr.status)
			}
		}
		tr := passwordLogin(t, s, s.Username, "wrong")
		if tr.status != 429 || tr.header.Get("Retry-After") != "1800" {
			t.Fatalf("3rd wrong password with 2 per hour: %d Retry-After %q, want 429 and 1800", tr.status, tr.header.Get("Retry-After"))
		}
	})
}
