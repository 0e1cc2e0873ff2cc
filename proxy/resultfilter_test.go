package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/store"
)

// Planted values: an AWS access key id and a card number, as a tool's result may carry them.
const (
	plantedKey  = "AKIAIOSFODNN7EXAMPLE"
	plantedCard = "4111 1111 1111 1111"
)

func (e *env) setDLP(hostMode dlp.Mode, serverMode dlp.Mode) {
	e.t.Helper()
	ctx := context.Background()
	h, err := e.st.GetHost(ctx, host)
	if err != nil {
		e.t.Fatal(err)
	}
	h.Settings.DLP = dlp.Settings{Mode: hostMode}
	if _, err := e.st.UpdateHost(ctx, h); err != nil {
		e.t.Fatal(err)
	}
	srv, err := e.st.GetServer(ctx, host, serverKey)
	if err != nil {
		e.t.Fatal(err)
	}
	srv.DLPMode = serverMode
	if _, err := e.st.UpdateServer(ctx, srv); err != nil {
		e.t.Fatal(err)
	}
}

// TestResultFilterRedactsAndBlocks: the test server streams (SSE) its result, which echoes the
// planted values. Off (the default), they reach the client; redact replaces them inside the
// text; block replaces the result by a denial in the host's format (a tool result with
// isError, or the -31001 error); a server's own mode wins over the host's. The result's audit
// entry names the kinds and counts, never a value.
func TestResultFilterRedactsAndBlocks(t *testing.T) {
	e := newEnv(t)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	args := map[string]any{"title": "key " + plantedKey + " card " + plantedCard}

	got, err := callText(t, cs, "list_issues", args)
	if err != nil || !strings.Contains(got, plantedKey) || !strings.Contains(got, plantedCard) {
		t.Fatalf("off: %q, %v; want the values unchanged", got, err)
	}

	e.setDLP(dlp.ModeRedact, "")
	got, err = callText(t, cs, "list_issues", args)
	if want := "list_issues called: key [redacted:aws_access_key_id] card [redacted:card_number]"; err != nil || got != want {
		t.Fatalf("redact: %q, %v; want %q", got, err, want)
	}
	results := e.entries(audit.Filter{Tool: "list_issues", Decision: audit.Result}, 2)
	last := results[len(results)-1]
	if last.Reason != "result redacted: aws_access_key_id=1, card_number=1" {
		t.Errorf("audit reason of the redacted result: %q", last.Reason)
	}
	for _, r := range results {
		if strings.Contains(r.Reason+r.Arguments, "AKIA") || strings.Contains(r.Reason, "4111") {
			t.Errorf("the audit entry holds a value: %+v", r)
		}
	}

	// The server blocks although its host redacts.
	e.setDLP(dlp.ModeRedact, dlp.ModeBlock)
	_, err = callText(t, cs, "list_issues", args)
	var te toolError
	if !asToolError(err, &te) || !strings.Contains(string(te), "withheld the result") || strings.Contains(string(te), "AKIA") {
		t.Fatalf("block: %v, want a tool result with isError naming the withheld result", err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_issues", Arguments: args})
	if err != nil || !res.IsError || res.Meta["trustgate/denial"] == nil {
		t.Fatalf("block: %+v, %v", res, err)
	}
	if m, _ := res.Meta["trustgate/denial"].(map[string]any); m["reason"] != "result_blocked" {
		t.Errorf("block: _meta %v, want reason result_blocked", res.Meta)
	}
	results = e.entries(audit.Filter{Tool: "list_issues", Decision: audit.Result}, 4)
	if last := results[len(results)-1]; last.Reason != "result_blocked: result blocked, it held aws_access_key_id=1, card_number=1" {
		t.Errorf("audit reason of the blocked result: %q", last.Reason)
	}

	// The host wants JSON-RPC errors.
	e.setDenialFormat(store.DenialJSONRPCError)
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_issues", Arguments: args})
	if err == nil || !strings.Contains(err.Error(), "withheld the result") || strings.Contains(err.Error(), "AKIA") {
		t.Fatalf("block, jsonrpc_error: %v, want the -31001 error", err)
	}

	// The server is off although its host redacts; a clean result passes in either mode.
	e.setDLP(dlp.ModeRedact, dlp.ModeOff)
	if got, err := callText(t, cs, "list_issues", args); err != nil || !strings.Contains(got, plantedKey) {
		t.Fatalf("server off: %q, %v", got, err)
	}
	e.setDLP(dlp.ModeBlock, "")
	if got, err := callText(t, cs, "list_issues", map[string]any{"title": "nothing to see"}); err != nil || got != "list_issues called: nothing to see" {
		t.Fatalf("clean result under block: %q, %v", got, err)
	}
}

func asToolError(err error, te *toolError) bool {
	t, ok := err.(toolError)
	if ok {
		*te = t
	}
	return ok
}
