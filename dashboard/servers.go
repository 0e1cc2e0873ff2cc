package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/upstreamauth"
)

type serversData struct {
	Servers []sdk.Server
	// Form is the "Create server" form as last filled in (after a failed Connect).
	Form serverForm
	// Error is why Connect failed; NeedsCredentials when the upstream asked for credentials.
	Error            string
	NeedsCredentials bool
	// Upstream is what the server said of its authorization, when it asked for credentials:
	// with OAuth, the admin may sign in there to discover its tools now.
	Upstream upstreamauth.Inspection
	// CallbackURL is the host's callback, to register at an upstream with a client of its own.
	CallbackURL string
}

func (d *Dashboard) serversPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d.renderServers(w, r, v, http.StatusOK, serversData{})
}

func (d *Dashboard) renderServers(w http.ResponseWriter, r *http.Request, v *viewer, status int, data serversData) {
	servers, err := sdk.Collect(d.api.Servers(as(r, v), r.PathValue("host")))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data.Servers = servers
	if data.Form.Credential == "" {
		data.Form.Credential = "none"
	}
	data.Form.importing = true
	d.render(w, r, v, status, "servers", "MCP servers", r.PathValue("host"), data)
}

// serverForm is the "Create server" form: the URL, an optional key and name, and the
// credentials the upstream wants (none, a static header, or an OAuth client for each human's
// own sign-in at the upstream).
type serverForm struct {
	URL, Key, Name, Description string
	// Credential is "none", "header", "oauth" or "signin" (each human signs in at the server,
	// the gateway registering itself there).
	Credential              string
	HeaderName, HeaderValue string
	ClientID, ClientSecret  string
	// DiscoveryToken is the admin's own token at the server, from signing in there (the
	// import's discovery only; never stored).
	DiscoveryToken string
	// importing: the form of a new server (which offers the "signin" choice).
	importing bool
}

func readServerForm(r *http.Request) serverForm {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	sf := serverForm{URL: f("url"), Key: f("key"), Name: f("name"), Description: f("description"), Credential: f("credential"),
		HeaderName: f("header_name"), HeaderValue: r.PostFormValue("header_value"),
		ClientID: f("client_id"), ClientSecret: r.PostFormValue("client_secret"), DiscoveryToken: f("discovery_token"), importing: true}
	if sf.Credential == "" {
		sf.Credential = "none"
	}
	return sf
}

// request is the admin API's import request of the form.
// SignInChoice: the "each human signs in" choice is the import's only (a stored server
// without credentials that answers 401 gets it anyway).
func (sf serverForm) SignInChoice() bool { return sf.importing }

func (sf serverForm) request() (sdk.ServerImport, error) {
	req := sdk.ServerImport{URL: sf.URL, Key: sf.Key, Name: sf.Name, Description: sf.Description, DiscoveryToken: sf.DiscoveryToken}
	switch sf.Credential {
	case "none":
	case "header":
		req.Header = &sdk.CredentialHeader{Name: sf.HeaderName, Value: sf.HeaderValue}
	case "oauth":
		req.OAuthClient = &sdk.OAuthClient{ClientID: sf.ClientID, ClientSecret: sf.ClientSecret}
	case "signin":
		req.UpstreamSignIn = true
	default:
		return req, errors.New("credentials are none, a header, an OAuth client, or each human's sign-in")
	}
	return req, nil
}

// reviewData is the review of a server's discovered tools before the import.
type reviewData struct {
	Form   serverForm
	Result sdk.ImportResult
}

// reviewServer connects to the server (a dry run of the import: nothing is saved) and shows
// its discovered tools with the proposed level of each, to override and enable before Import.
// When the upstream asks for credentials the form comes back asking for them.
func (d *Dashboard) reviewServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	sf := readServerForm(r)
	req, err := sf.request()
	if err != nil {
		d.renderServers(w, r, v, http.StatusBadRequest, serversData{Form: sf, Error: err.Error()})
		return
	}
	req.DryRun = true
	res, err := d.api.ImportServer(as(r, v), r.PathValue("host"), req)
	if err != nil {
		status, msg := apiMessage(err)
		if status >= 500 && status != http.StatusBadGateway {
			d.apiError(w, r, v, err)
			return
		}
		data := serversData{Form: sf, Error: msg, NeedsCredentials: needsCredentials(msg)}
		if data.NeedsCredentials && sf.DiscoveryToken == "" {
			d.inspectUpstream(r, v, &data)
		}
		d.renderServers(w, r, v, status, data)
		return
	}
	d.render(w, r, v, http.StatusOK, "serverreview", "Review "+res.Server.Name, r.PathValue("host"), reviewData{Form: sf, Result: res})
}

// needsCredentials tells an upstream's answer 401 or 403 (the discovery's message) from other
// failures, so that the form offers the credentials.
func needsCredentials(msg string) bool {
	return strings.Contains(msg, "needs credentials") || strings.Contains(msg, "credentials were refused")
}

// toolChoice is what the admin chose for one tool in a table of tools: its level, whether it is
// enabled, and (for a flagged tool) whether its definition is approved.
type toolChoice struct {
	Level   string
	Enabled bool
}

// maxToolRows bounds the rows of a tools form.
const maxToolRows = 2000

// readToolChoices reads the rows tool-N (name), level-N and enabled-N of a tools table.
func readToolChoices(r *http.Request) (map[string]toolChoice, error) {
	out := map[string]toolChoice{}
	for i := 0; i < maxToolRows; i++ {
		n := strconv.Itoa(i)
		name, ok := r.PostForm["tool-"+n]
		if !ok {
			break
		}
		if len(name) != 1 || name[0] == "" {
			return nil, fmt.Errorf("row %d of the tools table has no tool name", i+1)
		}
		level := r.PostFormValue("level-" + n)
		switch level {
		case "low", "medium", "high":
		default:
			return nil, fmt.Errorf("tool %q: the level is low, medium or high", name[0])
		}
		out[name[0]] = toolChoice{Level: level, Enabled: r.PostFormValue("enabled-"+n) == "on"}
	}
	return out, nil
}

// importServer imports the reviewed server: its tools are saved disabled, then each gets the
// level and the enabled state chosen in the review table. A tool the upstream added since the
// review stays disabled (nobody reviewed it).
func (d *Dashboard) importServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	sf := readServerForm(r)
	req, err := sf.request()
	if err != nil {
		d.errorPage(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	choices, err := readToolChoices(r)
	if err != nil {
		d.errorPage(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	off := false
	req.EnableTools = &off
	ctx := as(r, v)
	host := r.PathValue("host")
	res, err := d.api.ImportServer(ctx, host, req)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	for _, t := range res.Tools {
		c, ok := choices[t.Name]
		if !ok || (c.Level == t.Level && !c.Enabled) {
			continue
		}
		up := sdk.ToolUpdate{}
		if c.Level != t.Level {
			up.Level = &c.Level
		}
		if c.Enabled {
			up.Enabled = &c.Enabled
			up.Approve = t.Flagged // the admin enabled it in the review, its flag reason in view
		}
		if _, err := d.api.UpdateTool(ctx, host, res.Server.Key, t.Name, up); err != nil {
			d.apiErrorAbout(w, r, v, fmt.Sprintf("The server was imported, but tool %q was not changed (it stays disabled): ", t.Name), err)
			return
		}
	}
	http.Redirect(w, r, serverPath(host, res.Server.Key)+"?done=server", http.StatusSeeOther)
}

func serverPath(host, server string) string {
	return Prefix + "/hosts/" + url.PathEscape(host) + "/servers/" + url.PathEscape(server)
}

// serverData is a server's page.
type serverData struct {
	Server sdk.Server
	Tools  []sdk.Tool
	// Sync is the result of a sync just made: what changed upstream.
	Sync *sdk.SyncResult
	// Credentials is the empty credentials form (nothing chosen: they are write-only).
	Credentials serverForm
}

func (d *Dashboard) serverData(r *http.Request, v *viewer) (serverData, error) {
	ctx := as(r, v)
	host, key := r.PathValue("host"), r.PathValue("server")
	s, err := d.api.GetServer(ctx, host, key)
	if err != nil {
		return serverData{}, err
	}
	tools, err := sdk.Collect(d.api.Tools(ctx, host, key))
	if err != nil {
		return serverData{}, err
	}
	return serverData{Server: s, Tools: tools}, nil
}

func (d *Dashboard) serverPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d.renderServer(w, r, v, http.StatusOK, nil)
}

func (d *Dashboard) renderServer(w http.ResponseWriter, r *http.Request, v *viewer, status int, sync *sdk.SyncResult) {
	data, err := d.serverData(r, v)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data.Sync = sync
	d.render(w, r, v, status, "server", data.Server.Name, r.PathValue("host"), data)
}

// updateServer saves the server's settings: name, description, URL, timeouts and DLP mode.
func (d *Dashboard) updateServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := func(k string) *string { s := strings.TrimSpace(r.PostFormValue(k)); return &s }
	req := sdk.ServerUpdate{Name: f("name"), Description: f("description"), DLPMode: f("dlp_mode")}
	ctx := as(r, v)
	host, key := r.PathValue("host"), r.PathValue("server")
	cur, err := d.api.GetServer(ctx, host, key)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	if u := f("url"); *u != cur.URL {
		req.URL = u // a server on network "any" keeps its URL unless an operator changes it
	}
	for k, dst := range map[string]**int64{"connect_timeout_ms": &req.ConnectTimeoutMS,
		"first_byte_timeout_ms": &req.FirstByteTimeoutMS, "idle_timeout_ms": &req.IdleTimeoutMS} {
		s := strings.TrimSpace(r.PostFormValue(k))
		if s == "" {
			s = "0"
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			d.errorPage(w, r, v, http.StatusBadRequest, "Timeouts are whole numbers of milliseconds (0 or empty: the default); nothing was changed.")
			return
		}
		*dst = &n
	}
	if _, err := d.api.UpdateServer(ctx, host, key, req); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=server-saved", http.StatusSeeOther)
}

// setCredentials replaces the server's stored credentials (write-only: they are never shown)
// or removes them.
func (d *Dashboard) setCredentials(w http.ResponseWriter, r *http.Request, v *viewer) {
	sf := readServerForm(r)
	var req sdk.ServerUpdate
	switch r.PostFormValue("credential") {
	case "header":
		req.Header = &sdk.CredentialHeader{Name: sf.HeaderName, Value: sf.HeaderValue}
	case "oauth":
		req.OAuthClient = &sdk.OAuthClient{ClientID: sf.ClientID, ClientSecret: sf.ClientSecret}
	case "none":
		req.ClearCredentials = true
	default:
		d.errorPage(w, r, v, http.StatusBadRequest, "Choose a header, an OAuth client, or none.")
		return
	}
	host, key := r.PathValue("host"), r.PathValue("server")
	if _, err := d.api.UpdateServer(as(r, v), host, key, req); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=credentials#credentials", http.StatusSeeOther)
}

// updateTools saves the tools table: each tool whose level or enabled state the admin changed.
func (d *Dashboard) updateTools(w http.ResponseWriter, r *http.Request, v *viewer) {
	choices, err := readToolChoices(r)
	if err != nil {
		d.errorPage(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	ctx := as(r, v)
	host, key := r.PathValue("host"), r.PathValue("server")
	tools, err := sdk.Collect(d.api.Tools(ctx, host, key))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	for _, t := range tools {
		c, ok := choices[t.Name]
		if !ok {
			continue
		}
		up := sdk.ToolUpdate{}
		if c.Level != t.Level {
			up.Level = &c.Level
		}
		if c.Enabled != t.Enabled && !(t.Flagged && c.Enabled) {
			up.Enabled = &c.Enabled
		}
		if up.Level == nil && up.Enabled == nil {
			continue
		}
		if _, err := d.api.UpdateTool(ctx, host, key, t.Name, up); err != nil {
			d.apiErrorAbout(w, r, v, fmt.Sprintf("Tool %q (the tools before it in the table were saved): ", t.Name), err)
			return
		}
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=tools#tools", http.StatusSeeOther)
}

// approveTool accepts a flagged tool's definition and enables it.
func (d *Dashboard) approveTool(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, key := r.PathValue("host"), r.PathValue("server")
	if _, err := d.api.UpdateTool(as(r, v), host, key, r.PathValue("tool"), sdk.ToolUpdate{Approve: true}); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=approved#tools", http.StatusSeeOther)
}

func (d *Dashboard) deleteTool(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, key := r.PathValue("host"), r.PathValue("server")
	if err := d.api.DeleteTool(as(r, v), host, key, r.PathValue("tool")); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=tool-removed#tools", http.StatusSeeOther)
}

// addTool adds a tool by hand (one the upstream does not list to discovery).
func (d *Dashboard) addTool(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, key := r.PathValue("host"), r.PathValue("server")
	_, err := d.api.CreateTool(as(r, v), host, key, sdk.ToolCreate{
		Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description")),
		Level: r.PostFormValue("level"), Enabled: r.PostFormValue("enabled") == "on",
	})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, serverPath(host, key)+"?done=tool-added#tools", http.StatusSeeOther)
}

// syncServer re-discovers the server's tools and shows what changed upstream.
func (d *Dashboard) syncServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	res, err := d.api.SyncServer(as(r, v), r.PathValue("host"), r.PathValue("server"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.renderServer(w, r, v, http.StatusOK, &res)
}

func (d *Dashboard) deleteServerPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := d.api.GetServer(as(r, v), r.PathValue("host"), r.PathValue("server"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "deleteserver", "Delete "+s.Key, r.PathValue("host"), s)
}

// deleteServer deletes a server once its key was typed to confirm.
func (d *Dashboard) deleteServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, key := r.PathValue("host"), r.PathValue("server")
	if strings.TrimSpace(r.PostFormValue("confirm")) != key {
		d.errorPage(w, r, v, http.StatusBadRequest, "Type the server's key exactly to confirm; nothing was deleted.")
		return
	}
	if err := d.api.DeleteServer(as(r, v), host, key); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+url.PathEscape(host)+"/servers?done=server-deleted", http.StatusSeeOther)
}

// apiErrorAbout shows the admin API's answer to a change that failed, after what.
func (d *Dashboard) apiErrorAbout(w http.ResponseWriter, r *http.Request, v *viewer, what string, err error) {
	status, msg := apiMessage(err)
	if status >= 500 {
		d.log.Error("dashboard: admin API call failed", "path", r.URL.Path, "err", err)
	}
	d.errorPage(w, r, v, status, what+msg)
}
