package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostWebhookThroughTheCLI: an operator sets a host's incoming webhook with the CLI (the URL
// read from a file, never the command line), the host shows it only as set, a test message
// reaches a Slack-compatible receiver on loopback (allowed by --upstream-allow-cidr), and
// neither the CLI's output nor the gateway's log shows the URL. Without the operator's network
// allowed, the same receiver is out of reach.
func TestHostWebhookThroughTheCLI(t *testing.T) {
	texts := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text string `json:"text"`
		}
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		texts <- m.Text
	}))
	defer receiver.Close()
	hookURL := receiver.URL + "/services/T1/B1/hooksecret"

	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--upstream-allow-cidr", "127.0.0.0/8")
	admin := bootstrapToken(t, "ops", "--data-dir", dir)
	cli(t, p, admin, "host", "create", "acme", "--exact")
	urlFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(urlFile, []byte(hookURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, p, admin, "host", "webhook", "set", "acme", "--url-file", urlFile)
	out += cli(t, p, admin, "host", "webhook", "show", "acme")
	if !strings.Contains(out, "webhook is set") {
		t.Errorf("webhook set/show printed %q", out)
	}
	out += cli(t, p, admin, "host", "show", "acme", "-o", "json")
	out += cli(t, p, admin, "host", "webhook", "test", "acme")
	if !strings.Contains(out, "Delivered a test message") {
		t.Errorf("webhook test printed %q", out)
	}
	select {
	case text := <-texts:
		if !strings.Contains(text, "host acme") {
			t.Errorf("test message %q", text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no message")
	}
	if strings.Contains(out, "hooksecret") || strings.Contains(p.output(), "hooksecret") {
		t.Errorf("the URL was shown:\n%s\n%s", out, p.output())
	}

	// A gateway whose operator did not allow loopback cannot be pointed at it.
	dir2 := t.TempDir()
	p2 := start(t, "--data-dir", dir2)
	admin2 := bootstrapToken(t, "ops", "--data-dir", dir2)
	cli(t, p2, admin2, "host", "webhook", "set", "default", "--url-file", urlFile)
	res, err := run(t, 30*time.Second, "admin", "--url", p2.url, "--token", admin2, "host", "webhook", "test", "default")
	if err == nil || !strings.Contains(res, "not allowed") || strings.Contains(res, "hooksecret") {
		t.Errorf("test towards a forbidden address: %v\n%s", err, res)
	}
	cli(t, p2, admin2, "host", "webhook", "remove", "default")
	if out := cli(t, p2, admin2, "host", "webhook", "show", "default"); !strings.Contains(out, "no webhook") {
		t.Errorf("after remove: %q", out)
	}
}
