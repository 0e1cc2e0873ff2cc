package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/tenant"
)

// The host's pending approvals: the tools/calls its approval policy holds for a person, decided
// here through the admin API as the signed-in person (channel dashboard), and the standing
// approvals, revoked here.

// maxApprovalPages bounds how many pages of the admin API's lists one page view reads.
const maxApprovalPages = 10

// heldCallView is a held call as the page shows it.
type heldCallView struct {
	sdk.HeldCall
	// HumanEmail is the email of the agent's human ("" when it cannot be read).
	HumanEmail string
	// Level is the tool's level now ("" when the tool is gone).
	Level string
	// ArgumentsText is the call's arguments as indented JSON ("" for none).
	ArgumentsText string
}

type approvalsData struct {
	Held      []heldCallView
	Standing  []sdk.StandingApproval
	Truncated bool
	// Rules is how many approval rules the host has (the empty state says so).
	Rules int
}

func (d *Dashboard) approvalsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx, host := as(r, v), r.PathValue("host")
	h, err := d.api.GetHost(ctx, host)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	held, moreHeld, err := collectPages(func(p sdk.PageRequest) (sdk.Page[sdk.HeldCall], error) {
		return d.api.ListHeldCalls(ctx, host, p)
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	standing, moreStanding, err := collectPages(func(p sdk.PageRequest) (sdk.Page[sdk.StandingApproval], error) {
		return d.api.ListStandingApprovals(ctx, host, p)
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data := approvalsData{Held: make([]heldCallView, len(held)), Standing: standing, Truncated: moreHeld || moreStanding, Rules: len(h.Settings.ApprovalRules)}
	levels := map[[2]string]string{}
	for i, c := range held {
		data.Held[i] = heldCallView{HeldCall: c, Level: d.toolLevel(ctx, host, c.Server, c.Tool, levels), ArgumentsText: indentJSON(c.Arguments)}
		if u, err := d.cfg.Store.GetUser(r.Context(), host, c.Human); err == nil {
			data.Held[i].HumanEmail = u.Email
		}
	}
	d.render(w, r, v, http.StatusOK, "approvals", "Pending approvals", host, data)
}

// collectPages reads up to maxApprovalPages pages of a list; more reports that some were left.
func collectPages[T any](list func(sdk.PageRequest) (sdk.Page[T], error)) (items []T, more bool, err error) {
	req := sdk.PageRequest{Limit: 100}
	for range maxApprovalPages {
		page, err := list(req)
		if err != nil {
			return nil, false, err
		}
		items = append(items, page.Items...)
		if page.NextCursor == "" {
			return items, false, nil
		}
		req.Cursor = page.NextCursor
	}
	return items, true, nil
}

// toolLevel is the level of a held call's tool, read once per tool of a page ("" when the tool
// cannot be read, e.g. it was removed since).
func (d *Dashboard) toolLevel(ctx context.Context, host, server, tool string, seen map[[2]string]string) string {
	key := [2]string{server, tool}
	if l, ok := seen[key]; ok {
		return l
	}
	t, err := d.api.GetTool(ctx, host, server, tool)
	if err != nil {
		seen[key] = ""
		return ""
	}
	seen[key] = t.Level
	return t.Level
}

func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// ApprovalsURL is the address of a host's Pending approvals page (for the messages that tell
// approvers a call waits).
func ApprovalsURL(urls tenant.URLs, host string) string {
	return urls.Public.String() + Prefix + "/hosts/" + url.PathEscape(host) + "/approvals"
}

func approvalsURL(r *http.Request) string {
	return Prefix + "/hosts/" + r.PathValue("host") + "/approvals"
}

func (d *Dashboard) approveHeldCall(w http.ResponseWriter, r *http.Request, v *viewer) {
	if _, err := d.api.ApproveHeldCall(as(r, v), r.PathValue("host"), r.PathValue("id")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, approvalsURL(r)+"?done=call-approved", http.StatusSeeOther)
}

func (d *Dashboard) denyHeldCall(w http.ResponseWriter, r *http.Request, v *viewer) {
	if _, err := d.api.DenyHeldCall(as(r, v), r.PathValue("host"), r.PathValue("id")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, approvalsURL(r)+"?done=call-denied", http.StatusSeeOther)
}

func (d *Dashboard) revokeStandingApproval(w http.ResponseWriter, r *http.Request, v *viewer) {
	err := d.api.RevokeStandingApproval(as(r, v), r.PathValue("host"), r.PathValue("agent"), r.PathValue("server"), r.PathValue("tool"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, approvalsURL(r)+"?done=standing-revoked", http.StatusSeeOther)
}
