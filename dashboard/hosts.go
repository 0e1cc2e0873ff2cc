package dashboard

import (
	"net/http"
	"sort"
	"strings"

	"github.com/trustgate/trustgate/sdk"
)

func (d *Dashboard) hostsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	hosts, err := sdk.Collect(d.api.Hosts(as(r, v)))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "hosts", "Hosts", "", hosts)
}

// createHost creates a host: the prefix gets a generated suffix unless "exact" is checked.
func (d *Dashboard) createHost(w http.ResponseWriter, r *http.Request, v *viewer) {
	req := sdk.HostCreate{
		Key:   strings.TrimSpace(r.PostFormValue("key")),
		Exact: r.PostFormValue("exact") == "on",
		Name:  strings.TrimSpace(r.PostFormValue("name")),
	}
	h, err := d.api.CreateHost(as(r, v), req)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+h.Key+"?done=host-created", http.StatusSeeOther)
}

// client is one MCP client's configuration snippet, for the host page.
type client struct {
	ID, Name, Where, Snippet string
}

var clientNames = map[string]string{"cursor": "Cursor", "claude_desktop": "Claude Desktop", "vscode": "VS Code", "claude_code": "Claude Code"}

type hostData struct {
	Host    sdk.Host
	Clients []client
	Tokens  []sdk.Token
	// NewToken is a token just created: its secret is shown this once.
	NewToken *sdk.TokenCreated
	// Settings is the settings form's view of the host's settings.
	Settings settingsForm
	// SetAside lists the host's relationship changes the authorization backend refused for
	// good (SetAsideTruncated: more than a page view reads).
	SetAside          []sdk.SetAsideChange
	SetAsideTruncated bool
}

func (d *Dashboard) hostData(r *http.Request, v *viewer) (hostData, error) {
	ctx := as(r, v)
	key := r.PathValue("host")
	h, err := d.api.GetHost(ctx, key)
	if err != nil {
		return hostData{}, err
	}
	tokens, err := sdk.Collect(d.api.HostTokens(ctx, key))
	if err != nil {
		return hostData{}, err
	}
	data := hostData{Host: h, Tokens: tokens, Settings: newSettingsForm(h.Settings)}
	if data.SetAside, data.SetAsideTruncated, err = d.setAsideChanges(r, v, h); err != nil {
		return hostData{}, err
	}
	for id, c := range h.Clients {
		data.Clients = append(data.Clients, client{ID: id, Name: clientNames[id], Where: c.Where, Snippet: c.Snippet})
	}
	sort.Slice(data.Clients, func(i, j int) bool { return data.Clients[i].Name < data.Clients[j].Name })
	return data, nil
}

func (d *Dashboard) hostPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	data, err := d.hostData(r, v)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "host", data.Host.Name, data.Host.Key, data)
}

// createToken creates a host API token and shows its secret once, on the host page.
func (d *Dashboard) createToken(w http.ResponseWriter, r *http.Request, v *viewer) {
	tok, err := d.api.CreateHostToken(as(r, v), r.PathValue("host"), sdk.TokenCreate{
		Name: strings.TrimSpace(r.PostFormValue("name")), Scope: r.PostFormValue("scope"),
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data, err := d.hostData(r, v)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data.NewToken = &tok
	d.render(w, r, v, http.StatusCreated, "host", data.Host.Name, data.Host.Key, data)
}

func (d *Dashboard) revokeToken(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := d.api.DeleteHostToken(as(r, v), r.PathValue("host"), r.PathValue("token")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+r.PathValue("host")+"?done=token-revoked#tokens", http.StatusSeeOther)
}

func (d *Dashboard) deleteHostPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	h, err := d.api.GetHost(as(r, v), r.PathValue("host"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "deletehost", "Delete "+h.Key, h.Key, h)
}

// deleteHost deletes a host once its key was typed to confirm.
func (d *Dashboard) deleteHost(w http.ResponseWriter, r *http.Request, v *viewer) {
	key := r.PathValue("host")
	if strings.TrimSpace(r.PostFormValue("confirm")) != key {
		d.errorPage(w, r, v, http.StatusBadRequest, "Type the host's key exactly to confirm; nothing was deleted.")
		return
	}
	if err := d.api.DeleteHost(as(r, v), key); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts?done=host-deleted", http.StatusSeeOther)
}
