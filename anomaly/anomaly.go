// Package anomaly flags an agent's tool calls that are new for it: the first call of a tool it
// never used, the first use of a server, a call outside its human's usual hours, a call rate far
// above its own baseline, many denials in a row.
//
// Every flag is derived from the audit log, which the replicas share: what an agent did before
// is what its audit entries say. Each replica keeps only bounded caches in front of it (the
// tools an agent is known to have used, the agent's recent rate, the human's usual hours), so
// the cost in steady state is a few audit reads per agent a minute, not one per call. Two
// replicas may both flag the same first call; a flag is a signal, never a decision.
package anomaly

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

// Flag is one kind of anomaly.
type Flag string

// The flags.
const (
	NewTool      Flag = "new_tool"      // the agent's first call of this tool
	NewServer    Flag = "new_server"    // the agent's first call on this server
	OffHours     Flag = "off_hours"     // outside the human's usual hours
	RateSpike    Flag = "rate_spike"    // far above the agent's own call rate
	DenialStreak Flag = "denial_streak" // many denials in a row
)

// Flags are every flag, in the order they are reported.
var Flags = []Flag{NewTool, NewServer, OffHours, RateSpike, DenialStreak}

// Defaults of store.AnomalySettings.
const (
	DefaultRateFactor       = 10.0
	DefaultRateMinPerMinute = 20
	DefaultDenialStreak     = 5
	// learnedHistory is how far back usual hours are learned; learnedMinCalls the calls the
	// history needs before an hour without any counts as unusual.
	learnedHistory  = 14 * 24 * time.Hour
	learnedMinCalls = 50
	// Cache lifetimes: how stale a replica's view may be.
	hoursTTL = time.Hour
	rateTTL  = 10 * time.Second
	// quiet is how long a flag of one agent is not raised again by this replica (rate, hours,
	// streak).
	quiet = 10 * time.Minute
	// historyPage bounds one audit read.
	historyPage = 1000
	// maxEntries bounds each cache (entries); a full cache is emptied and refilled.
	maxEntries = 1 << 16
)

// AuditReader reads the audit log (the store).
type AuditReader interface {
	ListAudit(ctx context.Context, f audit.Filter, cursor int64, limit int) ([]audit.Entry, error)
}

// Call is one tools/call as the proxy decided it.
type Call struct {
	Host, UserID, AgentID, Server, Tool string
	// Denied: the call was refused by policy (only DenialStreak is checked).
	Denied bool
	Time   time.Time
}

// Detector flags calls. It is safe for concurrent use.
type Detector struct {
	audit AuditReader
	now   func() time.Time

	mu      sync.Mutex
	used    map[string]struct{}  // host/agent/server[/tool] the agent is known to have called
	rates   map[string]rateEntry // host/agent
	hours   map[string]hoursEntry
	flagged map[string]time.Time // host/agent/flag: when this replica last raised it
	// denials are the latest denied tool calls of each agent (host/agent) this replica
	// decided since its last allowed one, newest last: their audit entries may not be written
	// yet when the next call is decided (denialStreak).
	denials map[string][]time.Time
}

type rateEntry struct {
	at       time.Time
	lastMin  int     // allowed calls in the last minute
	baseline float64 // allowed calls a minute over the hour before
}

type hoursEntry struct {
	at     time.Time
	counts [24]int // allowed calls per hour of day (UTC)
	total  int
}

// New makes a detector over the audit log.
func New(r AuditReader) *Detector {
	return &Detector{audit: r, now: time.Now, used: map[string]struct{}{}, rates: map[string]rateEntry{},
		hours: map[string]hoursEntry{}, flagged: map[string]time.Time{}, denials: map[string][]time.Time{}}
}

// SetClock replaces the clock (tests).
func (d *Detector) SetClock(now func() time.Time) { d.now = now }

// Detect returns the flags of the call that the host's settings turn on, in the order of Flags.
// An audit read that fails leaves its flags out (never the call: flags do not decide).
func (d *Detector) Detect(ctx context.Context, s store.AnomalySettings, c Call) []Flag {
	if len(s.Flags) == 0 {
		return nil
	}
	if c.Time.IsZero() {
		c.Time = d.now()
	}
	on := func(f Flag) bool { return slices.Contains(s.Flags, string(f)) }
	var out []Flag
	if on(DenialStreak) {
		d.noteDecision(c)
	}
	if c.Denied {
		if on(DenialStreak) && d.denialStreak(ctx, s, c) {
			out = append(out, DenialStreak)
		}
		return out
	}
	if on(NewTool) || on(NewServer) {
		newServer, newTool := d.firstUse(ctx, c, on(NewServer), on(NewTool))
		if newTool {
			out = append(out, NewTool)
		}
		if newServer {
			out = append(out, NewServer)
		}
		slices.SortFunc(out, func(a, b Flag) int { return slices.Index(Flags, a) - slices.Index(Flags, b) })
	}
	if on(OffHours) && d.offHours(ctx, s, c) && d.raise(c, OffHours) {
		out = append(out, OffHours)
	}
	if on(RateSpike) && d.rateSpike(ctx, s, c) && d.raise(c, RateSpike) {
		out = append(out, RateSpike)
	}
	return out
}

// raise reports whether the flag is raised now: not within quiet of the last time this replica
// raised it for the agent.
func (d *Detector) raise(c Call, f Flag) bool {
	key := c.Host + "/" + c.AgentID + "/" + string(f)
	d.mu.Lock()
	defer d.mu.Unlock()
	if at, ok := d.flagged[key]; ok && c.Time.Sub(at) < quiet {
		return false
	}
	if len(d.flagged) >= maxEntries {
		clear(d.flagged)
	}
	d.flagged[key] = c.Time
	return true
}

// firstUse reports whether the call is the agent's first on its server and of its tool: no
// allowed audit entry of the agent names them.
func (d *Detector) firstUse(ctx context.Context, c Call, checkServer, checkTool bool) (newServer, newTool bool) {
	serverKey := c.Host + "/" + c.AgentID + "/" + c.Server
	toolKey := serverKey + "/" + c.Tool
	d.mu.Lock()
	_, knownServer := d.used[serverKey]
	_, knownTool := d.used[toolKey]
	d.mu.Unlock()
	seen := func(tool string) (bool, error) {
		es, err := d.audit.ListAudit(ctx, audit.Filter{Host: c.Host, AgentID: c.AgentID, Server: c.Server, Tool: tool,
			Decision: audit.Allowed, Until: c.Time, Descending: true}, 0, 1)
		return len(es) > 0, err
	}
	if checkTool && !knownTool {
		used, err := seen(c.Tool)
		if err == nil {
			newTool = !used
			knownServer = knownServer || used
		}
	}
	if checkServer && !knownServer {
		used, err := seen("")
		if err == nil {
			newServer = !used
		}
	}
	d.mu.Lock()
	if len(d.used) >= maxEntries {
		clear(d.used)
	}
	d.used[serverKey], d.used[toolKey] = struct{}{}, struct{}{} // this call is in the log now
	d.mu.Unlock()
	return newServer, newTool
}

// offHours reports whether the call is outside the human's usual hours: the host's window when
// it sets one, else the hours (UTC) in which the human's agents called tools over the last two
// weeks — once there are enough calls to tell.
func (d *Detector) offHours(ctx context.Context, s store.AnomalySettings, c Call) bool {
	if w := s.UsualHours; w != nil {
		loc, err := time.LoadLocation(w.Timezone)
		if err != nil {
			loc = time.UTC
		}
		return !w.Contains(c.Time.In(loc).Hour())
	}
	if c.UserID == "" {
		return false
	}
	key := c.Host + "/" + c.UserID
	d.mu.Lock()
	h, ok := d.hours[key]
	d.mu.Unlock()
	if !ok || c.Time.Sub(h.at) > hoursTTL {
		es, err := d.audit.ListAudit(ctx, audit.Filter{Host: c.Host, UserID: c.UserID, Decision: audit.Allowed,
			Since: c.Time.Add(-learnedHistory), Until: c.Time, Descending: true}, 0, historyPage)
		if err != nil {
			return false
		}
		h = hoursEntry{at: c.Time}
		for _, e := range es {
			if e.Tool != "" {
				h.counts[e.Time.UTC().Hour()]++
				h.total++
			}
		}
		d.mu.Lock()
		if len(d.hours) >= maxEntries {
			clear(d.hours)
		}
		d.hours[key] = h
		d.mu.Unlock()
	}
	return h.total >= learnedMinCalls && h.counts[c.Time.UTC().Hour()] == 0
}

// rateSpike reports whether the agent's calls in the last minute are at least the host's factor
// times its baseline (its average a minute over the hour before) and at least the minimum.
func (d *Detector) rateSpike(ctx context.Context, s store.AnomalySettings, c Call) bool {
	factor, minimum := s.RateFactor, s.RateMinPerMinute
	if factor <= 0 {
		factor = DefaultRateFactor
	}
	if minimum <= 0 {
		minimum = DefaultRateMinPerMinute
	}
	key := c.Host + "/" + c.AgentID
	d.mu.Lock()
	r, ok := d.rates[key]
	d.mu.Unlock()
	if !ok || c.Time.Sub(r.at) > rateTTL {
		es, err := d.audit.ListAudit(ctx, audit.Filter{Host: c.Host, AgentID: c.AgentID, Decision: audit.Allowed,
			Since: c.Time.Add(-time.Hour), Until: c.Time.Add(time.Millisecond), Descending: true}, 0, historyPage)
		if err != nil {
			return false
		}
		r = rateEntry{at: c.Time}
		before := 0
		for _, e := range es {
			if e.Tool == "" {
				continue
			}
			if c.Time.Sub(e.Time) <= time.Minute {
				r.lastMin++
			} else {
				before++
			}
		}
		r.baseline = float64(before) / 59
		d.mu.Lock()
		if len(d.rates) >= maxEntries {
			clear(d.rates)
		}
		d.rates[key] = r
		d.mu.Unlock()
	} else {
		r.lastMin++ // this call, between two reads
		d.mu.Lock()
		d.rates[key] = r
		d.mu.Unlock()
	}
	return r.lastMin >= minimum && float64(r.lastMin) >= factor*max(r.baseline, 1.0/60)
}

// denialStreak reports whether this denial makes the host's number of denials in a row of the
// agent's tool calls (allowed calls break a streak).
func (d *Detector) denialStreak(ctx context.Context, s store.AnomalySettings, c Call) bool {
	n := s.DenialStreak
	if n <= 0 {
		n = DefaultDenialStreak
	}
	es, err := d.audit.ListAudit(ctx, audit.Filter{Host: c.Host, AgentID: c.AgentID, Until: c.Time.Add(time.Millisecond), Descending: true}, 0, 4*n)
	if err != nil {
		return false
	}
	streak := 1 // this denial, whose entry is not written yet
	var lastAllowed time.Time
	for _, e := range es {
		if e.Tool == "" || (e.Decision != audit.Denied && e.Decision != audit.Allowed) {
			continue
		}
		if e.Decision == audit.Allowed {
			lastAllowed = e.Time
			break
		}
		streak++
	}
	// The denials this replica decided after the last allowed call the log shows (this one
	// among them) count too: the log may not have the latest yet, since audit entries of
	// denials are written in the background. Whichever count is larger is the streak, so a
	// denial is never counted twice.
	d.mu.Lock()
	mine := 0
	for _, t := range d.denials[c.Host+"/"+c.AgentID] {
		if t.After(lastAllowed) {
			mine++
		}
	}
	d.mu.Unlock()
	return max(streak, mine) >= n && d.raise(c, DenialStreak)
}

// maxNotedDenials bounds the denials noted per agent.
const maxNotedDenials = 64

// noteDecision notes a tool call this replica decided for the denial streak: a denial is added
// to its agent's, an allowed call ends it.
func (d *Detector) noteDecision(c Call) {
	key := c.Host + "/" + c.AgentID
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.Denied {
		delete(d.denials, key)
		return
	}
	if _, ok := d.denials[key]; !ok && len(d.denials) >= maxEntries {
		clear(d.denials)
	}
	ts := append(d.denials[key], c.Time)
	if len(ts) > maxNotedDenials {
		ts = ts[len(ts)-maxNotedDenials:]
	}
	d.denials[key] = ts
}

// Describe is the flags as the audit entry's reason says them.
func Describe(flags []Flag) string {
	if len(flags) == 0 {
		return ""
	}
	s := "anomaly:"
	for i, f := range flags {
		if i > 0 {
			s += ","
		}
		s += " " + string(f)
	}
	return s
}

// Message is the webhook text of a flagged call.
func Message(c Call, flags []Flag, suspended bool) string {
	msg := fmt.Sprintf("trustgate: agent %s (host %s) called %s on %s — %s", c.AgentID, c.Host, c.Tool, c.Server, Describe(flags))
	if suspended {
		msg += ". The agent was suspended by the host's policy."
	}
	return msg
}
