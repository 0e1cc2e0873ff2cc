package dashboard_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/audit"
)

func TestTrustMapDrawsWhoMayDoWhatAndMarksOverPermission(t *testing.T) {
	e := newDecidingEnv(t)
	b, ag := e.seed() // alice: ceiling high; Cursor: medium on tracker
	if err := e.audit.Append(context.Background(), audit.Entry{Host: "acme", AgentID: ag.ID, Server: "tracker", Tool: "list_issues", Method: "tools/call", Decision: audit.Allowed}); err != nil {
		t.Fatal(err)
	}
	status, body, h := b.get("/dashboard/hosts/acme/trust-map")
	if status != http.StatusOK {
		t.Fatalf("trust map = %d\n%s", status, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
		t.Errorf("the map needs inline script or style: CSP %q", csp)
	}
	svg := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindString(body)
	if svg == "" || !strings.Contains(svg, `role="img" aria-labelledby="tm-title tm-desc"`) ||
		!strings.Contains(svg, `<title id="tm-title">Trust map of acme</title>`) || !strings.Contains(svg, `<desc id="tm-desc">`) {
		t.Fatalf("no accessible SVG:\n%s", body)
	}
	for _, want := range []string{
		// The nodes: human, agent, server, tools with their levels.
		`<g class="tm-human tm-over"><title>Human alice@acme.test. Over-permission: The ceiling of alice@acme.test on tracker is high, but none of their agents holds more than medium there.</title>`,
		`<g class="tm-agent"><title>Agent Cursor of alice@acme.test</title>`,
		`<g class="tm-server"><title>MCP server tracker (3 tools)</title>`,
		`>list_issues · low</text>`,
		// delete_issue: enabled at high, nobody can call it.
		`<g class="tm-tool tm-over"><title>Over-permission: tool delete_issue of tracker is enabled at high but no agent can call it</title>`,
		// Cursor holds medium and used only a low tool: its edge to the server is marked.
		`class="tm-edge tm-level-medium tm-over"><title>Over-permission: Agent &#34;Cursor&#34; of alice@acme.test holds medium on tracker but called no medium tool in 30 days (at most low): lower it to low.</title>`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the map lacks %s", want)
		}
	}
	// The same as tables, and the findings in words.
	for _, want := range []string{
		`<tr class="tm-row-over"><td>alice@acme.test</td><td><a href="/dashboard/hosts/acme/agents/` + ag.ID + `">Cursor</a></td><td>tracker</td><td>medium</td><td>high</td><td>medium <span class="tm-key-over">over</span></td><td>create_issue, list_issues</td><td>list_issues</td></tr>`,
		`<td>tracker</td><td>delete_issue</td><td>high</td><td>0 <span class="tm-key-over">over</span></td>`,
		`<span class="pill">uncallable_tool</span> Tool delete_issue of tracker is enabled at high, but no agent can call it.`,
		`<li><a href="/dashboard/hosts/acme/trust-map">Trust map</a></li>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}
