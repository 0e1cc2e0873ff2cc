package dashboard

import (
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/sdk"
)

func (d *Dashboard) agentsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	agents, err := sdk.Collect(d.api.Agents(as(r, v), r.PathValue("host"), ""))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "agents", "Agents", r.PathValue("host"), agents)
}

func (d *Dashboard) agentPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, err := d.api.GetAgent(as(r, v), r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "agent", a.Name, r.PathValue("host"), a)
}

func agentURL(r *http.Request) string {
	return Prefix + "/hosts/" + r.PathValue("host") + "/agents/" + url.PathEscape(r.PathValue("agent"))
}

func (d *Dashboard) setLevel(w http.ResponseWriter, r *http.Request, v *viewer) {
	if _, err := d.api.SetAgentLevel(as(r, v), r.PathValue("host"), r.PathValue("agent"), r.PathValue("server"), r.PostFormValue("level")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, agentURL(r)+"?done=level", http.StatusSeeOther)
}

func (d *Dashboard) revokeLevel(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := d.api.DeleteAgentLevel(as(r, v), r.PathValue("host"), r.PathValue("agent"), r.PathValue("server")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, agentURL(r)+"?done=revoked", http.StatusSeeOther)
}

func (d *Dashboard) killPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, err := d.api.GetAgent(as(r, v), r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "kill", "Kill switch: "+a.Name, r.PathValue("host"), a)
}

// kill is the kill switch, after its confirmation page.
func (d *Dashboard) kill(w http.ResponseWriter, r *http.Request, v *viewer) {
	if r.PostFormValue("confirm") != "yes" {
		d.errorPage(w, r, v, http.StatusBadRequest, "Check the box to confirm; the agent was not touched.")
		return
	}
	if _, err := d.api.KillAgent(as(r, v), r.PathValue("host"), r.PathValue("agent")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, agentURL(r)+"?done=killed", http.StatusSeeOther)
}
