package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestResultFilterThroughTheBinary: the test server streams (SSE) a result that carries a
// planted AWS access key id and a card number. Through the real binary, with the host's
// result filter off the values reach the agent; set to redact with the admin CLI, the
// streamed answer carries [redacted:…] in their place (read by the Go SDK client and raw off
// the wire); with the server set to block, the agent gets a denial (reason result_blocked)
// instead of the result. The audit log names kinds and counts, never a value.
func TestResultFilterThroughTheBinary(t *testing.T) {
	s := setupTrackerWith(t, func(up *mcpserver.Upstream) { up.AddPlantedTool() })
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "low")
	session := mcpSession(t, s.resource, token)
	leaks := func(text string) bool {
		return strings.Contains(text, mcpserver.PlantedAWSKey) || strings.Contains(text, mcpserver.PlantedCard)
	}

	if text, ok := callText(t, session, mcpserver.PlantedTool, nil); !ok || !strings.Contains(text, mcpserver.PlantedAWSKey) || !strings.Contains(text, mcpserver.PlantedCard) {
		t.Fatalf("filter off: %q, want the planted values", text)
	}

	out := cli(t, s.p, s.admin, "host", "dlp", "acme", "--mode", "redact")
	if !strings.Contains(out, "redact") || !strings.Contains(out, "all built-in") {
		t.Errorf("host dlp: %s", out)
	}
	want := `[{"name":"Jane Roe","card":"[redacted:card_number]","note":"billing export uses key [redacted:aws_access_key_id]"}]`
	if text, ok := callText(t, session, mcpserver.PlantedTool, nil); !ok || text != want {
		t.Fatalf("redact: %q, want %q", text, want)
	}
	// Off the wire: the answer is a stream, and no event carries a value.
	req, _ := http.NewRequest(http.MethodPost, s.resource, strings.NewReader(toolCall(mcpserver.PlantedTool)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || leaks(body) || !strings.Contains(body, "[redacted:aws_access_key_id]") {
		t.Errorf("raw answer: %s %q, want a redacted event stream", resp.Header.Get("Content-Type"), body)
	}

	cli(t, s.p, s.admin, "server", "update", "tracker", "--host", "acme", "--dlp-mode", "block")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: mcpserver.PlantedTool})
	if err != nil || !res.IsError || len(res.Content) != 1 {
		t.Fatalf("block: %+v, %v; want a tool result with isError", res, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if leaks(text) || !strings.Contains(text, `withheld the result of the tool "list_customers"`) || !strings.Contains(text, "aws_access_key_id, card_number") {
		t.Errorf("block: %q", text)
	}
	if m, _ := res.Meta["trustgate/denial"].(map[string]any); m["reason"] != "result_blocked" {
		t.Errorf("block: _meta %v, want reason result_blocked", res.Meta)
	}
	// A clean result passes the blocking server.
	if text, ok := callText(t, session, "list_issues", map[string]any{"title": "fine"}); !ok || text != "list_issues called: fine" {
		t.Errorf("clean result under block: %q", text)
	}

	var entries []struct {
		Decision string `json:"decision"`
		Tool     string `json:"tool"`
		Reason   string `json:"reason"`
	}
	cliJSON(t, s.p, s.admin, &entries, "audit", "list", "--host", "acme", "--all")
	var reasons []string
	for _, e := range entries {
		if leaks(e.Reason) {
			t.Errorf("an audit entry holds a planted value: %+v", e)
		}
		if e.Decision == "result" && e.Tool == mcpserver.PlantedTool {
			reasons = append(reasons, e.Reason)
		}
	}
	wantReasons := map[string]bool{"": false, "result redacted: aws_access_key_id=1, card_number=1": false,
		"result_blocked: result blocked, it held aws_access_key_id=1, card_number=1": false}
	for _, r := range reasons {
		if _, ok := wantReasons[r]; ok {
			wantReasons[r] = true
		}
	}
	for r, seen := range wantReasons {
		if !seen {
			t.Errorf("no result entry with reason %q among %q", r, reasons)
		}
	}

	// Invalid settings are refused with the reason.
	if out, err := run(t, 60*time.Second, "admin", "--url", s.p.url, "--token", s.admin, "host", "dlp", "acme", "--pattern", "bad=(unclosed"); err == nil ||
		!strings.Contains(out, "pattern \"bad\"") {
		t.Errorf("invalid pattern: %v %s", err, out)
	}
}
