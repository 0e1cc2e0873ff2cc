package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
)

// serve says at start whether email is on, and never shows the SMTP password.
func TestServeLogsWhetherEmailIsOn(t *testing.T) {
	off := start(t, "--data-dir", t.TempDir())
	off.stopCleanly(t)
	if !strings.Contains(off.output(), "email is off") {
		t.Errorf("without --smtp-url the log does not say email is off:\n%s", off.output())
	}

	srv := smtpserver.Start(t, smtpserver.Options{Username: "gw", Password: "s3cr3tpw"})
	on := start(t, "--data-dir", t.TempDir(), "--smtp-url", srv.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	on.stopCleanly(t)
	out := on.output()
	if !strings.Contains(out, "email is on") || !strings.Contains(out, srv.Addr) {
		t.Errorf("with --smtp-url the log does not say email is on through %s:\n%s", srv.Addr, out)
	}
	if strings.Contains(out, "s3cr3tpw") {
		t.Errorf("the log shows the SMTP password:\n%s", out)
	}
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// mailbox serves, to the TypeScript scripts, the code of the next message the SMTP server
// received for an address (GET ?to=<address>): each message's code is handed out once, in
// order, so a script that asks for a new code gets the new one.
type mailbox struct {
	srv  *smtpserver.Server
	mu   sync.Mutex
	seen map[string]int // messages handed out per address
	URL  string
}

func startMailbox(t *testing.T, srv *smtpserver.Server) *mailbox {
	t.Helper()
	m := &mailbox{srv: srv, seen: map[string]int{}}
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := m.next(r.URL.Query().Get("to"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, code)
	}))
	t.Cleanup(h.Close)
	m.URL = h.URL
	return m
}

// next waits (up to 10 s) for the next message to addr and returns its code.
func (m *mailbox) next(addr string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var bodies []string
		for _, msg := range m.srv.Messages() {
			if slices.ContainsFunc(msg.To, func(to string) bool { return strings.EqualFold(to, addr) }) {
				bodies = append(bodies, msg.Body)
			}
		}
		if len(bodies) > m.seen[addr] {
			body := bodies[m.seen[addr]]
			m.seen[addr]++
			c := sixDigits.FindStringSubmatch(body)
			if c == nil {
				return "", fmt.Errorf("no code in the message to %s: %s", addr, body)
			}
			return c[1], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no new message to %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type codeResult struct {
	OK           bool     `json:"ok"`
	CodePage     bool     `json:"code_page"`
	PasswordPage bool     `json:"password_page"`
	SignedIn     bool     `json:"signed_in"`
	Consented    bool     `json:"consented"`
	Tools        []string `json:"tools"`
	Allowed      string   `json:"allowed"`
}

// runCodeScript runs tests/ts/emailcode.mjs for email in mode ("otp" or "claim") and checks
// that the TypeScript SDK client called a tool with the token that came out.
func runCodeScript(t *testing.T, mb *mailbox, resource, email, password, mode string) {
	t.Helper()
	out := runNode(t, "emailcode.mjs", "MCP_URL="+resource, "EMAIL="+email, "PASSWORD="+password, "CODE_MODE="+mode, "MAILBOX_URL="+mb.URL)
	var res codeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("emailcode.mjs output is not JSON: %v\n%s", err, out)
	}
	if !res.OK || !res.CodePage || res.PasswordPage != (mode == "claim") || !res.SignedIn || !res.Consented ||
		!strings.Contains(res.Allowed, "create_issue called: "+mode) {
		t.Fatalf("%s: %+v", mode, res)
	}
}

// TestEmailCodesThroughTheBinary: the real binary sends its codes through a real SMTP server on
// loopback; alice, pre-authorized by an admin, claims her account with the code (and chooses a
// password), then signs in with a sign-in code (email_otp); each time the official TypeScript
// SDK client calls a tool with the token that came out. Without --smtp-url, enabling email_otp
// is refused by the admin API with the reason.
func TestEmailCodesThroughTheBinary(t *testing.T) {
	smtp := smtpserver.Start(t, smtpserver.Options{})
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--smtp-url", smtp.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	up := mcpserver.Start(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, token, "host", "create", "acme", "--exact")
	cli(t, p, token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	cli(t, p, token, "human", "add", "alice@acme.test", "--host", "acme")
	cli(t, p, token, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")
	mb := startMailbox(t, smtp)
	resource := p.url + "/h/acme/mcp/tracker"

	runCodeScript(t, mb, resource, "alice@acme.test", "alice chose this password", "claim")
	msg := smtp.WaitFor(t, "alice@acme.test", 1)
	if !strings.Contains(msg.Subject(), "acme") || !strings.Contains(msg.Body, "5 minutes") {
		t.Errorf("the code's message: %q\n%s", msg.Subject(), msg.Body)
	}
	cli(t, p, token, "host", "auth", "set", "acme", "email_otp", "--enable")
	runCodeScript(t, mb, resource, "alice@acme.test", "unused", "otp")

	var entries []admin.AuditEntry
	cliJSON(t, p, token, &entries, "audit", "list", "--host", "acme", "--all")
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.Method)
	}
	for _, want := range []string{"email.code.sent password", "email.verify.success password", "account.claim password",
		"email.code.sent email_otp", "email.verify.success email_otp", "signin.success email_otp"} {
		if !slices.Contains(got, want) {
			t.Errorf("audit lacks %q: %v", want, got)
		}
	}

	offDir := t.TempDir()
	off := start(t, "--data-dir", offDir)
	offToken := bootstrapToken(t, "e2e", "--data-dir", offDir)
	cli(t, off, offToken, "host", "create", "acme", "--exact")
	b, _ := json.Marshal(map[string]any{"enabled": true})
	req, _ := http.NewRequest(http.MethodPut, off.url+"/api/v1/hosts/acme/auth/methods/email_otp", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+offToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "--smtp-url") {
		t.Errorf("enabling email_otp without email: %d %s", resp.StatusCode, body)
	}
}
