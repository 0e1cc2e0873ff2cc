package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/trustgate/trustgate/sdk"
)

type humansData struct {
	Humans []sdk.Human
	// Added is a human just added, with their one-time invitation link.
	Added *sdk.Human
}

func (d *Dashboard) humansPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d.renderHumans(w, r, v, http.StatusOK, nil)
}

func (d *Dashboard) renderHumans(w http.ResponseWriter, r *http.Request, v *viewer, status int, added *sdk.Human) {
	humans, err := sdk.Collect(d.api.Humans(as(r, v), r.PathValue("host")))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, status, "humans", "Humans", r.PathValue("host"), humansData{Humans: humans, Added: added})
}

// addHuman pre-authorizes a human by email and shows their invitation link once.
func (d *Dashboard) addHuman(w http.ResponseWriter, r *http.Request, v *viewer) {
	h, err := d.api.CreateHuman(as(r, v), r.PathValue("host"), sdk.HumanCreate{
		Email: strings.TrimSpace(r.PostFormValue("email")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Admin: r.PostFormValue("admin") == "on", Invite: true,
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.renderHumans(w, r, v, http.StatusCreated, &h)
}

type humanData struct {
	Human   sdk.Human
	Servers []sdk.Server
	Agents  []sdk.Agent
}

func (d *Dashboard) humanPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx, host := as(r, v), r.PathValue("host")
	h, err := d.api.GetHuman(ctx, host, r.PathValue("human"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	servers, err := sdk.Collect(d.api.Servers(ctx, host))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	agents, err := sdk.Collect(d.api.Agents(ctx, host, h.ID))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "human", h.Email, host, humanData{Human: h, Servers: servers, Agents: agents})
}

func humanURL(r *http.Request) string {
	return Prefix + "/hosts/" + r.PathValue("host") + "/humans/" + url.PathEscape(r.PathValue("human"))
}

// grant sets the human's ceiling on each server chosen in the form.
func (d *Dashboard) grant(w http.ResponseWriter, r *http.Request, v *viewer) {
	servers := r.PostForm["server"]
	if len(servers) == 0 {
		d.errorPage(w, r, v, http.StatusBadRequest, "Choose at least one server.")
		return
	}
	ceiling := r.PostFormValue("ceiling")
	for _, s := range servers {
		if _, err := d.api.SetGrant(as(r, v), r.PathValue("host"), r.PathValue("human"), s, ceiling); err != nil {
			d.apiError(w, r, v, err)
			return
		}
	}
	http.Redirect(w, r, humanURL(r)+"?done=granted", http.StatusSeeOther)
}

func (d *Dashboard) revokeGrant(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := d.api.DeleteGrant(as(r, v), r.PathValue("host"), r.PathValue("human"), r.PathValue("server")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, humanURL(r)+"?done=revoked", http.StatusSeeOther)
}
