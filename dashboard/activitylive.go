package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/sdk"
)

// The activity's live tail: Server-Sent Events of the host's new audit entries (with the
// page's filters), read from the admin API's audit route. A stream lasts at most liveMaxAge;
// the browser then reconnects with Last-Event-ID and misses nothing. The viewer's session and
// role are read again at every poll, so signing out or losing the admin role ends the stream.

const (
	livePoll      = time.Second
	liveHeartbeat = 15 * time.Second
	liveMaxAge    = 10 * time.Minute
	liveBatch     = 100
	liveWrite     = 10 * time.Second
	// MaxLiveStreams bounds the live tails open at once on a replica; more are refused 503.
	MaxLiveStreams = 64
)

// liveEntry is one row of the activity table, as the live tail's script shows it.
type liveEntry struct {
	Seq      int64  `json:"seq"`
	Time     string `json:"time"`
	Decision string `json:"decision"`
	Who      string `json:"who"`
	What     string `json:"what"`
	Detail   string `json:"detail"`
}

// row is the activity table's row of e (the same columns the page renders).
func row(e sdk.AuditEntry) liveEntry {
	who := e.Actor
	if who == "" {
		who = e.ClientName
		if e.UserEmail != "" {
			who += " for " + e.UserEmail
		}
	}
	what := strings.TrimSpace(e.Action + " " + e.Object)
	if e.Action == "" {
		what = e.Method + " " + e.Server
		if e.Tool != "" {
			what += "/" + e.Tool
		}
	}
	detail := e.Reason
	if e.AgentLevel != "" {
		detail += " level " + e.AgentLevel
	}
	if e.RequiredLevel != "" {
		detail += ", needs " + e.RequiredLevel
	}
	if e.NewValue != "" {
		detail += " → " + e.NewValue
	}
	if len(e.Flags) > 0 {
		detail += " flags: " + strings.Join(e.Flags, ", ")
	}
	return liveEntry{Seq: e.Seq, Time: e.Time.UTC().Format("2006-01-02 15:04 UTC"), Decision: string(e.Decision),
		Who: who, What: strings.TrimSpace(what), Detail: strings.TrimSpace(detail)}
}

func (d *Dashboard) liveActivity(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	q := r.URL.Query()
	f := sdk.AuditQuery{Human: q.Get("human"), Agent: q.Get("agent"), Server: q.Get("server"), Tool: q.Get("tool"),
		Decision: q.Get("decision"), Flag: q.Get("flag"), Since: q.Get("since"), Until: q.Get("until")}
	// Where to start: after the last entry the browser has (Last-Event-ID on a reconnect, the
	// page's newest entry at first), else after the newest entry now.
	after := int64(-1)
	for _, s := range []string{r.Header.Get("Last-Event-ID"), q.Get("after")} {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			after = n
			break
		}
	}
	select {
	case d.liveSlots <- struct{}{}:
		defer func() { <-d.liveSlots }()
	default:
		d.errorPage(w, r, v, http.StatusServiceUnavailable, "Too many live tails are open on this gateway; try again shortly.")
		return
	}
	ctx := r.Context()
	if after < 0 {
		newest, err := d.api.ListAudit(as(r, v), host, sdk.AuditQuery{Descending: true}, sdk.PageRequest{Limit: 1})
		if err != nil {
			d.apiError(w, r, v, err)
			return
		}
		after = 0
		if len(newest.Items) > 0 {
			after = newest.Items[0].Seq
		}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWrite))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 2000\n\n") {
		return
	}
	poll := time.NewTicker(livePoll)
	defer poll.Stop()
	started, lastSent := d.now(), d.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if d.now().Sub(started) > liveMaxAge {
			return // the browser reconnects with Last-Event-ID
		}
		// The session and the role, as at every request.
		cur, err := d.viewer(r)
		if err != nil || cur == nil || cur.refuse(hostAdmin, host) != "" {
			_ = send("event: end\ndata: signed out\n\n")
			return
		}
		page, err := d.api.ListAudit(as(r, cur), host, f, sdk.PageRequest{Limit: liveBatch, Cursor: sdk.AuditCursor(after)})
		if err != nil {
			_, msg := apiMessage(err)
			_ = send("event: end\ndata: " + strings.ReplaceAll(msg, "\n", " ") + "\n\n")
			return
		}
		for _, e := range page.Items {
			data, err := json.Marshal(row(e))
			if err != nil {
				return
			}
			if !send("id: " + strconv.FormatInt(e.Seq, 10) + "\nevent: entry\ndata: " + string(data) + "\n\n") {
				return
			}
			after, lastSent = e.Seq, d.now()
		}
		if d.now().Sub(lastSent) >= liveHeartbeat {
			if !send(": still here\n\n") {
				return
			}
			lastSent = d.now()
		}
	}
}
