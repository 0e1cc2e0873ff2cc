package consentui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/schema"
)

// Messages the handlers show on the pages. Wording follows what users of MCP permission
// gateways already know.
const (
	// MsgBadCredentials is the only error the sign-in page shows for a wrong email or password:
	// it never tells which emails have an account.
	MsgBadCredentials = "Email or password is incorrect."
	// MsgNoServers is the empty state of the server list.
	MsgNoServers = "Your administrator has not given you access to any MCP server yet. Ask them to grant you access."
	// MsgPasswordsDiffer is the sign-up error when password_confirm differs from password.
	MsgPasswordsDiffer = "The passwords do not match."
)

// TooManyAttemptsMessage is the sign-in error when a Limiter refused the attempt; retryAfter is
// what Allow returned. Show it whether or not the account exists.
func TooManyAttemptsMessage(retryAfter time.Duration) string {
	if retryAfter < 50*time.Second {
		seconds := max(1, int((retryAfter+time.Second-1)/time.Second))
		if seconds == 1 {
			return "Too many sign-in attempts. Try again in a second."
		}
		return fmt.Sprintf("Too many sign-in attempts. Try again in %d seconds.", seconds)
	}
	minutes := int((retryAfter + time.Minute - 1) / time.Minute)
	if minutes <= 1 {
		return "Too many sign-in attempts. Try again in a minute."
	}
	return fmt.Sprintf("Too many sign-in attempts. Try again in %d minutes.", minutes)
}

// ContentSecurityPolicy is the policy Render sends. No page has inline script or style. Render
// adds to form-action the origins a form's POST may be redirected to (see Form.RedirectTargets):
// browsers apply form-action to every redirect that follows a form submission.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// scriptSources are what a page with a PasskeyForm adds to ContentSecurityPolicy: the
// pages' own script file, and requests to the page's own origin (the ceremony's options).
const scriptSources = "script-src 'self'; connect-src 'self'"

// PasskeyScriptURL is where the pages with a PasskeyForm load their script; mount
// PasskeyScriptHandler there.
const PasskeyScriptURL = "/oauth/assets/passkey.js"

// DefaultStylesheetURL is where the pages link their stylesheet when Frame.StylesheetURL is
// empty; mount StylesheetHandler there.
const DefaultStylesheetURL = "/oauth/assets/consentui.css"

//go:embed templates/*.html templates/*.css templates/*.js
var templateFS embed.FS

// Frame is what every page shares.
type Frame struct {
	// Lang is the page's language (BCP 47); "en" when empty.
	Lang string
	// HostName is the display name of the host (tenant), shown in the header and the title;
	// "trustgate" when empty.
	HostName string
	// StylesheetURL is where the stylesheet is served; DefaultStylesheetURL when empty.
	StylesheetURL string
}

// Language returns the page's lang attribute.
func (f Frame) Language() string {
	if f.Lang == "" {
		return "en"
	}
	return f.Lang
}

// Site returns the name shown in the header and the title.
func (f Frame) Site() string {
	if f.HostName == "" {
		return "trustgate"
	}
	return f.HostName
}

// Stylesheet returns the stylesheet's URL.
func (f Frame) Stylesheet() string {
	if f.StylesheetURL == "" {
		return DefaultStylesheetURL
	}
	return f.StylesheetURL
}

// Form is what every page with a form carries.
type Form struct {
	// Action is the URL the form posts to; empty posts to the page's own URL.
	Action string
	// CSRFToken goes into the csrf_token field (CSRF.Token).
	CSRFToken string
	// StateRef goes into the state_ref field: the opaque reference to the pending
	// authorization request that the flow continues with.
	StateRef string
	// RedirectTargets are URLs the response to this form's POST may redirect the browser to
	// outside this origin (the OAuth client's redirect URI, an upstream authorization
	// endpoint). Their origins are added to the Content-Security-Policy's form-action, which
	// browsers also apply to redirects after a form submission. TrustLevelPage adds its
	// RedirectURI by itself.
	RedirectTargets []string
}

// SignInMethod is another way to sign in, offered as a link.
type SignInMethod struct {
	Label string // "Sign in with GitHub"
	URL   string
}

// SignInPage is the sign-in form: fields email and password.
type SignInPage struct {
	Frame
	Form
	// Email refills the email field after a failed attempt.
	Email string
	// Error is shown above the form and linked to both fields; for wrong credentials use
	// MsgBadCredentials, whatever was wrong.
	Error string
	// SignUpURL links to the sign-up page; empty when the host does not allow signing up.
	SignUpURL string
	// OtherMethods are listed under "Other ways to sign in" when not empty.
	OtherMethods []SignInMethod
	// EmailOnly asks for the email alone ("Continue"): the first step on a host where the
	// address decides how its owner signs in (a domain forced to single sign-on), or where
	// email and password is off. NoEmail leaves the email form out (only other methods).
	EmailOnly bool
	NoEmail   bool
	// Notice is shown above the form without marking it invalid (e.g. why a method is off).
	Notice string
	// CodeAction, when set, adds a button that posts the email box there to have a sign-in
	// code sent (the email_otp method) instead of checking a password.
	CodeAction string
	// SetPasswordURL, when set, links to the page that sets or resets a password by a code
	// sent by email (first time here, or password forgotten).
	SetPasswordURL string
	// Passkey, when set, offers signing in with a passkey alone.
	Passkey *PasskeyForm
	// Dashboard: the sign-in is for the gateway's dashboard, not for an agent.
	Dashboard bool
	// Account: the sign-in is for the host's account page (passkeys, password), not for an
	// agent.
	Account bool
}

// PasskeyForm is a button that runs a WebAuthn ceremony with the pages' script (PasskeyScriptURL):
// it posts the form's fields to OptionsURL, passes the options it gets back to the browser's
// passkey prompt, and submits the form to Action with the answer in the credential field. The
// button stays hidden, and Unsupported shown, in a browser without WebAuthn (or scripts).
type PasskeyForm struct {
	// Action is where the answer is posted; OptionsURL where the ceremony's options come from.
	Action, OptionsURL string
	// Label is the button's text.
	Label string
	// Register makes the ceremony a registration (navigator.credentials.create) with a name
	// field; otherwise it is a sign-in (navigator.credentials.get).
	Register bool
}

// UnsupportedMessage is PasskeyUnsupportedMessage (for the templates).
func (PasskeyForm) UnsupportedMessage() string { return PasskeyUnsupportedMessage }

// PasskeyUnsupportedMessage is what a page with a PasskeyForm says in a browser that cannot
// use passkeys.
const PasskeyUnsupportedMessage = "This browser cannot use passkeys (it has no WebAuthn, or scripts are off). Use another browser or another way to sign in."

// ContinuePage sends the browser on to URL at once (a refresh with no delay, which the
// sign-in form's form-action does not restrict) with a link to follow by hand: the way from a
// posted form to an external sign-in provider.
type ContinuePage struct {
	Frame
	Title   string
	Message string
	URL     string
	Label   string
}

// SignUpPage is the sign-up form: fields email, password and password_confirm.
type SignUpPage struct {
	Frame
	Form
	Email string
	// AllowedDomains, when not empty, are the only email domains that may sign up.
	AllowedDomains []string
	// Error is a form-level error; the others belong to one field each.
	Error, EmailError, PasswordError, ConfirmError string
	// SignInURL links back to the sign-in page.
	SignInURL string
}

// InvitationPage is where a human an admin invited chooses their password: fields password and
// password_confirm (the form posts to the page's own URL, which carries the invitation).
type InvitationPage struct {
	Frame
	Form
	// Email is the address the invitation is for.
	Email                       string
	PasswordError, ConfirmError string
}

// FieldErrors lists the page's field errors, in the order of the fields.
func (p InvitationPage) FieldErrors() []FieldError {
	var errs []FieldError
	for _, fe := range []FieldError{{"password", p.PasswordError}, {"password_confirm", p.ConfirmError}} {
		if fe.Message != "" {
			errs = append(errs, fe)
		}
	}
	return errs
}

// HasErrors reports whether the page shows an error.
func (p InvitationPage) HasErrors() bool { return len(p.FieldErrors()) > 0 }

// AccountPage is a signed-in human's account page: sign out (a form posting to SignOutAction)
// and, for a human with a password, the password change form (posting to Form.Action: fields
// current_password, password, password_confirm).
type AccountPage struct {
	Frame
	Form
	Email             string
	SignOutAction     string
	CanChangePassword bool
	// Passkeys are the human's passkeys, each with a remove button posting credential_id to
	// RemovePasskeyAction.
	Passkeys            []PasskeyRow
	RemovePasskeyAction string
	// AddPasskey, when set, offers registering a passkey; PasskeysOff says why it is not
	// offered when it is not ("" hides the passkeys section when there are none).
	AddPasskey  *PasskeyForm
	PasskeysOff string
	// PasskeyError is shown in the passkeys section.
	PasskeyError  string
	Notice        string
	CurrentError  string
	PasswordError string
	ConfirmError  string
}

// FieldErrors lists the page's field errors, in the order of the fields.
func (p AccountPage) FieldErrors() []FieldError {
	var errs []FieldError
	for _, fe := range []FieldError{{"current_password", p.CurrentError}, {"password", p.PasswordError}, {"password_confirm", p.ConfirmError}} {
		if fe.Message != "" {
			errs = append(errs, fe)
		}
	}
	return errs
}

// HasErrors reports whether the page shows an error.
func (p AccountPage) HasErrors() bool { return len(p.FieldErrors()) > 0 }

// PasskeyRow is one passkey on the account page.
type PasskeyRow struct {
	// ID is the credential id, base64url: the value of the remove form's credential_id.
	ID       string
	Name     string
	Created  time.Time
	LastUsed time.Time // zero: never
}

// Label is the passkey's name, or a description when it has none.
func (p PasskeyRow) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return "Passkey added " + p.Created.UTC().Format("2 January 2006")
}

// LastUsedText says when the passkey last signed the human in.
func (p PasskeyRow) LastUsedText() string {
	if p.LastUsed.IsZero() {
		return "Not used yet"
	}
	return "Last used " + p.LastUsed.UTC().Format("2 January 2006 15:04 MST")
}

// FieldError is one entry of a page's error summary.
type FieldError struct {
	ID      string // the id of the input it belongs to
	Message string
}

// FieldErrors lists the page's field errors, in the order of the fields.
func (p SignUpPage) FieldErrors() []FieldError {
	var errs []FieldError
	for _, fe := range []FieldError{{"email", p.EmailError}, {"password", p.PasswordError}, {"password_confirm", p.ConfirmError}} {
		if fe.Message != "" {
			errs = append(errs, fe)
		}
	}
	return errs
}

// HasErrors reports whether the page shows any error.
func (p SignUpPage) HasErrors() bool { return p.Error != "" || len(p.FieldErrors()) > 0 }

// AllowedDomainsText renders AllowedDomains as "a.com", "a.com or b.com", "a.com, b.com or c.com".
func (p SignUpPage) AllowedDomainsText() string { return orList(p.AllowedDomains) }

// ServerOption is one MCP server the admin granted the human.
type ServerOption struct {
	// Key is the server's key, the value of the server field.
	Key         string
	Name        string
	Description string
	// Ceiling is the highest trust level the human may grant on it.
	Ceiling schema.Level
	// Selected preselects the server (e.g. from an upstream_mcp parameter).
	Selected bool
}

// CeilingLabel names the ceiling for the page.
func (o ServerOption) CeilingLabel() string { return levelLabel(o.Ceiling) }

// ChooseServerPage lets the human choose the server (field server) or, with Dynamic MCPs, enter
// any server's URL (field server_url, which wins over server when both are sent).
type ChooseServerPage struct {
	Frame
	Form
	// AgentName is the MCP client's name, when known.
	AgentName string
	Servers   []ServerOption
	// DynamicMCPs shows the server_url field.
	DynamicMCPs bool
	ServerURL   string
	// Error is a form-level error; ServerURLError belongs to server_url.
	Error, ServerURLError string
}

// NoServersText is the page's empty state, shown when Servers is empty.
func (p ChooseServerPage) NoServersText() string {
	if p.DynamicMCPs {
		return "Your administrator has not given you access to any MCP server yet. You can still connect to a server by its URL."
	}
	return MsgNoServers
}

// ToolRow is one tool of the server and, per trust level, whether an agent granted that level
// may call it. The handler computes Allowed (disabled tools are allowed at no level).
type ToolRow struct {
	Name    string
	Title   string // the tool's human-readable title, when it has one
	Allowed map[schema.Level]bool
}

// TrustLevelPage is the consent form: field trust_level (low, medium, high), a hidden server
// field, and the buttons decision=allow and decision=deny.
type TrustLevelPage struct {
	Frame
	Form
	AgentName string
	ClientID  string
	// RedirectURI is where the browser returns after the decision; the page shows its host.
	RedirectURI string
	ServerKey   string
	ServerName  string
	// Ceiling is the highest level the admin lets this human grant on the server; levels above
	// it are shown disabled.
	Ceiling schema.Level
	// Selected preselects a level (ignored above Ceiling); none when zero.
	Selected schema.Level
	Tools    []ToolRow
	Error    string
}

// LevelOption is one trust level as the trust-level page shows it.
type LevelOption struct {
	Level       schema.Level
	Value       string // low, medium, high
	Label       string
	Description string
	Checked     bool
	Disabled    bool
	Reason      string // why it is disabled
}

// LevelOptions returns the levels in ascending order, those above the ceiling disabled.
func (p TrustLevelPage) LevelOptions() []LevelOption {
	opts := make([]LevelOption, 0, len(schema.Levels))
	for _, l := range schema.Levels {
		o := LevelOption{Level: l, Value: l.String(), Label: levelLabel(l), Description: levelDescription(l)}
		switch {
		case !p.Ceiling.Valid():
			o.Disabled = true
			o.Reason = "Your administrator has not given you access to this server."
		case l > p.Ceiling:
			o.Disabled = true
			o.Reason = fmt.Sprintf("Not available: your administrator lets you grant at most %s on %s.", levelLabel(p.Ceiling), p.ServerLabel())
		}
		o.Checked = !o.Disabled && l == p.Selected
		opts = append(opts, o)
	}
	return opts
}

// AgentLabel is the agent's name as the page shows it.
func (p TrustLevelPage) AgentLabel() string {
	if p.AgentName != "" {
		return p.AgentName
	}
	return "An unnamed agent"
}

// ServerLabel is the server's name as the page shows it.
func (p TrustLevelPage) ServerLabel() string {
	if p.ServerName != "" {
		return p.ServerName
	}
	if p.ServerKey != "" {
		return p.ServerKey
	}
	return "this server"
}

// RedirectHost is the host (with port, if any) of RedirectURI, or its scheme for a native
// app's private-use scheme without a host.
func (p TrustLevelPage) RedirectHost() string {
	u, err := url.Parse(p.RedirectURI)
	if err != nil || p.RedirectURI == "" {
		return ""
	}
	if u.Host != "" {
		return u.Host
	}
	return u.Scheme + ":"
}

// ErrorPage shows an error: a title, a message and, optionally, what to do about it.
type ErrorPage struct {
	Frame
	Title    string
	Message  string
	WhatToDo string
}

// HostNotFoundPage is the page for a request to a host (tenant) that does not exist; render it
// with status 404.
func HostNotFoundPage(host string) ErrorPage {
	msg := "There is no trustgate host at this address."
	if host != "" {
		msg = fmt.Sprintf("There is no trustgate host called “%s”.", host)
	}
	return ErrorPage{
		Title:    "Host not found",
		Message:  msg,
		WhatToDo: "Check the MCP server URL in your client's configuration. Your administrator can give you the right one.",
	}
}

func levelLabel(l schema.Level) string {
	switch l {
	case schema.Low:
		return "Low"
	case schema.Medium:
		return "Medium"
	case schema.High:
		return "High"
	}
	return "None"
}

func levelDescription(l schema.Level) string {
	switch l {
	case schema.Low:
		return "Read only: the agent can look things up but cannot change anything."
	case schema.Medium:
		return "Low, plus tools that create or change things (create, update, send…)."
	case schema.High:
		return "Medium, plus destructive tools (delete, remove, revoke…)."
	}
	return ""
}

func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

var pageTemplates = map[string]*template.Template{
	"signin":       parsePage("signin.html"),
	"signup":       parsePage("signup.html"),
	"chooseserver": parsePage("chooseserver.html"),
	"trustlevel":   parsePage("trustlevel.html"),
	"error":        parsePage("error.html"),
	"invitation":   parsePage("invitation.html"),
	"continue":     parsePage("continue.html"),
	"account":      parsePage("account.html"),
	"emailrequest": parsePage("emailcoderequest.html"),
	"emailentry":   parsePage("emailcodeentry.html"),
	"newpassword":  parsePage("newpassword.html"),
}

func parsePage(file string) *template.Template {
	return template.Must(template.New(file).Funcs(template.FuncMap{"passkeyScriptURL": func() string { return PasskeyScriptURL }}).
		ParseFS(templateFS, "templates/layout.html", "templates/"+file))
}

// renderable is a page type Render knows: its template and what its Content-Security-Policy
// must allow. A pointer to a page has its page's methods, so Render takes either.
type renderable interface{ spec() pageSpec }

// pageSpec is how one page type is rendered.
type pageSpec struct {
	name    string   // its template (pageTemplates)
	targets []string // where its forms may send the browser (the CSP's form-action)
	script  bool     // the page runs PasskeyScriptURL
}

func (p SignInPage) spec() pageSpec {
	return pageSpec{name: "signin", targets: p.RedirectTargets, script: p.Passkey != nil}
}
func (p SignUpPage) spec() pageSpec { return pageSpec{name: "signup", targets: p.RedirectTargets} }
func (p ChooseServerPage) spec() pageSpec {
	return pageSpec{name: "chooseserver", targets: p.RedirectTargets}
}
func (p TrustLevelPage) spec() pageSpec {
	return pageSpec{name: "trustlevel", targets: append([]string{p.RedirectURI}, p.RedirectTargets...)}
}
func (InvitationPage) spec() pageSpec { return pageSpec{name: "invitation"} }
func (p AccountPage) spec() pageSpec {
	return pageSpec{name: "account", script: p.AddPasskey != nil}
}
func (EmailCodeRequestPage) spec() pageSpec { return pageSpec{name: "emailrequest"} }
func (EmailCodeEntryPage) spec() pageSpec   { return pageSpec{name: "emailentry"} }
func (NewPasswordPage) spec() pageSpec      { return pageSpec{name: "newpassword"} }
func (ContinuePage) spec() pageSpec         { return pageSpec{name: "continue"} }
func (ErrorPage) spec() pageSpec            { return pageSpec{name: "error"} }

// Render writes page (one of this package's page types, or a pointer to one) with status (200 when 0) and the headers every page needs:
// Content-Type, Cache-Control: no-store, X-Frame-Options: DENY, Referrer-Policy: no-referrer,
// X-Content-Type-Options: nosniff and ContentSecurityPolicy. The page is rendered before
// anything is written: on error nothing has been written and the caller can still answer.
func Render(w http.ResponseWriter, status int, page any) error {
	if v := reflect.ValueOf(page); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("consentui: Render: nil %T", page)
	}
	r, ok := page.(renderable)
	if !ok {
		return fmt.Errorf("consentui: Render: unknown page type %T", page)
	}
	spec := r.spec()
	if v := reflect.ValueOf(page); v.Kind() == reflect.Pointer {
		page = v.Elem().Interface() // the templates see the page itself
	}
	name := spec.name
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", page); err != nil {
		return fmt.Errorf("consentui: rendering %s page: %w", name, err)
	}
	if status == 0 {
		status = http.StatusOK
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	policy := csp(spec.targets)
	if spec.script {
		policy = strings.Replace(policy, "default-src 'none';", "default-src 'none'; "+scriptSources+";", 1)
	}
	h.Set("Content-Security-Policy", policy)
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// csp returns ContentSecurityPolicy with the form-action sources of targets added.
func csp(targets []string) string {
	var extra []string
	seen := map[string]bool{}
	for _, t := range targets {
		if src := cspSource(t); src != "" && !seen[src] {
			seen[src] = true
			extra = append(extra, src)
		}
	}
	if len(extra) == 0 {
		return ContentSecurityPolicy
	}
	return strings.Replace(ContentSecurityPolicy, "form-action 'self'", "form-action 'self' "+strings.Join(extra, " "), 1)
}

// cspSource turns a URL into a CSP source expression: the origin of an http(s) URL, the scheme
// ("cursor:") of any other. It returns "" for anything it cannot express safely, so nothing the
// URL holds can inject another directive.
func cspSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !cspToken(u.Scheme, "abcdefghijklmnopqrstuvwxyz0123456789+.-") || u.Scheme == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return scheme + ":"
	}
	host := u.Hostname()
	switch {
	case host == "":
		return ""
	case strings.Contains(host, ":"): // IPv6 literal
		if !cspToken(host, "0123456789abcdefABCDEF:.") {
			return ""
		}
		host = "[" + host + "]"
	case !cspToken(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"):
		return ""
	}
	src := scheme + "://" + host
	if port := u.Port(); port != "" {
		if !cspToken(port, "0123456789") {
			return ""
		}
		src += ":" + port
	}
	return src
}

func cspToken(s, allowed string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune(allowed, c) {
			return false
		}
	}
	return true
}

var stylesheet, _ = templateFS.ReadFile("templates/consentui.css")

// StylesheetETag is a strong validator of the stylesheet's content.
var StylesheetETag = func() string {
	sum := sha256.Sum256(stylesheet)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// StylesheetHandler serves the pages' stylesheet; mount it at DefaultStylesheetURL (or at the
// Frame.StylesheetURL the pages use).
func StylesheetHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", StylesheetETag)
		http.ServeContent(w, r, "consentui.css", time.Time{}, bytes.NewReader(stylesheet))
	})
}

var passkeyScript, _ = templateFS.ReadFile("templates/passkey.js")

// PasskeyScriptHandler serves the pages' passkey script (the only script they run).
func PasskeyScriptHandler() http.Handler {
	sum := sha256.Sum256(passkeyScript)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "passkey.js", time.Time{}, bytes.NewReader(passkeyScript))
	})
}
