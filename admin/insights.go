package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// Insights: GET /api/v1/hosts/{host}/insights analyses who may do what on a host (human →
// agent → server → the tools at the agent's level) and where that is more than is used. The
// work is bounded: the host's humans, agents, grants, consents, servers and tools are read in
// one list each (no query per object), usage comes from at most insightAuditLimit audit
// entries of the usage window, the humans are answered a page at a time and the findings are
// capped at insightFindingsLimit (their counts are complete).

const (
	// insightUsageWindow is how far back usage counts.
	insightUsageWindow = 30 * 24 * time.Hour
	// insightAuditLimit bounds the audit entries read for usage (newest first).
	insightAuditLimit = 200_000
	// insightFindingsLimit bounds the findings in one answer.
	insightFindingsLimit = 500
	// insightAuditPage is how many audit entries are read at a time.
	insightAuditPage = 1000
)

// usageKey names an agent's usage of one server.
type usageKey struct{ agent, server string }

// usage is what an agent called on a server in the window: each tool with the level its
// audit entry names (0: none; allowed calls name none, and the tool's level is used).
type usage struct {
	tools map[string]schema.Level
}

// hostAnalysis is a host's objects read once, and what follows from them.
type hostAnalysis struct {
	users    []store.User
	agents   map[string][]store.Agent // by user id
	grants   map[string][]store.Grant // by user id
	consents map[string][]store.Consent
	servers  []store.Server
	tools    map[string][]store.Tool // by server key
	used     map[usageKey]*usage
	// callers counts, per server and tool, the agents that can call it now.
	callers map[string]map[string]int
}

func (a *API) insights(r *http.Request, _ *caller) (int, any, error) {
	ctx := r.Context()
	host := r.PathValue("host")
	if _, err := a.cfg.Store.GetHost(ctx, host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	now := time.Now().UTC()
	out := Insights{Host: host, GeneratedAt: now, UsageSince: now.Add(-insightUsageWindow), AuditLimit: insightAuditLimit,
		FindingsLimit: insightFindingsLimit, Humans: []InsightHuman{}, Servers: []InsightServer{}, Findings: []InsightFinding{}}
	h, err := a.readHost(ctx, host)
	if err != nil {
		return 0, nil, err
	}
	if out.AuditRead, out.AuditTruncated, err = h.readUsage(ctx, a.cfg.Store, host, out.UsageSince); err != nil {
		return 0, nil, err
	}
	h.countCallers()

	// The page of humans (by email), each with their ceilings and agents.
	page, err := paginate(r, slices.Clone(h.users), func(u store.User) string { return u.Email })
	if err != nil {
		return 0, nil, err
	}
	out.NextCursor = page.NextCursor
	for _, u := range page.Items {
		out.Humans = append(out.Humans, h.humanDoc(u))
	}
	for _, s := range h.servers {
		doc := InsightServer{Key: s.Key, Name: s.Name, Tools: []InsightTool{}}
		for _, t := range h.tools[s.Key] {
			it := InsightTool{Name: t.Name, Enabled: toolCallable(t), Callers: h.callers[s.Key][t.Name]}
			if it.Enabled {
				it.Level = t.Level.String()
				it.Uncallable = it.Callers == 0
			}
			doc.Tools = append(doc.Tools, it)
		}
		out.Servers = append(out.Servers, doc)
	}

	findings := h.findings()
	out.Counts = InsightCounts{Humans: len(h.users), Servers: len(h.servers)}
	for _, ags := range h.agents {
		out.Counts.Agents += len(ags)
	}
	for _, ts := range h.tools {
		out.Counts.Tools += len(ts)
	}
	for _, f := range findings {
		switch f.Kind {
		case sdk.FindingUnusedLevel:
			out.Counts.UnusedLevels++
		case sdk.FindingUnusedCeiling:
			out.Counts.UnusedCeilings++
		case sdk.FindingUncallableTool:
			out.Counts.UncallableTools++
		}
	}
	if len(findings) > insightFindingsLimit {
		findings, out.FindingsTruncated = findings[:insightFindingsLimit], true
	}
	out.Findings = append(out.Findings, findings...)
	return http.StatusOK, out, nil
}

// readHost reads the host's humans, agents, grants, consents, servers and tools, one list each
// (and one list of tools per server).
func (a *API) readHost(ctx context.Context, host string) (*hostAnalysis, error) {
	st := a.cfg.Store
	h := &hostAnalysis{agents: map[string][]store.Agent{}, grants: map[string][]store.Grant{}, consents: map[string][]store.Consent{},
		tools: map[string][]store.Tool{}, used: map[usageKey]*usage{}, callers: map[string]map[string]int{}}
	var err error
	if h.users, err = st.ListUsers(ctx, host); err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	agents, err := st.ListAgents(ctx, host, "")
	if err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	for _, ag := range agents {
		h.agents[ag.UserID] = append(h.agents[ag.UserID], ag)
	}
	grants, err := st.ListGrants(ctx, host, "")
	if err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	for _, g := range grants {
		h.grants[g.UserID] = append(h.grants[g.UserID], g)
	}
	consents, err := st.ListConsents(ctx, host, "")
	if err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	for _, c := range consents {
		h.consents[c.AgentID] = append(h.consents[c.AgentID], c)
	}
	if h.servers, err = st.ListServers(ctx, host); err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	sort.Slice(h.servers, func(i, j int) bool { return h.servers[i].Key < h.servers[j].Key })
	for _, s := range h.servers {
		tools, err := st.ListTools(ctx, host, s.Key)
		if err != nil {
			return nil, fmt.Errorf("insights: %w", err)
		}
		sort.Slice(tools, func(i, j int) bool { return tools[i].Name < tools[j].Name })
		h.tools[s.Key] = tools
	}
	sort.Slice(h.users, func(i, j int) bool { return h.users[i].Email < h.users[j].Email })
	return h, nil
}

// readUsage reads the allowed tool calls of the window, newest first, up to insightAuditLimit.
func (h *hostAnalysis) readUsage(ctx context.Context, st Store, host string, since time.Time) (read int, truncated bool, err error) {
	f := audit.Filter{Host: host, Decision: audit.Allowed, Since: since, Descending: true}
	var cursor int64
	for {
		n := min(insightAuditPage, insightAuditLimit-read)
		if n == 0 {
			// The limit was reached: truncated unless nothing older is left.
			more, err := st.ListAudit(ctx, f, cursor, 1)
			if err != nil {
				return read, false, fmt.Errorf("insights: read the audit log: %w", err)
			}
			return read, len(more) > 0, nil
		}
		entries, err := st.ListAudit(ctx, f, cursor, n)
		if err != nil {
			return read, false, fmt.Errorf("insights: read the audit log: %w", err)
		}
		for _, e := range entries {
			cursor = e.Seq
			if e.Tool == "" || e.AgentID == "" || e.Server == "" {
				continue
			}
			k := usageKey{e.AgentID, e.Server}
			u := h.used[k]
			if u == nil {
				u = &usage{tools: map[string]schema.Level{}}
				h.used[k] = u
			}
			if _, seen := u.tools[e.Tool]; !seen {
				l, _ := schema.ParseLevel(e.RequiredLevel)
				u.tools[e.Tool] = l
			}
		}
		read += len(entries)
		if len(entries) < n {
			return read, false, nil
		}
	}
}

// highestUsed is the highest level among the tools an agent called on server in the window:
// each tool's level now, or the one its audit entry named when the tool is gone (0: none).
func (h *hostAnalysis) highestUsed(agentID, server string) schema.Level {
	u := h.used[usageKey{agentID, server}]
	if u == nil {
		return 0
	}
	var highest schema.Level
	for name, recorded := range u.tools {
		level := recorded
		for _, t := range h.tools[server] {
			if t.Name == name && t.Level.Valid() {
				level = t.Level
				break
			}
		}
		highest = max(highest, level)
	}
	return highest
}

// toolCallable says whether a tool can be called at its level by anyone (enabled, approved).
func toolCallable(t store.Tool) bool { return t.Enabled && !t.Flagged && t.Level.Valid() }

// ceilingOf is the user's ceiling on server (0: none).
func (h *hostAnalysis) ceilingOf(userID, server string) schema.Level {
	for _, g := range h.grants[userID] {
		if g.Server == server {
			return g.Ceiling
		}
	}
	return 0
}

// effective is the level an agent holds on a server: its consent capped by its human's
// ceiling; 0 when disabled, revoked or never granted.
func (h *hostAnalysis) effective(ag store.Agent, c store.Consent) schema.Level {
	if ag.Disabled {
		return 0
	}
	ceiling := h.ceilingOf(ag.UserID, c.Server)
	if !ceiling.Valid() || !c.Level.Valid() {
		return 0
	}
	return schema.MinLevel(c.Level, ceiling)
}

// reachable are the enabled tools of server at or below level.
func (h *hostAnalysis) reachable(server string, level schema.Level) []string {
	out := []string{}
	if !level.Valid() {
		return out
	}
	for _, t := range h.tools[server] {
		if toolCallable(t) && t.Level <= level {
			out = append(out, t.Name)
		}
	}
	return out
}

func (h *hostAnalysis) countCallers() {
	for _, ags := range h.agents {
		for _, ag := range ags {
			for _, c := range h.consents[ag.ID] {
				for _, name := range h.reachable(c.Server, h.effective(ag, c)) {
					if h.callers[c.Server] == nil {
						h.callers[c.Server] = map[string]int{}
					}
					h.callers[c.Server][name]++
				}
			}
		}
	}
}

func (h *hostAnalysis) humanDoc(u store.User) InsightHuman {
	doc := InsightHuman{ID: u.ID, Email: u.Email, Admin: u.Admin, Ceilings: []Grant{}, Agents: []InsightAgent{}}
	for _, g := range h.grants[u.ID] {
		doc.Ceilings = append(doc.Ceilings, Grant{Server: g.Server, Ceiling: g.Ceiling.String()})
	}
	for _, ag := range h.agents[u.ID] {
		ia := InsightAgent{ID: ag.ID, Name: ag.Name, Disabled: ag.Disabled, LastActiveAt: timePtr(ag.LastActiveAt), Servers: []InsightAgentServer{}}
		for _, c := range h.consents[ag.ID] {
			eff := h.effective(ag, c)
			s := InsightAgentServer{Server: c.Server, Level: c.Level.String(), Ceiling: levelName(h.ceilingOf(ag.UserID, c.Server)),
				Effective: levelName(eff), Tools: h.reachable(c.Server, eff), Used: []string{}, HighestUsed: "none"}
			if u := h.used[usageKey{ag.ID, c.Server}]; u != nil {
				for name := range u.tools {
					s.Used = append(s.Used, name)
				}
				sort.Strings(s.Used)
				s.HighestUsed = levelName(h.highestUsed(ag.ID, c.Server))
			}
			ia.Servers = append(ia.Servers, s)
		}
		doc.Agents = append(doc.Agents, ia)
	}
	return doc
}

// findings are the host's over-permission, in a stable order: unused levels, unused ceilings,
// uncallable tools, each by human (email) or server, then agent or tool.
func (h *hostAnalysis) findings() []InsightFinding {
	var out []InsightFinding
	window := fmt.Sprintf("%d days", int(insightUsageWindow.Hours()/24))
	for _, u := range h.users {
		for _, ag := range h.agents[u.ID] {
			for _, c := range h.consents[ag.ID] {
				eff := h.effective(ag, c)
				if !eff.Valid() {
					continue
				}
				highest := h.highestUsed(ag.ID, c.Server)
				if highest >= eff {
					continue
				}
				f := InsightFinding{Kind: sdk.FindingUnusedLevel, HumanID: u.ID, HumanEmail: u.Email, Agent: ag.ID, AgentName: ag.Name,
					Server: c.Server, Level: eff.String(), Suggested: levelName(highest)}
				if highest.Valid() {
					f.Text = fmt.Sprintf("Agent %q of %s holds %s on %s but called no %s tool in %s (at most %s): lower it to %s.",
						ag.Name, u.Email, eff, c.Server, eff, window, highest, highest)
				} else {
					f.Text = fmt.Sprintf("Agent %q of %s holds %s on %s but called no tool there in %s: revoke it.", ag.Name, u.Email, eff, c.Server, window)
				}
				out = append(out, f)
			}
		}
		for _, g := range h.grants[u.ID] {
			var held schema.Level
			for _, ag := range h.agents[u.ID] {
				for _, c := range h.consents[ag.ID] {
					if c.Server == g.Server {
						held = max(held, h.effective(ag, c))
					}
				}
			}
			if held >= g.Ceiling {
				continue
			}
			f := InsightFinding{Kind: sdk.FindingUnusedCeiling, HumanID: u.ID, HumanEmail: u.Email, Server: g.Server,
				Level: g.Ceiling.String(), Suggested: levelName(held)}
			if held.Valid() {
				f.Text = fmt.Sprintf("The ceiling of %s on %s is %s, but none of their agents holds more than %s there.", u.Email, g.Server, g.Ceiling, held)
			} else {
				f.Text = fmt.Sprintf("The ceiling of %s on %s is %s, but no agent of theirs holds a level there.", u.Email, g.Server, g.Ceiling)
			}
			out = append(out, f)
		}
	}
	for _, s := range h.servers {
		for _, t := range h.tools[s.Key] {
			if !toolCallable(t) || h.callers[s.Key][t.Name] > 0 {
				continue
			}
			out = append(out, InsightFinding{Kind: sdk.FindingUncallableTool, Server: s.Key, Tool: t.Name, Level: t.Level.String(),
				Text: fmt.Sprintf("Tool %s of %s is enabled at %s, but no agent can call it.", t.Name, s.Key, t.Level)})
		}
	}
	return out
}
