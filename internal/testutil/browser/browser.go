// Package browser starts headless Chromium (Debian's chromium package) for
// tests that drive real pages, through chromedp. Tests that need it are
// skipped when no Chromium is installed, unless GATEHOUSE_REQUIRE_BROWSER
// is set (CI sets it), in which case they fail.
package browser

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path returns the Chromium binary to use: $CHROMIUM, or the first of
// chromium / chromium-browser / google-chrome on PATH.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Flags are the command-line flags for a headless Chromium on a machine
// without network access: no background traffic, no sandbox (tests run as
// root), a throwaway profile. Other tools (a --browser-command script) can
// reuse them.
func Flags(userDataDir string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--ignore-certificate-errors",
		"--user-data-dir=" + userDataDir,
	}
}

// New starts a browser for t and returns a chromedp context for one tab.
// chromedp v0.23's API is generic: chromedp.Do(ctx, steps...) runs
// Action[Void] steps, chromedp.Run(ctx, chromedp.Text(sel)) returns a value.
// The browser accepts self-signed certificates (tests serve HTTPS with a
// throwaway CA). Everything is cleaned up when t ends.
func New(t testing.TB) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatal("GATEHOUSE_REQUIRE_BROWSER is set but no chromium is installed: apt-get install chromium")
		}
		t.Skip("no chromium installed: skipping browser test (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	// Start the browser now so a failure to launch is reported here. The
	// first Run must not carry a timeout: it would bound the browser's life.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}
