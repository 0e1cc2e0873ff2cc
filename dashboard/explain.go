package dashboard

import (
	"net/http"

	"github.com/trustgate/trustgate/sdk"
)

// whyData is the Why? page: the question asked (the form keeps it), and the admin API's
// explanation once all three names are given.
type whyData struct {
	Agent, Server, Tool string
	Explanation         *sdk.Explanation
}

// whyPage answers "Why may (or may not) this agent call this tool?" from the admin API's
// explain route: the decision, the path in words, the relationships and SpiceDB's trace.
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
	}
	d.render(w, r, v, http.StatusOK, "why", "Why?", r.PathValue("host"), data)
}
