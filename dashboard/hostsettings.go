package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/sdk"
)

// settingsForm is what the host's settings form shows beyond the plain fields: the result
// filter's detectors and custom patterns, and the rate limits as rows (with empty rows to add).
type settingsForm struct {
	Kinds    []kindChoice
	Patterns string
	Limits   []sdk.RateLimit
}

type kindChoice struct {
	Kind string
	On   bool
}

// emptyLimitRows are the blank rate limit rows the form offers for new limits.
const emptyLimitRows = 2

func newSettingsForm(s sdk.HostSettings) settingsForm {
	f := settingsForm{Limits: append(slices.Clone(s.RateLimits), make([]sdk.RateLimit, emptyLimitRows)...)}
	for _, k := range dlp.Kinds() {
		// No kinds chosen means every kind: the boxes show what runs.
		f.Kinds = append(f.Kinds, kindChoice{Kind: string(k), On: len(s.DLP.Kinds) == 0 || slices.Contains(s.DLP.Kinds, string(k))})
	}
	var b strings.Builder
	for _, p := range s.DLP.Patterns {
		b.WriteString(p.Name + " = " + p.Regexp + "\n")
	}
	f.Patterns = b.String()
	return f
}

// rateScopes are the scopes of a rate limit, for the form's select.
var rateScopes = []string{"agent", "agent_tool", "human", "host"}

// maxLimitRows bounds the rate limit rows read from a form.
const maxLimitRows = 200

// domainList splits a list of domains typed with commas, spaces or lines.
func domainList(s string) []string {
	out := strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
	if out == nil {
		out = []string{}
	}
	return out
}

// readSettings reads the host's settings form into a patch of every setting it shows (a
// checkbox left unchecked is off, an emptied rate limit row is removed).
func readSettings(r *http.Request) (*sdk.HostSettingsPatch, error) {
	on := func(k string) *bool { b := r.PostFormValue(k) == "on"; return &b }
	str := func(k string) *string { s := strings.TrimSpace(r.PostFormValue(k)); return &s }
	allowed, signIn := domainList(r.PostFormValue("allowed_email_domains")), domainList(r.PostFormValue("sign_in_domains"))
	p := &sdk.HostSettingsPatch{
		AllowedEmailDomains: &allowed,
		SignInDomains:       &signIn,
		DynamicMCPs:         on("dynamic_mcps"),
		AutoEnableNewTools:  on("auto_enable_new_tools"),
		AuditArguments:      on("audit_arguments"),
		ToolVisibility:      str("tool_visibility"),
		DenialFormat:        str("denial_format"),
		ArgumentValidation:  str("argument_validation"),
	}
	for k, dst := range map[string]**int{"access_token_ttl_seconds": &p.AccessTokenTTLSeconds,
		"session_idle_ttl_seconds": &p.SessionIdleTTLSeconds, "session_max_ttl_seconds": &p.SessionMaxTTLSeconds} {
		n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue(k)))
		if err != nil {
			return nil, fmt.Errorf("lifetimes are whole numbers of seconds")
		}
		*dst = &n
	}
	d := sdk.DLPSettings{Mode: strings.TrimSpace(r.PostFormValue("dlp_mode")), Kinds: []string{}, Patterns: []sdk.DLPPattern{}}
	kinds := r.PostForm["dlp_kind"]
	if len(kinds) == 0 {
		return nil, fmt.Errorf("choose at least one built-in detector of result filtering (all of them is the default)")
	}
	if len(kinds) < len(dlp.Kinds()) {
		d.Kinds = kinds
	}
	for i, line := range strings.Split(r.PostFormValue("dlp_patterns"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, re, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("custom pattern on line %d: write name = regular expression", i+1)
		}
		d.Patterns = append(d.Patterns, sdk.DLPPattern{Name: strings.TrimSpace(name), Regexp: strings.TrimSpace(re)})
	}
	p.DLP = &d
	limits := []sdk.RateLimit{}
	for i := 0; i < maxLimitRows; i++ {
		n := "rate-" + strconv.Itoa(i) + "-"
		if _, ok := r.PostForm[n+"scope"]; !ok {
			break
		}
		per := strings.TrimSpace(r.PostFormValue(n + "per_minute"))
		if per == "" {
			continue // an empty row, or one emptied to remove the limit
		}
		l := sdk.RateLimit{Scope: r.PostFormValue(n + "scope"), Server: strings.TrimSpace(r.PostFormValue(n + "server")), Tool: strings.TrimSpace(r.PostFormValue(n + "tool"))}
		var err error
		if l.PerMinute, err = strconv.Atoi(per); err != nil {
			return nil, fmt.Errorf("rate limit %d: calls per minute is a whole number", len(limits)+1)
		}
		if b := strings.TrimSpace(r.PostFormValue(n + "burst")); b != "" {
			if l.Burst, err = strconv.Atoi(b); err != nil {
				return nil, fmt.Errorf("rate limit %d: the burst is a whole number", len(limits)+1)
			}
		}
		limits = append(limits, l)
	}
	p.RateLimits = &limits
	return p, nil
}

// updateHost saves the settings form: every setting it shows, in one change the admin API
// checks whole (nothing is saved when one is refused).
func (d *Dashboard) updateHost(w http.ResponseWriter, r *http.Request, v *viewer) {
	p, err := readSettings(r)
	if err != nil {
		d.errorPage(w, r, v, http.StatusBadRequest, upperFirst(err.Error())+"; nothing was changed.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if _, err := d.api.UpdateHost(as(r, v), r.PathValue("host"), sdk.HostUpdate{Name: &name, Settings: p}); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+r.PathValue("host")+"?done=settings", http.StatusSeeOther)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (d *Dashboard) stopPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	h, err := d.api.GetHost(as(r, v), r.PathValue("host"))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "stop", "Emergency stop "+h.Key, h.Key, h)
}

// stopHost stops every call on the host, once the admin confirmed it.
func (d *Dashboard) stopHost(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	if r.PostFormValue("confirm") != "yes" {
		d.errorPage(w, r, v, http.StatusBadRequest, "Tick the confirmation to stop the host; nothing was stopped.")
		return
	}
	if _, err := d.api.StopHost(as(r, v), host, strings.TrimSpace(r.PostFormValue("reason"))); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+host+"?done=stopped#emergency-stop", http.StatusSeeOther)
}

func (d *Dashboard) liftStop(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	if _, err := d.api.LiftHostStop(as(r, v), host); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+host+"?done=resumed#emergency-stop", http.StatusSeeOther)
}

// authData is the host's sign-in methods page.
type authData struct {
	Host     string
	Settings sdk.AuthSettings
}

func (d *Dashboard) authPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	s, err := d.api.GetAuthSettings(as(r, v), host)
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	d.render(w, r, v, http.StatusOK, "auth", "Sign-in methods", host, authData{Host: host, Settings: s})
}

// setAuthMethod replaces a sign-in method's settings. The secret is write-only: an empty
// field keeps the stored one, "remove the secret" removes it.
func (d *Dashboard) setAuthMethod(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, method := r.PathValue("host"), r.PathValue("method")
	req := sdk.AuthMethodSet{
		Enabled:              r.PostFormValue("enabled") == "on",
		AllowedDomains:       domainList(r.PostFormValue("allowed_domains")),
		ForceRedirectDomains: domainList(r.PostFormValue("force_redirect_domains")),
	}
	if c := strings.TrimSpace(r.PostFormValue("config")); c != "" {
		req.Config = []byte(c)
	}
	switch secret := r.PostFormValue("secret"); {
	case r.PostFormValue("remove_secret") == "on":
		empty := ""
		req.Secret = &empty
	case secret != "":
		req.Secret = &secret
	}
	if _, err := d.api.SetAuthMethod(as(r, v), host, method, req); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+host+"/auth?done=auth#method-"+method, http.StatusSeeOther)
}

// resetAuthMethod removes a method's settings: back to its default.
func (d *Dashboard) resetAuthMethod(w http.ResponseWriter, r *http.Request, v *viewer) {
	host, method := r.PathValue("host"), r.PathValue("method")
	if err := d.api.DeleteAuthMethod(as(r, v), host, method); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, Prefix+"/hosts/"+host+"/auth?done=auth-reset#method-"+method, http.StatusSeeOther)
}
