package issuer_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/connector/local"
	"github.com/gatehouse-dev/gatehouse/internal/issuer"
	"github.com/gatehouse-dev/gatehouse/internal/issuer/issuertest"
	"github.com/gatehouse-dev/gatehouse/internal/testutil/browser"

	"golang.org/x/crypto/bcrypt"
)

// TestLoginPagesInChromium drives the whole login in headless Chromium:
// connector choice, password page (a wrong password first), approval, and
// the redirect to the client's loopback listener with a code that
// exchanges for tokens. The pages carry no script at all.
func TestLoginPagesInChromium(t *testing.T) {
	ctx := browser.New(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	lc, err := local.New([]local.User{{Email: "jane@example.com", Hash: hash, Username: "jane", UserID: "jane-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := issuertest.Start(t, issuertest.Options{
		ShowApproval: true,
		Connectors: []issuer.Connector{
			{ID: local.ID, Type: "local", Name: "Email", Impl: lc},
			{ID: "ext", Type: "stub", Name: "Other IdP", Impl: stubPassword{}},
		},
	})

	// The client's loopback listener (RFC 8252: any port of a registered
	// localhost redirect).
	codes := make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cb := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.URL.Query().Get("code"); c != "" {
			select {
			case codes <- c:
			default:
			}
		}
		_, _ = w.Write([]byte("<!DOCTYPE html><title>done</title><p id=done>You can close this window.</p>"))
	})}
	go func() { _ = cb.Serve(ln) }()
	defer cb.Close()
	redirect := "http://localhost:" + strings.Split(ln.Addr().String(), ":")[1]

	p := newPKCE()
	params := codeParams(s, p, "openid email profile")
	params["redirect_uri"] = redirect
	start := authURL(s, params)

	step, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(step,
		chromedp.Navigate(start),
		chromedp.WaitVisible(chromedp.CSS(`a[data-connector="local"]`)),
	); err != nil {
		t.Fatalf("connector choice page: %v", err)
	}
	html, err := chromedp.Run(step, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(html), "<script") {
		t.Fatal("login page carries a script; pages must work without JavaScript")
	}
	if err := chromedp.Do(step,
		chromedp.Click(chromedp.CSS(`a[data-connector="local"]`)),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), "jane@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong"),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	); err != nil {
		t.Fatalf("wrong password round: %v", err)
	}
	msg, err := chromedp.Run(step, chromedp.Text(chromedp.ID("login-error")))
	if err != nil || !strings.Contains(msg, "Invalid username or password") {
		t.Fatalf("error message = %q, %v", msg, err)
	}
	if err := chromedp.Do(step,
		chromedp.SendKeys(chromedp.ID("password"), "s3cret-pass"),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	); err != nil {
		t.Fatalf("login: %v", err)
	}
	if os.Getenv("GATEHOUSE_SCREENSHOTS") != "" {
		if buf, err := chromedp.Run(step, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(os.Getenv("GATEHOUSE_SCREENSHOTS")+"/approval.png", buf, 0o644)
		}
	}
	if err := chromedp.Do(step,
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("approval: %v", err)
	}
	var code string
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's loopback listener received no code")
	}
	tr := postToken(t, s, map[string][]string{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {p.verifier},
	}, s.ClientID, s.ClientSecret)
	if tr.status != 200 {
		t.Fatalf("exchange: %d %s", tr.status, tr.Error)
	}
	if c := claimsOf(t, s, tr.IDToken); c["email"] != "jane@example.com" {
		t.Fatalf("email = %v", c["email"])
	}
}

// TestDevicePagesInChromium enters a device code on /device in Chromium,
// logs in, and checks the device then gets its tokens.
func TestDevicePagesInChromium(t *testing.T) {
	ctx := browser.New(t)
	s := issuertest.Start(t, issuertest.Options{})
	resp, err := s.HTTPClient.PostForm(s.URL+"/device/code", map[string][]string{"client_id": {s.PublicClientID}, "scope": {"openid email"}})
	if err != nil {
		t.Fatal(err)
	}
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
		URI        string `json:"verification_uri"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&da)
	resp.Body.Close()
	step, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(step,
		chromedp.Navigate(da.URI),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), "bcdf-ghjk"), // a code nobody was given
		chromedp.Click(chromedp.ID("submit-code")),
		chromedp.WaitVisible(chromedp.ID("device-error")),
	); err != nil {
		t.Fatalf("wrong code: %v", err)
	}
	if err := chromedp.Do(step,
		chromedp.Navigate(da.URI+"?user_code="+da.UserCode),
		chromedp.Click(chromedp.ID("submit-code")),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), s.Username),
		chromedp.SendKeys(chromedp.ID("password"), s.Password),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("device login: %v", err)
	}
	tr := postToken(t, s, map[string][]string{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {s.PublicClientID}})
	if tr.status != 200 || tr.IDToken == "" {
		t.Fatalf("device poll after browser login: %d %s", tr.status, tr.Error)
	}
}
