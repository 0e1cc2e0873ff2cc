package tests

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
)

// TestRevokeThenGrantRestoresNoConsent: after `admin human revoke`, a new `grant` gives the
// human's earlier agents nothing until the human consents again (it used to restore every old
// consented level silently). Through the real binary: two agents consent, the admin revokes
// and grants again, both agents are refused and hold no level; one consents again and only it
// may call again.
func TestRevokeThenGrantRestoresNoConsent(t *testing.T) {
	s := setupTracker(t)
	p, adminToken := s.p, s.admin
	issuer := p.url + "/h/acme"
	medium := mcpSession(t, s.resource, connectAgent(t, p.url, issuer, s.resource, s.email, s.password, "medium"))
	high := mcpSession(t, s.resource, connectAgent(t, p.url, issuer, s.resource, s.email, s.password, "high"))
	if text, ok := callText(t, medium, "create_issue", map[string]any{"title": "before"}); !ok {
		t.Fatalf("medium agent before the revocation: %s", text)
	}
	if text, ok := callText(t, high, "delete_issue", map[string]any{"id": "1"}); !ok {
		t.Fatalf("high agent before the revocation: %s", text)
	}

	cli(t, p, adminToken, "human", "revoke", s.email, "tracker", "--host", "acme")
	cli(t, p, adminToken, "human", "grant", s.email, "tracker", "--level", "high", "--host", "acme")

	var agents []admin.Agent
	cliJSON(t, p, adminToken, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 2 {
		t.Fatalf("agents: %+v", agents)
	}
	for _, a := range agents {
		for _, sv := range a.Servers {
			if sv.Server == "tracker" && (sv.Level != "" || sv.Effective != "") {
				t.Errorf("after revoke and grant, agent %s still holds %+v on tracker", a.ID, sv)
			}
		}
	}
	if text, ok := callText(t, medium, "list_issues", nil); ok {
		t.Errorf("the medium agent calls list_issues after revoke and grant without consenting again: %s", text)
	}
	if text, ok := callText(t, high, "delete_issue", map[string]any{"id": "2"}); ok {
		t.Errorf("the high agent calls delete_issue after revoke and grant without consenting again: %s", text)
	}
	if calls := strings.Join(s.up.Calls(), ","); calls != "create_issue,delete_issue" {
		t.Errorf("calls that reached the upstream: %s, want only the two before the revocation", calls)
	}

	// Consenting again (a new connection through sign-in and consent) gives access again.
	again := mcpSession(t, s.resource, connectAgent(t, p.url, issuer, s.resource, s.email, s.password, "low"))
	if text, ok := callText(t, again, "list_issues", nil); !ok {
		t.Fatalf("an agent that consented after the new grant is refused: %s", text)
	}
}
