package dashboard

import (
	"bytes"
	"embed"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/dashboard.css assets/copy.js assets/live.js
var assetFS embed.FS

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "never"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "never"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return ""
	},
	"join":        strings.Join,
	"pathSegment": url.PathEscape,
	"rateScopes":  func() []string { return rateScopes },
	"levels":      func() []string { return []string{"low", "medium", "high"} },
	"ruleID":      ruleFingerprint,
	"inc":         func(i int) int { return i + 1 },
}

// templates holds one template per page: the layout with the page's "content".
var templates = func() map[string]*template.Template {
	// The layout and the partials (templates/_*.html) every page may use.
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html"))
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+e.Name()))
	}
	return out
}()

// view is what every page's template gets.
type view struct {
	Title  string
	Viewer *viewer
	CSRF   string
	// Host is the host the page is about (its navigation), "" for none.
	Host   string
	Notice string
	Data   any
}

// render writes page name with status.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, v *viewer, status int, name, title, host string, data any) {
	t, ok := templates[name]
	if !ok {
		d.internalError(w, r, "render", errNoTemplate(name))
		return
	}
	pv := view{Title: title, Viewer: v, CSRF: d.csrf.Token(w, r), Host: host, Notice: notices[r.URL.Query().Get("done")], Data: data}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pv); err != nil {
		d.log.Error("dashboard: render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errNoTemplate string

func (e errNoTemplate) Error() string { return "no template " + string(e) }

// notices are the sentences a page shows after a change (?done=…): fixed texts, so a link cannot
// make the dashboard say anything else.
var notices = map[string]string{
	"setup":                "Welcome: you are the gateway's first operator.",
	"host-created":         "Host created.",
	"settings":             "Settings saved.",
	"rule-added":           "Approval rule added.",
	"rule-removed":         "Approval rule removed.",
	"token-revoked":        "Token revoked.",
	"host-deleted":         "Host deleted.",
	"server":               "Server imported.",
	"stopped":              "Emergency stop: every call on the host is refused until you lift it.",
	"resumed":              "The emergency stop is lifted: calls are decided as before.",
	"auth":                 "Sign-in method saved.",
	"auth-reset":           "Sign-in method back to its default.",
	"disconnected":         "Disconnected: the agent holds nothing any more and its tokens no longer work.",
	"server-saved":         "Server saved.",
	"credentials":          "Credentials saved.",
	"tools":                "Tools saved.",
	"approved":             "Tool approved and enabled.",
	"tool-removed":         "Tool removed.",
	"tool-added":           "Tool added.",
	"server-deleted":       "Server deleted.",
	"granted":              "Access granted.",
	"revoked":              "Access revoked.",
	"level":                "Level changed.",
	"killed":               "The agent was disabled and holds nothing any more.",
	"call-approved":        "Approved: the call is forwarded now.",
	"call-denied":          "Denied: the agent is told the call was refused.",
	"standing-revoked":     "Standing approval revoked: the agent's next call of that tool waits for approval again.",
	"change-retried":       "Retried: what the store implies for the relationship now was applied.",
	"change-refused-again": "Retried, and refused again: the authorization backend refused what the store implies for the relationship too; it is set aside again below.",
	"change-discarded":     "Discarded: the change was not applied.",
}

type errorData struct {
	Status  int
	Message string
	Back    string
}

// errorPage shows msg with status.
func (d *Dashboard) errorPage(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	back := "/"
	if ref := r.URL.Path; r.Method == http.MethodPost && strings.HasPrefix(ref, Prefix+"/") {
		back = ref
	}
	d.render(w, r, v, status, "error", http.StatusText(status), "", errorData{Status: status, Message: msg, Back: back})
}

// apiError shows the admin API's answer to a change that failed.
func (d *Dashboard) apiError(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	status, msg := apiMessage(err)
	if status >= 500 {
		d.log.Error("dashboard: admin API call failed", "path", r.URL.Path, "err", err)
	}
	d.errorPage(w, r, v, status, msg)
}

func (d *Dashboard) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	d.log.Error("dashboard: "+what, "path", r.URL.Path, "err", err)
	d.errorPage(w, r, nil, http.StatusInternalServerError, "Something went wrong; the gateway's log has the details.")
}

// asset serves an embedded file.
func asset(name, contentType string) func(*Dashboard, http.ResponseWriter, *http.Request, *viewer) {
	data, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		panic(err)
	}
	return func(_ *Dashboard, w http.ResponseWriter, _ *http.Request, _ *viewer) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	}
}

// ---- the admin API in process

// inProcess is the SDK client's transport to the admin API's routes in this process.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	t.h.ServeHTTP(rec, r)
	return &http.Response{
		Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: r,
	}, nil
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
