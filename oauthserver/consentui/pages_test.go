package consentui

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/trustgate/trustgate/schema"
)

const evil = `<script>alert("x")</script>`

// rendered is one page as a browser would get it.
type rendered struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

func render(t *testing.T, status int, page any) rendered {
	t.Helper()
	w := httptest.NewRecorder()
	if err := Render(w, status, page); err != nil {
		t.Fatalf("Render: %v", err)
	}
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("parsing the page: %v", err)
	}
	rp := rendered{status: w.Code, header: w.Header(), body: w.Body.String(), doc: doc}
	rp.checkCommon(t)
	return rp
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func (rp rendered) all(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for n := range rp.doc.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	return out
}

func (rp rendered) tag(name string) []*html.Node {
	return rp.all(func(n *html.Node) bool { return n.Data == name })
}

// inputs returns the form controls named name.
func (rp rendered) inputs(name string) []*html.Node {
	return rp.all(func(n *html.Node) bool {
		v, _ := attr(n, "name")
		return (n.Data == "input" || n.Data == "button") && v == name
	})
}

func (rp rendered) byID(id string) *html.Node {
	for _, n := range rp.all(func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id }) {
		return n
	}
	return nil
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// checkCommon checks what every page must satisfy: headers, layout, accessibility basics, no
// inline script or style.
func (rp rendered) checkCommon(t *testing.T) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := rp.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	csp := rp.header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if htmls := rp.tag("html"); len(htmls) != 1 {
		t.Error("no html element")
	} else if lang, _ := attr(htmls[0], "lang"); lang == "" {
		t.Error("html element without lang")
	}
	if titles := rp.tag("title"); len(titles) != 1 || text(titles[0]) == "" {
		t.Error("no title")
	}
	if len(rp.tag("main")) != 1 || len(rp.tag("h1")) != 1 {
		t.Error("want one main and one h1")
	}
	links := rp.all(func(n *html.Node) bool { v, _ := attr(n, "rel"); return n.Data == "link" && v == "stylesheet" })
	if len(links) != 1 {
		t.Error("no stylesheet link")
	}
	if s := rp.tag("script"); len(s) > 0 {
		t.Errorf("page has %d script elements", len(s))
	}
	if s := rp.tag("style"); len(s) > 0 {
		t.Error("page has a style element")
	}
	ids := map[string]bool{}
	for _, n := range rp.all(func(*html.Node) bool { return true }) {
		for _, a := range n.Attr {
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s> has inline %s=%q", n.Data, a.Key, a.Val)
			}
			if a.Key == "id" {
				if ids[a.Val] {
					t.Errorf("duplicate id %q", a.Val)
				}
				ids[a.Val] = true
			}
		}
	}
	// aria-describedby only names elements that exist.
	for _, n := range rp.all(func(n *html.Node) bool { _, ok := attr(n, "aria-describedby"); return ok }) {
		v, _ := attr(n, "aria-describedby")
		for _, id := range strings.Fields(v) {
			if !ids[id] {
				t.Errorf("<%s> aria-describedby names missing id %q", n.Data, id)
			}
		}
	}
	// Every visible input has an id and exactly one label for it.
	for _, in := range rp.tag("input") {
		if typ, _ := attr(in, "type"); typ == "hidden" {
			continue
		}
		id, _ := attr(in, "id")
		name, _ := attr(in, "name")
		if id == "" {
			t.Errorf("input %q has no id", name)
			continue
		}
		labels := rp.all(func(n *html.Node) bool { v, _ := attr(n, "for"); return n.Data == "label" && v == id })
		if len(labels) != 1 || text(labels[0]) == "" {
			t.Errorf("input %q (id %q) has %d labels, want one with text", name, id, len(labels))
		}
	}
	// Every form posts, carries the CSRF token and the state reference.
	for _, f := range rp.tag("form") {
		if m, _ := attr(f, "method"); m != "post" {
			t.Errorf("form method %q", m)
		}
	}
	if len(rp.tag("form")) > 0 {
		for _, name := range []string{"csrf_token", "state_ref"} {
			if in := rp.inputs(name); len(in) != 1 {
				t.Errorf("%d %s fields, want 1", len(in), name)
			}
		}
	}
	if strings.Contains(rp.body, "ZgotmplZ") {
		t.Error("a template value was rejected by html/template (ZgotmplZ)")
	}
}

func (rp rendered) wantField(t *testing.T, name, typ string) *html.Node {
	t.Helper()
	in := rp.inputs(name)
	if len(in) == 0 {
		t.Fatalf("no field named %q", name)
	}
	if got, _ := attr(in[0], "type"); got != typ {
		t.Errorf("field %q has type %q, want %q", name, got, typ)
	}
	return in[0]
}

func (rp rendered) wantText(t *testing.T, s string) {
	t.Helper()
	if !strings.Contains(text(rp.doc), s) {
		t.Errorf("page does not say %q", s)
	}
}

func (rp rendered) wantNoEvil(t *testing.T) {
	t.Helper()
	if strings.Contains(rp.body, evil) {
		t.Error("injected markup appears unescaped")
	}
	if !strings.Contains(rp.body, "&lt;script&gt;") {
		t.Error("injected markup does not appear escaped")
	}
}

var form = Form{CSRFToken: "tok-123", StateRef: "ref-456"}

func TestSignInPage(t *testing.T) {
	rp := render(t, http.StatusUnauthorized, SignInPage{
		Frame:        Frame{HostName: "Acme Corp"},
		Form:         form,
		Email:        evil,
		Error:        MsgBadCredentials,
		SignUpURL:    "/oauth/signup?state_ref=ref-456",
		OtherMethods: []SignInMethod{{Label: "Sign in with GitHub", URL: "/oauth/github?state_ref=ref-456"}},
	})
	if rp.status != http.StatusUnauthorized {
		t.Errorf("status %d", rp.status)
	}
	email := rp.wantField(t, "email", "email")
	rp.wantField(t, "password", "password")
	if v, _ := attr(email, "value"); v != evil {
		t.Errorf("email refilled as %q", v)
	}
	rp.wantNoEvil(t)
	rp.wantText(t, "Email or password is incorrect.")
	if errP := rp.byID("form-error"); errP == nil || text(errP) != MsgBadCredentials {
		t.Error("the error is not the element with id form-error")
	}
	for _, name := range []string{"email", "password"} {
		in := rp.inputs(name)[0]
		if v, _ := attr(in, "aria-describedby"); v != "form-error" {
			t.Errorf("%s aria-describedby = %q", name, v)
		}
		if v, _ := attr(in, "aria-invalid"); v != "true" {
			t.Errorf("%s not aria-invalid", name)
		}
	}
	if v, _ := attr(rp.inputs("state_ref")[0], "value"); v != "ref-456" {
		t.Errorf("state_ref = %q", v)
	}
	if v, _ := attr(rp.inputs("csrf_token")[0], "value"); v != "tok-123" {
		t.Errorf("csrf_token = %q", v)
	}
	rp.wantText(t, "Other ways to sign in")
	rp.wantText(t, "Sign in with GitHub")
	rp.wantText(t, "Create an account")
	if !strings.Contains(text(rp.tag("title")[0]), "Error: Sign in – Acme Corp") {
		t.Errorf("title %q", text(rp.tag("title")[0]))
	}

	// Without an error, other methods or sign-up, none of them shows.
	rp = render(t, 0, &SignInPage{Form: form})
	if rp.status != http.StatusOK {
		t.Errorf("status %d", rp.status)
	}
	for _, s := range []string{"Other ways to sign in", "Create an account", "incorrect"} {
		if strings.Contains(rp.body, s) {
			t.Errorf("plain sign-in page says %q", s)
		}
	}
	if _, ok := attr(rp.inputs("email")[0], "aria-describedby"); ok {
		t.Error("email described by an error that is not there")
	}
}

func TestSignUpPage(t *testing.T) {
	rp := render(t, http.StatusUnprocessableEntity, SignUpPage{
		Form:           form,
		Email:          "mallory@evil.example",
		AllowedDomains: []string{"acme.com", "partner.com"},
		EmailError:     "Use an address at acme.com or partner.com.",
		PasswordError:  ErrPasswordTooShort.Error(),
		ConfirmError:   MsgPasswordsDiffer,
		SignInURL:      "/oauth/login?state_ref=ref-456",
	})
	rp.wantField(t, "email", "email")
	rp.wantField(t, "password", "password")
	rp.wantField(t, "password_confirm", "password")
	rp.wantText(t, "Use an address at acme.com or partner.com.")
	rp.wantText(t, "Password is too short: use at least 12 characters.")
	rp.wantText(t, "The passwords do not match.")
	rp.wantText(t, "There is a problem")
	for id, wantDesc := range map[string]string{
		"email":            "email-hint email-error",
		"password":         "password-hint password-error",
		"password_confirm": "password_confirm-error",
	} {
		if v, _ := attr(rp.byID(id), "aria-describedby"); v != wantDesc {
			t.Errorf("%s aria-describedby = %q, want %q", id, v, wantDesc)
		}
	}
	// The summary links to the fields.
	var hrefs []string
	for _, a := range rp.tag("a") {
		h, _ := attr(a, "href")
		hrefs = append(hrefs, h)
	}
	for _, h := range []string{"#email", "#password", "#password_confirm"} {
		if !slices.Contains(hrefs, h) {
			t.Errorf("no link to %s in the error summary", h)
		}
	}

	// Unrestricted domains: no hint.
	rp = render(t, 0, SignUpPage{Form: form})
	if rp.byID("email-hint") != nil {
		t.Error("domain hint shown without restrictions")
	}
}

func TestChooseServerPage(t *testing.T) {
	rp := render(t, 0, ChooseServerPage{
		Form:      form,
		AgentName: evil,
		Servers: []ServerOption{
			{Key: "linear", Name: "Linear", Description: "Issues and projects", Ceiling: schema.Medium, Selected: true},
			{Key: "github", Name: "GitHub", Description: evil, Ceiling: schema.High},
		},
	})
	radios := rp.inputs("server")
	if len(radios) != 2 {
		t.Fatalf("%d server radios, want 2", len(radios))
	}
	for i, want := range []string{"linear", "github"} {
		if typ, _ := attr(radios[i], "type"); typ != "radio" {
			t.Errorf("server field type %q", typ)
		}
		if v, _ := attr(radios[i], "value"); v != want {
			t.Errorf("radio %d value %q, want %q", i, v, want)
		}
	}
	if _, ok := attr(radios[0], "checked"); !ok {
		t.Error("preselected server not checked")
	}
	rp.wantText(t, "Highest trust level you can grant: Medium.")
	rp.wantText(t, "Highest trust level you can grant: High.")
	rp.wantNoEvil(t)
	if len(rp.inputs("server_url")) != 0 {
		t.Error("server_url shown without Dynamic MCPs")
	}
	if len(rp.tag("fieldset")) != 1 || len(rp.tag("legend")) != 1 {
		t.Error("the radios are not in a fieldset with a legend")
	}

	// Empty state.
	rp = render(t, 0, ChooseServerPage{Form: form})
	rp.wantText(t, "Your administrator has not given you access to any MCP server yet. Ask them to grant you access.")
	if len(rp.tag("form")) != 0 || len(rp.inputs("server")) != 0 {
		t.Error("empty state still shows a form")
	}

	// Dynamic MCPs: a URL field, with or without granted servers.
	rp = render(t, 0, ChooseServerPage{Form: form, DynamicMCPs: true, ServerURL: "https://mcp.example.com/mcp", ServerURLError: "Enter an https URL."})
	url := rp.wantField(t, "server_url", "url")
	if v, _ := attr(url, "aria-describedby"); v != "server_url-hint server_url-error" {
		t.Errorf("server_url aria-describedby = %q", v)
	}
	rp.wantText(t, "Enter an https URL.")
	rp = render(t, 0, ChooseServerPage{Form: form, DynamicMCPs: true, Servers: []ServerOption{{Key: "linear", Name: "Linear", Ceiling: schema.Low}}})
	rp.wantField(t, "server_url", "url")
	if len(rp.inputs("server")) != 1 {
		t.Error("servers missing with Dynamic MCPs on")
	}
	if _, ok := attr(rp.inputs("server")[0], "required"); ok {
		t.Error("server radio required although server_url is an alternative")
	}
}

func trustPage() TrustLevelPage {
	allowedFrom := func(req schema.Level) map[schema.Level]bool {
		m := map[schema.Level]bool{}
		for _, l := range schema.Levels {
			m[l] = req.Valid() && l >= req
		}
		return m
	}
	return TrustLevelPage{
		Form:        form,
		AgentName:   evil,
		ClientID:    "c_9f2b",
		RedirectURI: "http://127.0.0.1:33418/oauth/callback?x=1",
		ServerKey:   "linear",
		ServerName:  "Linear",
		Ceiling:     schema.Medium,
		Selected:    schema.High, // above the ceiling: ignored
		Tools: []ToolRow{
			{Name: "list_issues", Allowed: allowedFrom(schema.Low)},
			{Name: "create_issue", Title: "Create issue", Allowed: allowedFrom(schema.Medium)},
			{Name: "delete_issue", Allowed: allowedFrom(schema.High)},
			{Name: "disabled_tool", Allowed: nil},
		},
	}
}

func TestTrustLevelPage(t *testing.T) {
	rp := render(t, 0, trustPage())
	radios := rp.inputs("trust_level")
	if len(radios) != 3 {
		t.Fatalf("%d trust_level radios, want 3", len(radios))
	}
	for i, want := range []string{"low", "medium", "high"} {
		v, _ := attr(radios[i], "value")
		_, disabled := attr(radios[i], "disabled")
		_, checked := attr(radios[i], "checked")
		if v != want {
			t.Errorf("radio %d value %q, want %q", i, v, want)
		}
		if disabled != (want == "high") {
			t.Errorf("%s disabled = %v", want, disabled)
		}
		if checked {
			t.Errorf("%s checked, but the only preselection was above the ceiling", want)
		}
	}
	rp.wantText(t, "Not available: your administrator lets you grant at most Medium on Linear.")
	rp.wantNoEvil(t)
	rp.wantText(t, "c_9f2b")
	rp.wantText(t, "127.0.0.1:33418")
	if v, _ := attr(rp.inputs("server")[0], "value"); v != "linear" {
		t.Errorf("hidden server = %q", v)
	}
	// Allow and Deny buttons; Deny skips validation so it works with no level chosen.
	decisions := rp.inputs("decision")
	if len(decisions) != 2 {
		t.Fatalf("%d decision buttons", len(decisions))
	}
	if v, _ := attr(decisions[0], "value"); v != "allow" || text(decisions[0]) != "Allow" {
		t.Errorf("first button %q %q", v, text(decisions[0]))
	}
	if v, _ := attr(decisions[1], "value"); v != "deny" || text(decisions[1]) != "Deny" {
		t.Errorf("second button %q %q", v, text(decisions[1]))
	}
	if _, ok := attr(decisions[1], "formnovalidate"); !ok {
		t.Error("Deny does not skip validation")
	}
	// The tools table: one row per tool, one column per level, the cells from Allowed.
	want := map[string][]string{
		"list_issues":   {"Allowed", "Allowed", "Allowed"},
		"create_issue":  {"Denied", "Allowed", "Allowed"},
		"delete_issue":  {"Denied", "Denied", "Allowed"},
		"disabled_tool": {"Denied", "Denied", "Denied"},
	}
	rows := rp.all(func(n *html.Node) bool { return n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody" })
	if len(rows) != len(want) {
		t.Fatalf("%d tool rows, want %d", len(rows), len(want))
	}
	for _, row := range rows {
		var cells []string
		name := ""
		for c := row.FirstChild; c != nil; c = c.NextSibling {
			switch {
			case c.Type != html.ElementNode:
			case c.Data == "th":
				for code := range c.Descendants() {
					if code.Type == html.ElementNode && code.Data == "code" {
						name = text(code)
					}
				}
			case c.Data == "td":
				cells = append(cells, text(c))
			}
		}
		if !slices.Equal(cells, want[name]) {
			t.Errorf("tool %q: cells %v, want %v", name, cells, want[name])
		}
	}
	// The redirect's origin is allowed as a form target (browsers check redirects after a POST).
	csp := rp.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' http://127.0.0.1:33418;") {
		t.Errorf("CSP %q does not allow the redirect origin", csp)
	}

	// A preselection at or below the ceiling is checked; no ceiling disables every level.
	p := trustPage()
	p.Selected = schema.Low
	rp = render(t, 0, &p)
	if _, ok := attr(rp.inputs("trust_level")[0], "checked"); !ok {
		t.Error("preselected low not checked")
	}
	p.Ceiling = 0
	rp = render(t, 0, p)
	for _, r := range rp.inputs("trust_level") {
		if _, ok := attr(r, "disabled"); !ok {
			t.Error("a level is enabled without a ceiling")
		}
	}
	rp.wantText(t, "Your administrator has not given you access to this server.")
}

func TestCSPSources(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example.com/cb":             "https://app.example.com",
		"https://app.example.com:8443/cb?a=b":    "https://app.example.com:8443",
		"http://[::1]:4711/cb":                   "http://[::1]:4711",
		"HTTP://LOCALHOST:1/cb":                  "http://LOCALHOST:1",
		"cursor://anysphere.cursor-retrieval/cb": "cursor:",
		"com.example.app:/oauth2redirect":        "com.example.app:",
		"":                                       "",
		"/relative":                              "",
		"https://evil.example;script-src *":      "",
		"https://a b/":                           "",
		"https://evil.example%3Bscript-src/":     "",
		"java;script:alert(1)":                   "",
	} {
		if got := cspSource(in); got != want {
			t.Errorf("cspSource(%q) = %q, want %q", in, got, want)
		}
	}
	if got := csp([]string{"https://a.example/x", "https://a.example/y", "bogus url;"}); got != strings.Replace(ContentSecurityPolicy, "form-action 'self'", "form-action 'self' https://a.example", 1) {
		t.Errorf("csp = %q", got)
	}
}

func TestErrorPages(t *testing.T) {
	rp := render(t, http.StatusForbidden, ErrorPage{
		Title:    "Access denied",
		Message:  "You cannot connect " + evil + ".",
		WhatToDo: "Ask your administrator.",
	})
	if rp.status != http.StatusForbidden {
		t.Errorf("status %d", rp.status)
	}
	rp.wantText(t, "Access denied")
	rp.wantText(t, "What to do")
	rp.wantNoEvil(t)
	if len(rp.tag("form")) != 0 {
		t.Error("error page has a form")
	}

	rp = render(t, http.StatusNotFound, HostNotFoundPage("acme-<b>"))
	if rp.status != http.StatusNotFound {
		t.Errorf("status %d", rp.status)
	}
	rp.wantText(t, "Host not found")
	rp.wantText(t, "There is no trustgate host called “acme-<b>”.")
	if strings.Contains(rp.body, "acme-<b>") {
		t.Error("host name not escaped")
	}

	rp = render(t, 0, ErrorPage{Title: "Oops", Message: "Something broke."})
	if strings.Contains(rp.body, "What to do") {
		t.Error("empty what-to-do section shown")
	}
}

func TestRenderUnknownPage(t *testing.T) {
	w := httptest.NewRecorder()
	if err := Render(w, 0, struct{}{}); err == nil {
		t.Fatal("Render accepted an unknown page type")
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Error("Render wrote something before failing")
	}
}

func TestStylesheetHandler(t *testing.T) {
	srv := httptest.NewServer(StylesheetHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + DefaultStylesheetURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || resp.Header.Get("ETag") != StylesheetETag {
		t.Errorf("stylesheet: %d %v", resp.StatusCode, resp.Header)
	}
	if len(stylesheet) == 0 || !strings.Contains(string(stylesheet), ":focus-visible") {
		t.Error("stylesheet missing or without focus styles")
	}
	req, _ := http.NewRequest("GET", srv.URL+DefaultStylesheetURL, nil)
	req.Header.Set("If-None-Match", StylesheetETag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", resp.StatusCode)
	}
}

func TestRenderNilPage(t *testing.T) {
	var p *TrustLevelPage
	if err := Render(httptest.NewRecorder(), 0, p); err == nil {
		t.Fatal("Render accepted a nil page")
	}
}

func TestTrustLevelPageUnnamedAgent(t *testing.T) {
	p := trustPage()
	p.AgentName, p.ServerName, p.RedirectURI = "", "", "cursor://anysphere.cursor-retrieval/oauth/callback"
	rp := render(t, 0, p)
	rp.wantText(t, "An unnamed agent wants to use linear on your behalf.")
	rp.wantText(t, "anysphere.cursor-retrieval")
	if csp := rp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' cursor:;") {
		t.Errorf("CSP %q does not allow the native app's scheme", csp)
	}
}

func TestTooManyAttemptsMessage(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond:            "Too many sign-in attempts. Try again in a second.",
		10 * time.Second:            "Too many sign-in attempts. Try again in 10 seconds.",
		49*time.Second + 1:          "Too many sign-in attempts. Try again in 50 seconds.",
		50 * time.Second:            "Too many sign-in attempts. Try again in a minute.",
		time.Minute:                 "Too many sign-in attempts. Try again in a minute.",
		2*time.Minute + time.Second: "Too many sign-in attempts. Try again in 3 minutes.",
		15 * time.Minute:            "Too many sign-in attempts. Try again in 15 minutes.",
	} {
		if got := TooManyAttemptsMessage(d); got != want {
			t.Errorf("TooManyAttemptsMessage(%v) = %q, want %q", d, got, want)
		}
	}
}
