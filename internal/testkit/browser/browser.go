// Package browser drives a real headless Chromium for tests, and checks pages' accessibility
// with axe-core.
//
// Chromium: $TRUSTGATE_TEST_CHROMIUM, or chromium on the PATH (Debian's package installs
// /usr/bin/chromium). axe-core: the copy pinned in tests/ts/package-lock.json, installed by
// `npm ci --prefix tests/ts`. When either is missing the test skips with the reason, except
// under CI=true, where it fails: CI must run browser tests.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// ChromiumEnv names the variable that may hold the Chromium executable's path.
const ChromiumEnv = "TRUSTGATE_TEST_CHROMIUM"

// ActionTimeout bounds each action (a navigation, a form submission, a read, an axe run).
const ActionTimeout = 15 * time.Second

// Browser is one headless Chromium with one tab, closed when the test ends.
type Browser struct {
	t   testing.TB
	tab context.Context
}

// Start launches headless Chromium on a fresh profile directory, which is removed after the
// browser has exited. It skips the test when Chromium is absent, and fails it when CI=true.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := chromiumPath(t)
	profile, err := os.MkdirTemp("", "trustgate-chromium-")
	if err != nil {
		t.Fatalf("browser profile directory: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root; containers run tests as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Cancelling the allocator waits for the browser process to exit; only then is the
		// profile free to remove.
		cancelTab()
		cancelAlloc()
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove the browser profile: %v", err)
		}
	})
	// The first run starts the browser, and must not carry a timeout (it would end the
	// browser with it); a watchdog bounds it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium (%s): %v", path, err)
		}
	case <-time.After(2 * ActionTimeout):
		cancelTab()
		t.Fatalf("Chromium (%s) did not start within %s", path, 2*ActionTimeout)
	}
	return &Browser{t: t, tab: tab}
}

// chromiumPath finds the Chromium executable, or skips (fails under CI=true).
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", ChromiumEnv, p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "Chromium is not installed (apt-get install chromium, or set "+ChromiumEnv+")")
	return ""
}

// unavailable skips the test with the reason, or fails it under CI=true.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("browser tests must run under CI=true: %s", reason)
	}
	t.Skipf("browser test skipped: %s", reason)
}

// run runs one action on the tab within ActionTimeout.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, ActionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			b.t.Fatalf("browser: %s: no answer within %s (at %s)", what, ActionTimeout, b.locationOrUnknown())
		}
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// locationOrUnknown is the tab's URL for failure messages, without failing again.
func (b *Browser) locationOrUnknown() string {
	ctx, cancel := context.WithTimeout(b.tab, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown URL"
	}
	return loc
}

// Navigate opens url in the tab, waits for the page to load and returns its HTTP status.
func (b *Browser) Navigate(url string) int64 {
	b.t.Helper()
	resp := run(b, "open "+url, func(ctx context.Context, t *chromedp.Target) (int64, error) {
		r, err := chromedp.RunResponse(ctx, chromedp.Navigate(url))
		if err != nil || r == nil {
			return 0, err
		}
		return r.Status, nil
	})
	return resp
}

// Fill types values into the form fields named by the keys (their name attribute), after
// clearing them.
func (b *Browser) Fill(fields map[string]string) {
	b.t.Helper()
	for name, value := range fields {
		sel := chromedp.CSS(fmt.Sprintf(`[name=%q]`, name))
		run(b, "fill "+name, chromedp.Steps(chromedp.Clear(sel), chromedp.SendKeys(sel, value)))
	}
}

// Click clicks the first element matching the CSS selector, as a user does (a radio button, a
// checkbox), without waiting for a navigation.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	run(b, "click "+selector, chromedp.Click(chromedp.CSS(selector)))
}

// ClickAndWait clicks the first element matching the CSS selector (a submit button, a link)
// and waits for the page the browser then loads; it returns that page's HTTP status (after
// redirects).
func (b *Browser) ClickAndWait(selector string) int64 {
	b.t.Helper()
	return run(b, "click "+selector+" and wait for the next page", func(ctx context.Context, t *chromedp.Target) (int64, error) {
		r, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
		if err != nil || r == nil {
			return 0, err
		}
		return r.Status, nil
	})
}

// Text returns the visible text of the first element matching the CSS selector.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read "+selector, chromedp.Text(chromedp.CSS(selector))))
}

// Location returns the tab's current URL.
func (b *Browser) Location() string {
	b.t.Helper()
	return run(b, "read the location", chromedp.Location())
}

// PreferColorScheme makes the tab's pages see prefers-color-scheme as scheme ("light" or
// "dark"), as a user's system setting would; "" returns to the browser's own.
func (b *Browser) PreferColorScheme(scheme string) {
	b.t.Helper()
	params := emulation.SetEmulatedMediaParams{}
	if scheme != "" {
		params.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	run(b, "prefer the "+scheme+" color scheme", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, params)
		return err
	}))
}

// Select chooses value in the <select> whose name attribute is name.
func (b *Browser) Select(name, value string) {
	b.t.Helper()
	run(b, "select "+value+" in "+name, chromedp.SetValue(chromedp.CSS(fmt.Sprintf(`select[name=%q]`, name)), value))
}

// SelectIn chooses value in the <select> the CSS selector finds (a select in a table's row).
func (b *Browser) SelectIn(selector, value string) {
	b.t.Helper()
	run(b, "select "+value+" in "+selector, chromedp.SetValue(chromedp.CSS(selector), value))
}

// Screenshot returns a PNG of the whole page the tab shows, width pixels wide.
func (b *Browser) Screenshot(width int64) []byte {
	b.t.Helper()
	run(b, "set the viewport", chromedp.EmulateViewport(width, 800))
	png := run(b, "take a screenshot", chromedp.FullScreenshot(100)) // quality 100: PNG
	run(b, "reset the viewport", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	}))
	return png
}

// VirtualAuthenticator is a passkey authenticator the tab's pages see (DevTools' WebAuthn
// domain): a platform authenticator (CTAP 2, internal transport) that keeps discoverable
// credentials, verifies its user and confirms presence at once.
type VirtualAuthenticator struct {
	b  *Browser
	id webauthn.AuthenticatorID
}

// AddVirtualAuthenticator enables WebAuthn emulation in the tab and adds an authenticator.
func (b *Browser) AddVirtualAuthenticator() *VirtualAuthenticator {
	b.t.Helper()
	id := run(b, "add a virtual authenticator", func(ctx context.Context, t *chromedp.Target) (webauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		return res.AuthenticatorID, err
	})
	return &VirtualAuthenticator{b: b, id: id}
}

// Credentials are the credentials the authenticator holds.
func (a *VirtualAuthenticator) Credentials() []*webauthn.Credential {
	a.b.t.Helper()
	return run(a.b, "read the virtual authenticator's credentials", func(ctx context.Context, t *chromedp.Target) ([]*webauthn.Credential, error) {
		res, err := cdp.Call(ctx, t, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: a.id})
		return res.Credentials, err
	})
}
