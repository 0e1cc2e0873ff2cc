package tests

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// passkeySetup is the tracker setup on a gateway whose public URL is http://localhost:<port>
// (WebAuthn needs a domain name as relying party ID; browsers treat localhost as secure), with
// passkeys enabled on host acme.
func passkeySetup(t *testing.T) (trackerSetup, string) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	public := "http://localhost:" + port
	p := waitReady(t, launchEnv(t, addr, nil, "serve", "--listen", addr, "--data-dir", dir, "--public-url", public))
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	cli(t, p, admin, "host", "auth", "set", "acme", "passkey", "--enable")
	return trackerSetup{p: p, admin: admin, up: up, resource: public + "/h/acme/mcp/tracker",
		email: "alice@acme.test", password: "correct horse battery staple"}, public + "/h/acme"
}

// TestPasskeyBrowserAndTypeScriptSDK is the passkey path of a person in real Chromium with the
// DevTools virtual authenticator, through the binary: alice signs in with her password, adds
// a passkey on her account page, signs out; the TypeScript SDK client's authorization then
// opens in the browser, where she signs in with the passkey alone and consents, and the SDK
// calls a tool with the token that came out. She removes the passkey; the next passkey
// sign-in is refused. The audit log has each step.
func TestPasskeyBrowserAndTypeScriptSDK(t *testing.T) {
	s, issuer := passkeySetup(t)
	b := browser.Start(t)
	key := b.AddVirtualAuthenticator()
	cb := listenCallback(t)

	// A first sign-in with the password (an app's authorization request opens the page).
	conf := registerClientAt(t, issuer, "Password agent", cb.url)
	authURL := conf.AuthCodeURL("passkey-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", s.resource))
	if status := b.Navigate(authURL); status != http.StatusOK {
		t.Fatalf("authorization URL = %d", status)
	}
	if !strings.Contains(b.Text("main"), "Sign in with a passkey") {
		t.Fatalf("the sign-in page offers no passkey: %q", b.Text("main"))
	}
	b.RequireAccessible("sign-in page with a passkey button")
	b.Fill(map[string]string{"email": s.email, "password": s.password})
	if b.ClickAndWait(`main > form button[type=submit]`); b.Text("h1") != "Set a trust level" {
		t.Fatalf("after the password the page is %q", b.Text("h1"))
	}

	// The account page: add a passkey.
	if status := b.Navigate(issuer + "/account"); status != http.StatusOK {
		t.Fatalf("account page = %d", status)
	}
	b.RequireAccessible("account page")
	b.Fill(map[string]string{"name": "Chromium"})
	if status := b.ClickAndWait(`[data-passkey="register"] [data-passkey-start]`); status != http.StatusOK {
		t.Fatalf("adding a passkey = %d: %q", status, b.Text("main"))
	}
	if text := b.Text("main"); !strings.Contains(text, "Your passkey is added") || !strings.Contains(text, "Chromium") {
		t.Fatalf("after adding a passkey the page says %q", text)
	}
	if creds := key.Credentials(); len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential for localhost", creds)
	}
	b.ClickAndWait(`form[action$="/logout"] button`)
	if h := b.Text("h1"); h != "Signed out" {
		t.Fatalf("sign-out shows %q", h)
	}

	// The TypeScript SDK's authorization, completed in the browser with the passkey alone.
	authorizations := make(chan string)
	codes := make(chan string)
	bridge := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := io.ReadAll(io.LimitReader(r.Body, 8<<10))
		authorizations <- string(u)
		select {
		case back, ok := <-codes:
			if !ok {
				http.Error(w, "the browser failed", http.StatusBadGateway)
				return
			}
			_, _ = io.WriteString(w, back)
		case <-time.After(60 * time.Second):
			http.Error(w, "timeout", http.StatusGatewayTimeout)
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = bridge.Serve(l) }()
	t.Cleanup(func() { _ = bridge.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	node := startNode(ctx, t, "passkey.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD=not used",
		"CALLBACK_URL="+cb.url, "BROWSER_URL=http://"+l.Addr().String()+"/", "NODE_OPTIONS=--dns-result-order=ipv4first")
	var sdkAuthURL string
	select {
	case sdkAuthURL = <-authorizations:
	case err := <-node.exited:
		t.Fatalf("passkey.mjs ended before the authorization (%v):\n%s\n%s", err, node.stdout.String(), node.stderr.String())
	case <-ctx.Done():
		t.Fatal("passkey.mjs did not ask for the authorization")
	}
	func() {
		defer func() {
			if t.Failed() {
				close(codes)
			}
		}()
		if status := b.Navigate(sdkAuthURL); status != http.StatusOK || b.Text("h1") != "Sign in" {
			t.Fatalf("the SDK's authorization URL = %d %q", status, b.Text("h1"))
		}
		if status := b.ClickAndWait(`[data-passkey="signin"] [data-passkey-start]`); status != http.StatusOK || b.Text("h1") != "Set a trust level" {
			t.Fatalf("passkey sign-in = %d, the page is %q: %q", status, b.Text("h1"), b.Text("main"))
		}
		b.Click(`#trust_level-medium`)
		b.ClickAndWait(`button[name=decision][value=allow]`)
		var q url.Values
		select {
		case q = <-cb.query:
		case <-time.After(10 * time.Second):
			t.Fatalf("the browser did not reach the redirect URI; it shows %s", b.Location())
		}
		codes <- cb.url + "?" + q.Encode()
	}()
	select {
	case err := <-node.exited:
		if err != nil {
			t.Fatalf("passkey.mjs: %v\n%s\n%s", err, node.stdout.String(), node.stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("passkey.mjs did not finish:\n%s\n%s", node.stdout.String(), node.stderr.String())
	}
	out := lines(node.stdout.String())
	var res struct {
		OK      bool     `json:"ok"`
		Iss     string   `json:"iss"`
		Tools   []string `json:"tools"`
		Allowed string   `json:"allowed"`
	}
	if len(out) == 0 || json.Unmarshal([]byte(out[len(out)-1]), &res) != nil || !res.OK || res.Iss != issuer || !strings.Contains(res.Allowed, "create_issue called: passkey") {
		t.Fatalf("passkey.mjs result: %s\n%s", node.stdout.String(), node.stderr.String())
	}

	// Removing the passkey: the next passkey sign-in is refused.
	if status := b.Navigate(issuer + "/account"); status != http.StatusOK {
		t.Fatalf("account page after the passkey sign-in = %d", status)
	}
	b.ClickAndWait(`.passkey-list button[type=submit]`)
	if text := b.Text("main"); !strings.Contains(text, "The passkey is removed") || strings.Contains(text, "Last used") {
		t.Fatalf("after removing the passkey the page says %q", text)
	}
	b.ClickAndWait(`form[action$="/logout"] button`)
	b.Navigate(authURL)
	b.ClickAndWait(`[data-passkey="signin"] [data-passkey-start]`)
	if h, text := b.Text("h1"), b.Text("main"); h != "Sign in" || !strings.Contains(text, "That passkey could not sign you in") {
		t.Fatalf("a removed passkey's sign-in shows %q: %q", h, text)
	}

	var entries []struct {
		Action string `json:"action"`
		Method string `json:"method"`
	}
	cliJSON(t, s.p, s.admin, &entries, "audit", "list", "--host", "acme", "--decision", "identity", "--all")
	var got []string
	for _, e := range entries {
		if e.Method == "passkey" || strings.HasPrefix(e.Action, "passkey.") {
			got = append(got, e.Method+":"+e.Action)
		}
	}
	joined := strings.Join(got, " ")
	for _, want := range []string{":passkey.register", ":passkey.remove", "passkey:signin.success", "passkey:signin.failure"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit entries %q lack %q", joined, want)
		}
	}
}
