package dashboard

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
)

// Create server for an MCP server that requires its own sign-in: when Connect meets a 401
// with OAuth metadata, the admin signs in at the server (with the OAuth client they give, or
// the gateway's registration there when the server offers one) and comes back to the review
// table with the tools discovered with their own token. The authorization in progress lives
// in a sealed cookie bound to the dashboard session; the token goes to the import's discovery
// (the admin API's discovery_token) and is never stored. The upstream sends the browser back
// to the host's callback (the one consent uses, so one registration serves both), which sends
// it on here.

// UpstreamCallbackURL is where the host's upstream callback sends an admin's sign-in on.
func UpstreamCallbackURL(urls tenant.URLs, host string) string {
	return urls.Public.String() + Prefix + "/hosts/" + url.PathEscape(host) + "/upstream-callback"
}

// upstreamCookie is the cookie of an admin's authorization in progress at an upstream.
func (d *Dashboard) upstreamCookie() string {
	if d.secure {
		return "__Host-tg_dash_upstream"
	}
	return "tg_dash_upstream"
}

// importNetwork is the network the admin API gives a server this viewer imports: any for an
// operator (the API's global caller), the host's networks for a host admin.
func importNetwork(v *viewer) string {
	if v.principal().Host == "" {
		return store.NetworkAny
	}
	return store.NetworkHost
}

func (d *Dashboard) callbackURL(host string) string {
	return d.cfg.URLs.Base(host) + oauthserver.UpstreamCallbackPath
}

// inspectUpstream reads, for a server that asked for credentials, whether the admin can sign
// in at it (best effort: without it, the form offers the credentials alone).
func (d *Dashboard) inspectUpstream(r *http.Request, v *viewer, data *serversData) {
	if d.cfg.Upstream == nil || data.Form.URL == "" {
		return
	}
	in, err := d.cfg.Upstream.Inspect(r.Context(), data.Form.URL, importNetwork(v))
	if err != nil {
		d.log.Info("dashboard: upstream authorization not readable", "host", r.PathValue("host"), "err", err)
		return
	}
	data.Upstream = in
	data.CallbackURL = d.callbackURL(r.PathValue("host"))
}

// upstreamSignIn sends the admin to sign in at the server of the Create server form.
func (d *Dashboard) upstreamSignIn(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	sf := readServerForm(r)
	sf.DiscoveryToken = ""
	fail := func(status int, msg string) {
		data := serversData{Form: sf, Error: msg, NeedsCredentials: true}
		d.inspectUpstream(r, v, &data)
		d.renderServers(w, r, v, status, data)
	}
	if d.cfg.Upstream == nil {
		d.errorPage(w, r, v, http.StatusNotFound, "This gateway does not sign in at MCP servers.")
		return
	}
	var client *upstreamauth.OAuthClient
	switch {
	case sf.Credential == "oauth" || (sf.Credential != "signin" && sf.ClientID != ""):
		sf.Credential = "oauth"
		if sf.ClientID == "" {
			fail(http.StatusBadRequest, "Enter the OAuth client id registered at the server's authorization server.")
			return
		}
		client = &upstreamauth.OAuthClient{ClientID: sf.ClientID, ClientSecret: sf.ClientSecret}
	default:
		sf.Credential = "signin"
	}
	if _, err := url.ParseRequestURI(sf.URL); err != nil {
		fail(http.StatusBadRequest, "Enter the server's URL.")
		return
	}
	state, err := json.Marshal(sf)
	if err != nil {
		d.internalError(w, r, "encode the server form", err)
		return
	}
	authURL, sealed, err := d.cfg.Upstream.BeginAdmin(r.Context(), upstreamauth.AdminBegin{
		Host: host, URL: sf.URL, Network: importNetwork(v), Client: client,
		RedirectURI: d.callbackURL(host), Binding: v.sessionHash, Context: state,
	})
	switch {
	case errors.Is(err, upstreamauth.ErrNoClient):
		sf.Credential = "oauth"
		fail(http.StatusBadRequest, "The server's authorization server offers no registration: enter the OAuth client id (and secret) registered there for trustgate, with the redirect URI shown below.")
		return
	case err != nil:
		d.log.Info("dashboard: upstream sign-in cannot start", "host", host, "err", err)
		fail(http.StatusBadGateway, "trustgate could not start the sign-in at the server: it publishes no authorization it can use, or does not answer.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: d.upstreamCookie(), Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		MaxAge: int(upstreamauth.StateTTL.Seconds()), HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
	// A page with a link rather than a redirect: the form's answer may not take the browser to
	// another origin (the Content-Security-Policy's form-action 'self'), and the admin sees
	// where they are sent.
	at, _ := url.Parse(authURL)
	d.render(w, r, v, http.StatusOK, "upstreamsignin", "Sign in at the server", host, upstreamSignInData{URL: authURL, At: at.Host, Server: sf.URL})
}

type upstreamSignInData struct {
	// URL is the upstream's authorization URL; At its host; Server the MCP server's URL.
	URL, At, Server string
}

// upstreamCallback finishes the admin's sign-in at the server and shows the review table of
// the tools discovered with their token.
func (d *Dashboard) upstreamCallback(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: d.upstreamCookie(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
	if d.cfg.Upstream == nil {
		d.errorPage(w, r, v, http.StatusNotFound, "This gateway does not sign in at MCP servers.")
		return
	}
	var sealed []byte
	if c, err := r.Cookie(d.upstreamCookie()); err == nil && len(c.Value) <= 16<<10 {
		sealed, _ = base64.RawURLEncoding.DecodeString(c.Value)
	}
	code := q.Get("code")
	if q.Get("error") != "" {
		code = ""
	}
	fin, err := d.cfg.Upstream.FinishAdmin(r.Context(), sealed, host, v.sessionHash, q.Get("state"), code)
	switch {
	case errors.Is(err, upstreamauth.ErrState):
		d.errorPage(w, r, v, http.StatusBadRequest, "This sign-in at the server has expired or was started in another session. Start again from Create server.")
		return
	case q.Get("error") != "":
		d.errorPage(w, r, v, http.StatusForbidden, "The server's sign-in was not completed ("+truncateText(q.Get("error"), 64)+"); nothing was imported. Start again from Create server.")
		return
	case err != nil:
		d.log.Warn("dashboard: upstream token exchange failed", "host", host, "err", err)
		d.errorPage(w, r, v, http.StatusBadGateway, "trustgate could not obtain a token from the server's sign-in; nothing was imported. Start again from Create server.")
		return
	}
	var sf serverForm
	if err := json.Unmarshal(fin.Context, &sf); err != nil {
		d.internalError(w, r, "decode the server form", err)
		return
	}
	sf.importing, sf.URL, sf.DiscoveryToken = true, fin.URL, fin.AccessToken
	req, err := sf.request()
	if err != nil {
		d.renderServers(w, r, v, http.StatusBadRequest, serversData{Form: sf, Error: err.Error()})
		return
	}
	req.DryRun = true
	res, err := d.api.ImportServer(as(r, v), host, req)
	if err != nil {
		status, msg := apiMessage(err)
		if status >= 500 && status != http.StatusBadGateway {
			d.apiError(w, r, v, err)
			return
		}
		sf.DiscoveryToken = ""
		d.renderServers(w, r, v, status, serversData{Form: sf, Error: "Signed in at the server, but: " + msg})
		return
	}
	d.render(w, r, v, http.StatusOK, "serverreview", "Review "+res.Server.Name, host, reviewData{Form: sf, Result: res})
}

func truncateText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
