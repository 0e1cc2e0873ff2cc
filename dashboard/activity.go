package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/sdk"
)

// activityFilters are the audit log's filters the page passes on to the API, as the API names
// them.
var activityFilters = []string{"human", "agent", "server", "tool", "decision", "flag", "since", "until"}

// activityFlags are the anomaly flags the page's filter offers (package anomaly's names).
var activityFlags = []string{"new_tool", "new_server", "off_hours", "rate_spike", "denial_streak"}

type activityData struct {
	Filters map[string]string
	Flags   []string // the flag filter's choices
	Entries []sdk.AuditEntry
	// Next lists the older entries; Export downloads every matching entry as JSON Lines; Live
	// is the live tail's stream of the entries after the newest shown (first page only).
	Next, Export, Live string
}

func (d *Dashboard) activityPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	f := sdk.AuditQuery{Human: q.Get("human"), Agent: q.Get("agent"), Server: q.Get("server"), Tool: q.Get("tool"),
		Decision: q.Get("decision"), Flag: q.Get("flag"), Since: q.Get("since"), Until: q.Get("until"), Descending: true}
	page, err := d.api.ListAudit(as(r, v), r.PathValue("host"), f, sdk.PageRequest{Limit: 50, Cursor: q.Get("cursor")})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data := activityData{Filters: map[string]string{}, Flags: activityFlags, Entries: page.Items}
	keep := url.Values{}
	for _, k := range activityFilters {
		if s := q.Get(k); s != "" {
			data.Filters[k] = s
			keep.Set(k, s)
		}
	}
	base := Prefix + "/hosts/" + r.PathValue("host") + "/activity"
	data.Export = base + "/export"
	if len(keep) > 0 {
		data.Export += "?" + keep.Encode()
	}
	if q.Get("cursor") == "" {
		live := url.Values{}
		for k, vs := range keep {
			live[k] = vs
		}
		var newest int64
		if len(page.Items) > 0 {
			newest = page.Items[0].Seq
		}
		live.Set("after", strconv.FormatInt(newest, 10))
		data.Live = base + "/live?" + live.Encode()
	}
	if page.NextCursor != "" {
		keep.Set("cursor", page.NextCursor)
		data.Next = base + "?" + keep.Encode()
	}
	d.render(w, r, v, http.StatusOK, "activity", "Activity", r.PathValue("host"), data)
}

// exportActivity streams the matching entries as JSON Lines, straight from the admin API's
// audit route (its format=jsonl), so the export is the API's and memory stays bounded.
func (d *Dashboard) exportActivity(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := url.Values{}
	for _, k := range activityFilters {
		if s := r.URL.Query().Get(k); s != "" {
			q.Set(k, s)
		}
	}
	q.Set("format", "jsonl")
	target := "/api/v1/hosts/" + url.PathEscape(r.PathValue("host")) + "/audit?" + q.Encode()
	req, err := http.NewRequestWithContext(admin.WithPrincipal(r.Context(), v.principal()), http.MethodGet, target, nil)
	if err != nil {
		d.internalError(w, r, "export the audit log", err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="trustgate-audit-`+r.PathValue("host")+`.jsonl"`)
	d.apiRoutes.ServeHTTP(w, req)
}

type verifyData struct {
	Entries  int64
	LastHash string
	Broken   string
}

// verifyPage walks the host's hash chain as `trustgate audit verify` does and shows the result.
func (d *Dashboard) verifyPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	heads, err := d.cfg.Store.AuditHeads(r.Context())
	if err != nil {
		d.internalError(w, r, "read the audit heads", err)
		return
	}
	head := audit.Head{Host: host}
	for _, h := range heads {
		if h.Host == host {
			head = h
		}
	}
	var data verifyData
	sum, err := audit.Verify(r.Context(), d.cfg.Store, host, &head)
	var be *audit.BrokenError
	switch {
	case errors.As(err, &be):
		data.Broken = be.Error()
	case err != nil:
		d.internalError(w, r, "verify the audit log", err)
		return
	default:
		data.Entries, data.LastHash = int64(sum.Entries), sum.LastHash
	}
	d.render(w, r, v, http.StatusOK, "verify", "Audit chain", host, data)
}
