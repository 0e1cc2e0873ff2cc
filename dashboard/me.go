package dashboard

import (
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/sdk"
)

// The pages of any signed-in human: "My connections", the agents acting for them. The admin
// API is called with the human's host as the principal, so these handlers are what keeps a
// human to their own agents: every change first checks that the agent is the viewer's.

type meData struct {
	Agents []sdk.Agent
	// Activity is the viewer's recent activity, newest first.
	Activity []sdk.AuditEntry
	// Account is the host's account page (passkeys, password, sign-out of the consent pages);
	// without a session of the host's pages it asks the person to sign in there first.
	Account string
}

// myActivity is how many recent entries "My connections" shows.
const myActivity = 20

func (d *Dashboard) mePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := as(r, v)
	agents, err := sdk.Collect(d.api.Agents(ctx, v.Host, v.UserID))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	page, err := d.api.ListAudit(ctx, v.Host, sdk.AuditQuery{Human: v.UserID, Descending: true}, sdk.PageRequest{Limit: myActivity})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data := meData{Activity: page.Items, Account: d.cfg.URLs.Base(v.Host) + "/account"}
	for _, a := range agents {
		if a.HumanID == v.UserID && !a.Disabled { // the API's filter, checked again
			data.Agents = append(data.Agents, a)
		}
	}
	d.render(w, r, v, http.StatusOK, "me", "My connections", "", data)
}

// myAgent is the viewer's agent the path names; it writes a 404 for any other (another
// human's agent is not told apart from one that does not exist).
func (d *Dashboard) myAgent(w http.ResponseWriter, r *http.Request, v *viewer) (sdk.Agent, bool) {
	a, err := d.api.GetAgent(as(r, v), v.Host, r.PathValue("agent"))
	if err == nil && a.HumanID == v.UserID && !a.Disabled {
		return a, true
	}
	if status, _ := apiMessage(err); err != nil && status != http.StatusNotFound {
		d.apiError(w, r, v, err)
		return a, false
	}
	d.errorPage(w, r, v, http.StatusNotFound, "You have no such connection.")
	return a, false
}

var levelRank = map[string]int{"low": 1, "medium": 2, "high": 3}

// lowerLevel lowers the viewer's agent's level on a server; raising it is the consent page's
// business (the human grants a level there, when the agent connects).
func (d *Dashboard) lowerLevel(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, ok := d.myAgent(w, r, v)
	if !ok {
		return
	}
	server, level := r.PathValue("server"), r.PostFormValue("level")
	cur := ""
	for _, s := range a.Servers {
		if s.Server == server {
			cur = s.Level
		}
	}
	switch {
	case cur == "":
		d.errorPage(w, r, v, http.StatusNotFound, "This agent holds no level on that server.")
		return
	case levelRank[level] == 0:
		d.errorPage(w, r, v, http.StatusBadRequest, "The level is low, medium or high.")
		return
	case levelRank[level] >= levelRank[cur]:
		d.errorPage(w, r, v, http.StatusBadRequest, "Here you can only lower a level (it is "+cur+"); to raise it, connect the agent again and choose the level at consent.")
		return
	}
	if _, err := d.api.SetAgentLevel(as(r, v), v.Host, a.ID, server, level); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/me?done=level", http.StatusSeeOther)
}

// disconnectServer revokes the viewer's agent's access to one server.
func (d *Dashboard) disconnectServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, ok := d.myAgent(w, r, v)
	if !ok {
		return
	}
	if err := d.api.DeleteAgentLevel(as(r, v), v.Host, a.ID, r.PathValue("server")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/me?done=revoked", http.StatusSeeOther)
}

// disconnect revokes everything the viewer's agent holds and disables it at once: its tokens
// stop working at their next use.
func (d *Dashboard) disconnect(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, ok := d.myAgent(w, r, v)
	if !ok {
		return
	}
	if _, err := d.api.KillAgent(as(r, v), v.Host, a.ID); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/me?done=disconnected&agent="+url.QueryEscape(a.Name), http.StatusSeeOther)
}
