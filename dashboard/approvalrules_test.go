package dashboard_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// TestApprovalRulesPage: a host admin lists, adds and removes the host's approval rules with
// every field the API has; a value the API refuses is shown beside its field (marked invalid,
// what was typed kept) and nothing is saved; a remove form for a rule that changed since the
// page was loaded removes nothing.
func TestApprovalRulesPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.human("acme", "boss@acme.test", true)
	boss := e.signIn("boss@acme.test", "acme")
	const page = "/dashboard/hosts/acme/approval-rules"
	const action = page + "#add-rule"
	rules := func() []store.ApprovalRule {
		t.Helper()
		h, err := e.store.GetHost(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return h.Settings.ApprovalRules
	}

	status, body, _ := boss.get(page)
	if status != http.StatusOK || !strings.Contains(body, "No rules") {
		t.Fatalf("empty rules page = %d\n%s", status, body)
	}
	if _, host, _ := boss.get("/dashboard/hosts/acme"); !strings.Contains(host, `href="/dashboard/hosts/acme/approval-rules"`) {
		t.Error("the host page has no link to the approval rules")
	}
	if _, approvals, _ := boss.get("/dashboard/hosts/acme/approvals"); !strings.Contains(approvals, `href="/dashboard/hosts/acme/approval-rules"`) {
		t.Error("Pending approvals does not say where the rules are set")
	}

	form := formValues(t, body, action)
	for k, v := range map[string]string{"level": "medium", "agent_type": "proactive", "approvers": "sec@acme.test, Lead@acme.test",
		"standing_hours": "8", "timeout_seconds": "300"} {
		form.Set(k, v)
	}
	if status, body, _ := boss.post(action, form); status != http.StatusSeeOther {
		t.Fatalf("add rule = %d\n%s", status, body)
	}
	want := store.ApprovalRule{Level: schema.Medium, AgentType: "proactive", Approvers: []string{"sec@acme.test", "lead@acme.test"}, StandingHours: 8, TimeoutSeconds: 300}
	if got := rules(); len(got) != 1 || !equalRule(got[0], want) {
		t.Fatalf("rules after add = %+v; want [%+v]", got, want)
	}
	_, body, _ = boss.get(page)
	for _, s := range []string{"medium or above", "proactive", "sec@acme.test, lead@acme.test", "stands for 8 h", "300 s"} {
		if !strings.Contains(body, s) {
			t.Errorf("rules page lacks %q", s)
		}
	}

	// Refused values: each beside its field, the form as typed, nothing saved.
	for _, c := range []struct {
		name   string
		set    map[string]string
		id     string // the field's id (its error's id is id + "-error")
		reason string
	}{
		{"timeout too short", map[string]string{"level": "high", "timeout_seconds": "3"}, "rule-timeout", "timeout of 3 seconds"},
		{"standing too long", map[string]string{"level": "high", "standing_hours": "500"}, "rule-standing", "500 hours"},
		{"standing not a number", map[string]string{"level": "high", "standing_hours": "eight"}, "rule-standing", "whole number"},
		{"tool without server", map[string]string{"tool": "delete_repo"}, "rule-server", "name its server"},
		{"approver not an email", map[string]string{"level": "high", "approvers": "sec@acme.test, nobody"}, "rule-approvers", `&#34;nobody&#34; is not an email`},
		{"agent type unknown", map[string]string{"agent_type": "robot"}, "rule-agent-type", `agent type &#34;robot&#34;`},
		{"level unknown", map[string]string{"level": "extreme"}, "rule-level", "extreme"},
	} {
		form := formValues(t, body, action)
		for k, v := range c.set {
			form.Set(k, v)
		}
		status, got, _ := boss.post(action, form)
		if status != http.StatusBadRequest {
			t.Errorf("%s: add = %d; want 400", c.name, status)
			continue
		}
		errP := `<p class="error" id="` + c.id + `-error">`
		i := strings.Index(got, errP)
		if i < 0 || !strings.Contains(got[i:i+len(errP)+200], c.reason) {
			t.Errorf("%s: no error %q beside field %s:\n%s", c.name, c.reason, c.id, got)
		}
		if !strings.Contains(got, `id="`+c.id+`"`) || !strings.Contains(got, `aria-invalid="true" aria-describedby="`+c.id+`-error"`) {
			t.Errorf("%s: field %s is not marked invalid", c.name, c.id)
		}
		if a := c.set["approvers"]; a != "" && !strings.Contains(got, ">"+a+"</textarea>") {
			t.Errorf("%s: the approvers typed are not kept", c.name)
		}
		if n := len(rules()); n != 1 {
			t.Errorf("%s: %d rules saved; want the 1 there was", c.name, n)
		}
	}
	// A rule that matches every call is refused as a whole.
	status, got, _ := boss.post(action, formValues(t, body, action))
	if status != http.StatusBadRequest || !strings.Contains(got, `id="rule-error">`) || !strings.Contains(got, "matches every call") {
		t.Errorf("empty rule = %d\n%s", status, got)
	}

	form = formValues(t, body, action)
	form.Set("server", "github")
	form.Set("tool", "delete_repo")
	if status, body, _ := boss.post(action, form); status != http.StatusSeeOther {
		t.Fatalf("add second rule = %d\n%s", status, body)
	}
	_, body, _ = boss.get(page)
	first := formValues(t, body, page+"/1/remove")
	if status, body, _ := boss.post(page+"/1/remove", first); status != http.StatusSeeOther {
		t.Fatalf("remove rule 1 = %d\n%s", status, body)
	}
	got1 := rules()
	if len(got1) != 1 || got1[0].Tool != "delete_repo" {
		t.Fatalf("rules after remove = %+v; want the github/delete_repo rule", got1)
	}
	// The same form again: rule 1 is another rule now, and stays.
	if status, _, _ := boss.post(page+"/1/remove", first); status != http.StatusConflict {
		t.Errorf("stale remove = %d; want 409", status)
	}
	if len(rules()) != 1 {
		t.Error("a stale remove form removed a rule")
	}
}

func equalRule(a, b store.ApprovalRule) bool {
	return a.Level == b.Level && a.Server == b.Server && a.Tool == b.Tool && a.AgentType == b.AgentType &&
		slices.Equal(a.Approvers, b.Approvers) && a.StandingHours == b.StandingHours && a.TimeoutSeconds == b.TimeoutSeconds
}
