package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// LinkPath is where a host serves the approvers' links (<host's base URL>/approvals/<token>).
const LinkPath = "/approvals/"

// Routes registers the links' pages on a host's router (tenant.Mount): GET shows the call
// and a button, POST decides.
func (s *Service) Routes(r *mux.Router) {
	r.Path(LinkPath+"{token}").Methods(http.MethodGet, http.MethodPost).HandlerFunc(s.serveLink)
}

// The link pages use the sign-in pages' stylesheet, and no script or inline style.
const (
	stylesheetPath        = "/oauth/assets/consentui.css"
	contentSecurityPolicy = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// page is what the link page shows.
type page struct {
	Title, Message string
	Stylesheet     string
	Call           *store.HeldCall
	Arguments      string
	Action         string // approve or deny: the form's button
	Agent          string
}

var linkPage = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · trustgate</title><link rel="stylesheet" href="{{.Stylesheet}}"></head>
<body><main><h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{with .Call}}<dl>
<dt>Agent</dt><dd>{{$.Agent}}</dd>
<dt>Tool</dt><dd>{{.Tool}} on {{.Server}}</dd>
{{if $.Arguments}}<dt>Arguments</dt><dd><pre>{{$.Arguments}}</pre></dd>{{end}}
<dt>Waits until</dt><dd>{{.ExpiresAt.UTC.Format "2006-01-02 15:04:05 MST"}}</dd>
</dl>{{end}}
{{if .Action}}<form method="post"><button type="submit" name="decision" value="{{.Action}}">{{if eq .Action "approve"}}Approve this call{{else}}Deny this call{{end}}</button></form>{{end}}
</main></body></html>
`))

func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, p page) {
	p.Stylesheet = s.cfg.URLs.Base(tenant.FromContext(r.Context())) + stylesheetPath
	var buf bytes.Buffer
	if err := linkPage.Execute(&buf, p); err != nil {
		s.log.Error("approval: rendering the link page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// serveLink shows (GET) or applies (POST) one approver's link.
func (s *Service) serveLink(w http.ResponseWriter, r *http.Request) {
	host := tenant.FromContext(r.Context())
	l, err := s.readLink(host, mux.Vars(r)["token"])
	if err != nil {
		status := http.StatusNotFound
		if errors.Is(err, errExpiredLink) {
			status = http.StatusGone
		}
		s.render(w, r, status, page{Title: "Link not valid", Message: err.Error() + "."})
		return
	}
	c, err := s.cfg.Store.GetHeldCall(r.Context(), host, l.Call)
	if errors.Is(err, store.ErrNotFound) {
		s.render(w, r, http.StatusGone, page{Title: "Call gone", Message: "This call is no longer held."})
		return
	}
	if err != nil {
		s.log.Error("approval: reading a held call", "host", host, "id", l.Call, "err", err)
		s.render(w, r, http.StatusServiceUnavailable, page{Title: "Try again", Message: "trustgate could not read the call; try again in a moment."})
		return
	}
	if ok, err := s.MayDecide(r.Context(), c, l.Email); err != nil || !ok {
		s.render(w, r, http.StatusForbidden, page{Title: "Not yours to decide", Message: "The person this link was sent to may no longer decide this call."})
		return
	}
	p := page{Call: &c, Agent: agentName(c), Arguments: prettyArguments(c.Arguments)}
	if c.Status != store.HeldPending {
		p.Title, p.Message = "Already decided", "This call is "+c.Status+"; nothing changed."
		s.render(w, r, http.StatusConflict, p)
		return
	}
	if r.Method == http.MethodGet {
		p.Action = l.Action
		if l.Action == "approve" {
			p.Title = "Approve this call?"
		} else {
			p.Title = "Deny this call?"
		}
		s.render(w, r, http.StatusOK, p)
		return
	}
	decided, err := s.Decide(r.Context(), host, c.ID, l.Action == "approve", l.Email, ChannelEmail)
	switch {
	case errors.Is(err, ErrDecided):
		p.Call = &decided
		p.Title, p.Message = "Already decided", "This call is "+decided.Status+"; nothing changed."
		s.render(w, r, http.StatusConflict, p)
	case err != nil:
		s.log.Error("approval: deciding a held call", "host", host, "id", c.ID, "err", err)
		s.render(w, r, http.StatusServiceUnavailable, page{Title: "Try again", Message: "trustgate could not record your decision; the call still waits."})
	case decided.Status == store.HeldApproved:
		p.Arguments = ""
		p.Title, p.Message = "Approved", "The call goes ahead now."
		s.render(w, r, http.StatusOK, p)
	default:
		p.Arguments = ""
		p.Title, p.Message = "Denied", "The call was refused; the agent is told that you denied it."
		s.render(w, r, http.StatusOK, p)
	}
}

// prettyArguments indents the call's JSON arguments for the page.
func prettyArguments(args string) string {
	if args == "" {
		return ""
	}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(args), "", "  ") != nil {
		return args
	}
	return buf.String()
}
