package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/trustgate/trustgate/sdk"
)

// The host's approval rules (settings.approval_rules): listed in the order they apply, added
// and removed here through the admin API's host update, as `trustgate admin host approvals
// add` and `remove` do. A value the API refuses is shown beside its field (the problem's
// field).

// approvalRuleForm is the "Add a rule" form as typed, and the problem of each of its fields.
type approvalRuleForm struct {
	Level, Server, Tool, AgentType, Approvers, StandingHours, TimeoutSeconds string
	// Errors maps a field's form name (or "" for the rule as a whole) to its problem.
	Errors map[string]string
}

// Err is the problem of the field named k ("" when it has none).
func (f approvalRuleForm) Err(k string) string { return f.Errors[k] }

type approvalRulesData struct {
	Rules []sdk.ApprovalRule
	Form  approvalRuleForm
	// Error is a problem that is not about one field of the form.
	Error string
}

func approvalRulesPath(host string) string {
	return Prefix + "/hosts/" + host + "/approval-rules"
}

func (d *Dashboard) approvalRulesPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d.renderApprovalRules(w, r, v, http.StatusOK, approvalRulesData{})
}

func (d *Dashboard) renderApprovalRules(w http.ResponseWriter, r *http.Request, v *viewer, status int, data approvalRulesData) {
	h, err := d.api.GetHost(as(r, v), r.PathValue("host"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data.Rules = h.Settings.ApprovalRules
	d.render(w, r, v, status, "approvalrules", "Approval rules", r.PathValue("host"), data)
}

// readApprovalRule reads the form into a rule; the numbers that are not numbers are field
// problems of the form (the API checks everything else).
func readApprovalRule(r *http.Request) (sdk.ApprovalRule, approvalRuleForm) {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	form := approvalRuleForm{Level: f("level"), Server: f("server"), Tool: f("tool"), AgentType: f("agent_type"),
		Approvers: r.PostFormValue("approvers"), StandingHours: f("standing_hours"), TimeoutSeconds: f("timeout_seconds"),
		Errors: map[string]string{}}
	rule := sdk.ApprovalRule{Level: form.Level, Server: form.Server, Tool: form.Tool, AgentType: form.AgentType,
		Approvers: domainList(form.Approvers)}
	if len(rule.Approvers) == 0 {
		rule.Approvers = nil
	}
	for k, dst := range map[string]*int{"standing_hours": &rule.StandingHours, "timeout_seconds": &rule.TimeoutSeconds} {
		s := f(k)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			form.Errors[k] = "Write a whole number."
			continue
		}
		*dst = n
	}
	return rule, form
}

// addApprovalRule adds the form's rule after the host's rules (the first that matches a call
// applies).
func (d *Dashboard) addApprovalRule(w http.ResponseWriter, r *http.Request, v *viewer) {
	rule, form := readApprovalRule(r)
	if len(form.Errors) > 0 {
		d.renderApprovalRules(w, r, v, http.StatusBadRequest, approvalRulesData{Form: form})
		return
	}
	ctx, host := as(r, v), r.PathValue("host")
	h, err := d.api.GetHost(ctx, host)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	rules := append(slices.Clone(h.Settings.ApprovalRules), rule)
	if _, err := d.api.UpdateHost(ctx, host, sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{ApprovalRules: &rules}}); err != nil {
		status, msg := apiMessage(err)
		if status >= 500 {
			d.apiError(w, r, v, err)
			return
		}
		data := approvalRulesData{Form: form}
		if k, ok := ruleField(apiField(err), len(rules)-1); ok {
			form.Errors[k] = upperFirst(msg)
		} else {
			data.Error = msg
		}
		d.renderApprovalRules(w, r, v, status, data)
		return
	}
	http.Redirect(w, r, approvalRulesPath(host)+"?done=rule-added", http.StatusSeeOther)
}

// ruleField is the form name of an API problem's field when it is about rule i: "level",
// "approvers" … or "" for the rule as a whole.
func ruleField(field string, i int) (string, bool) {
	rest, ok := strings.CutPrefix(field, fmt.Sprintf("approval_rules[%d]", i))
	if !ok {
		return "", false
	}
	if rest == "" {
		return "", true
	}
	name, ok := strings.CutPrefix(rest, ".")
	switch name {
	case "level", "server", "tool", "agent_type", "approvers", "standing_hours", "timeout_seconds":
		return name, ok
	}
	return "", false
}

// apiField is the field an admin API problem is about ("" when none).
func apiField(err error) string {
	var e *sdk.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// removeApprovalRule removes rule number n (from 1) when it is still the rule the page showed:
// the form carries the rule, so that a list another admin changed meanwhile is not cut in the
// wrong place.
func (d *Dashboard) removeApprovalRule(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx, host := as(r, v), r.PathValue("host")
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		d.errorPage(w, r, v, http.StatusNotFound, "There is no such approval rule.")
		return
	}
	h, err := d.api.GetHost(ctx, host)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	rules := h.Settings.ApprovalRules
	if n < 1 || n > len(rules) || ruleFingerprint(rules[n-1]) != r.PostFormValue("rule") {
		d.errorPage(w, r, v, http.StatusConflict, "The approval rules changed since the page was loaded; nothing was removed. Look at them again.")
		return
	}
	rules = slices.Delete(slices.Clone(rules), n-1, n)
	if _, err := d.api.UpdateHost(ctx, host, sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{ApprovalRules: &rules}}); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, approvalRulesPath(host)+"?done=rule-removed", http.StatusSeeOther)
}

// ruleFingerprint identifies a rule's content in the remove form.
func ruleFingerprint(r sdk.ApprovalRule) string {
	return hashSecret(fmt.Sprintf("%q %q %q %q %q %d %d", r.Level, r.Server, r.Tool, r.AgentType, r.Approvers, r.StandingHours, r.TimeoutSeconds))
}
