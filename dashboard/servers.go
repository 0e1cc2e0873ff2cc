package dashboard

import (
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/sdk"
)

type serversData struct {
	Servers []sdk.Server
	// Imported is the result of an import just made.
	Imported *sdk.ImportResult
}

func (d *Dashboard) serversPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d.renderServers(w, r, v, http.StatusOK, nil)
}

func (d *Dashboard) renderServers(w http.ResponseWriter, r *http.Request, v *viewer, status int, imported *sdk.ImportResult) {
	servers, err := sdk.Collect(d.api.Servers(as(r, v), r.PathValue("host")))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, status, "servers", "MCP servers", r.PathValue("host"), serversData{Servers: servers, Imported: imported})
}

// importServer imports an MCP server by URL: its tools are discovered and classified.
func (d *Dashboard) importServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	res, err := d.api.ImportServer(as(r, v), r.PathValue("host"), sdk.ServerImport{
		URL: strings.TrimSpace(r.PostFormValue("url")), Key: strings.TrimSpace(r.PostFormValue("key")),
		Name: strings.TrimSpace(r.PostFormValue("name")),
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.renderServers(w, r, v, http.StatusCreated, &res)
}
