package dashboard

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/trustgate/trustgate/sdk"
)

// whyData is the Why? page: the question asked (the form keeps it), and the admin API's
// explanation once all three names are given; Entry is the denied activity entry the question
// came from, when it did.
type whyData struct {
	Agent, Server, Tool string
	Explanation         *sdk.Explanation
	Entry               *sdk.AuditEntry
}

// Then compares the entry's decision with the explanation of now: "same" (the same denial
// holds), "allowed" (allowed now) or "other" (denied now for another reason).
func (w whyData) Then() string {
	switch {
	case w.Entry == nil || w.Explanation == nil:
		return ""
	case w.Explanation.Allowed:
		return "allowed"
	case w.Explanation.Reason == w.EntryCode():
		return "same"
	}
	return "other"
}

// EntryCode is the entry's reason code (an audit entry's reason is "code: the message").
func (w whyData) EntryCode() string {
	if w.Entry == nil {
		return ""
	}
	code, _, _ := strings.Cut(w.Entry.Reason, ":")
	return strings.TrimSpace(code)
}

// EntryMessage is what the entry's reason said beyond its code.
func (w whyData) EntryMessage() string {
	if w.Entry == nil {
		return ""
	}
	_, msg, _ := strings.Cut(w.Entry.Reason, ":")
	return strings.TrimSpace(msg)
}

// whyPage answers "Why may (or may not) this agent call this tool?" from the admin API's
// explain route — the one `trustgate admin explain` asks: the decision, the path in words, the
// relationships and SpiceDB's trace. From a denied entry of Activity (entry=its number) the
// page shows that entry's decision beside it and says whether it still holds.
func (d *Dashboard) whyPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	data := whyData{Agent: q.Get("agent"), Server: q.Get("server"), Tool: q.Get("tool")}
	if data.Agent != "" && data.Server != "" && data.Tool != "" {
		x, err := d.api.Explain(as(r, v), r.PathValue("host"), data.Agent, data.Server, data.Tool)
		if err != nil {
			d.apiError(w, r, v, err)
			return
		}
		data.Explanation = &x
		if seq, err := strconv.ParseInt(q.Get("entry"), 10, 64); err == nil && seq > 0 {
			e, err := d.deniedEntry(r, v, data, seq)
			if err != nil {
				d.apiError(w, r, v, err)
				return
			}
			data.Entry = e
		}
	}
	d.render(w, r, v, http.StatusOK, "why", "Why?", r.PathValue("host"), data)
}

// maxWhyEntryPages bounds the pages of the audit log read to find an entry (newest first).
const maxWhyEntryPages = 5

// deniedEntry finds the denied tool call seq of the agent, server and tool in the host's
// audit log (nil when it is not there, or too far back).
func (d *Dashboard) deniedEntry(r *http.Request, v *viewer, w whyData, seq int64) (*sdk.AuditEntry, error) {
	query := sdk.AuditQuery{Agent: w.Agent, Server: w.Server, Tool: w.Tool, Decision: "denied", Descending: true}
	p := sdk.PageRequest{Limit: 200}
	for range maxWhyEntryPages {
		page, err := d.api.ListAudit(as(r, v), r.PathValue("host"), query, p)
		if err != nil {
			return nil, err
		}
		for i, e := range page.Items {
			if e.Seq == seq {
				return &page.Items[i], nil
			}
			if e.Seq < seq {
				return nil, nil
			}
		}
		if page.NextCursor == "" {
			return nil, nil
		}
		p.Cursor = page.NextCursor
	}
	return nil, nil
}
