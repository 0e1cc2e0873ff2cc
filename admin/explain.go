package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// Why? GET /api/v1/hosts/{host}/explain?agent=&server=&tool= says whether an agent may call a
// tool now and what decided it: the proxy's decision (Decider), the conditions of a tool call
// in words, and the relationships and trace of the authorization engine's check
// (authzserver.Explainer) when the backend can trace; the Permit backend cannot, and the
// answer says so and explains from trustgate's store alone.

// Step kinds, in the order a tool call's conditions are listed.
const (
	stepAgent      = "agent"
	stepMembership = "host_membership"
	stepServer     = "server"
	stepTool       = "tool"
	stepCeiling    = "ceiling"
	stepGrant      = "grant"
)

// decisiveStep is the step a denial's reason points at ("" for none).
var decisiveStep = map[string]string{
	"agent_removed": stepAgent, "agent_disabled": stepAgent,
	"unknown_server": stepServer,
	"no_access":      stepCeiling, "ceiling_too_low": stepCeiling,
	"not_consented": stepGrant, "level_too_low": stepGrant,
	"unknown_tool": stepTool, "tool_disabled": stepTool, "tool_pending_review": stepTool,
	"argument_condition": stepTool,
}

// explainFacts are what a tool call's check depends on. Levels are 0 when absent.
type explainFacts struct {
	host, agentID, server, tool string

	agent       store.Agent
	agentFound  bool
	owner       store.User
	ownerFound  bool
	member      bool
	serverFound bool
	toolFound   bool
	toolFlagged bool
	toolLevel   schema.Level // 0: disabled (no server_* relationship)
	// toolCaveat names the caveat of the tool's relationship (conditions on its arguments).
	toolCaveat string
	ceiling    schema.Level
	granted    schema.Level
}

func (a *API) explain(r *http.Request, _ *caller) (int, any, error) {
	q := r.URL.Query()
	agentID, server, tool := q.Get("agent"), q.Get("server"), q.Get("tool")
	if err := checkFields(map[string]string{"agent": agentID, "server": server, "tool": tool}); err != nil {
		return 0, nil, err
	}
	host, err := a.decidingHost(r)
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	d, err := a.cfg.Decider.CheckToolCall(ctx, host, agentID, server, tool, nil)
	if err != nil {
		return 0, nil, a.undecided(r, err)
	}
	f, err := a.storeFacts(ctx, host, agentID, server, tool)
	if err != nil {
		return 0, nil, a.undecided(r, err)
	}
	out := Explanation{Agent: agentID, Server: server, Tool: tool, Allowed: d.Allowed, Reason: sdk.ReasonAllowed,
		Steps: []ExplanationStep{}, Relationships: []ExplainedRelationship{}}
	if !d.Allowed {
		out.Reason = string(d.Reason)
	}
	if f.agentFound {
		out.AgentName = f.agent.Name
		out.HumanEmail = f.owner.Email
	}

	ex, ok := a.cfg.Backend.(authzserver.Explainer)
	if !ok {
		out.TraceNote = "This authorization backend does not trace its checks, so the relationships and the engine's trace are not available; the steps below are from trustgate's store."
	} else {
		tr, err := ex.ExplainToolCall(ctx, host, server, tool, agentID)
		if err != nil {
			return 0, nil, a.undecided(r, err)
		}
		out.TraceAvailable, out.Revision = true, string(tr.Revision)
		step := traceDoc(tr.Trace)
		out.Trace = &step
		if tr.TraceTruncated {
			out.TraceNote = fmt.Sprintf("The trace had more than %d steps; the rest are left out.", authzserver.MaxTraceSteps)
		}
		engine := f.fromRelationships(tr.Relationships)
		if note := f.disagreement(engine); note != "" {
			out.Notes = append(out.Notes, note)
		}
		f = engine
		switch {
		case tr.Trace.Result == authzserver.TraceConditional:
			out.Notes = append(out.Notes, "The tool has conditions on its arguments (a caveat on its relationship): SpiceDB's answer depends on a call's arguments, which this question does not give, so the trace ends conditional; a call is allowed only with arguments that meet the conditions (POST …/check takes them).")
		case tr.Allowed != d.Allowed && (d.Allowed || decisiveStep[out.Reason] != ""):
			out.Notes = append(out.Notes, "The engine's check and the proxy's decision differ: a change is still being applied. Ask again in a few seconds.")
		}
		for _, rel := range tr.Relationships {
			out.Relationships = append(out.Relationships, ExplainedRelationship{Relationship: rel.String(), Meaning: f.meaning(rel)})
		}
	}
	out.Steps = f.steps()
	if !d.Allowed && out.Reason == "pending_change" {
		out.Notes = append(out.Notes, "The authorization backend has not applied a change of this host yet (it failed, waits longer than the gateway allows, or was set aside): every call on the host is refused until it is, whatever the steps below say. A change the backend refused for good is listed by GET set-aside-changes (the dashboard's host page, `trustgate admin outbox list`), and retried or discarded there.")
	}
	if !d.Allowed && decisiveStep[out.Reason] == "" && out.Reason != "pending_change" {
		out.Notes = append(out.Notes, fmt.Sprintf("This denial (%s) comes from a safety policy of the host, checked beside who may do what: see the summary.", out.Reason))
	}
	if want := decisiveStep[out.Reason]; want != "" {
		for i := range out.Steps {
			if out.Steps[i].Kind == want {
				out.Steps[i].Decisive = true
				break
			}
		}
	}
	if d.Allowed {
		out.Summary = fmt.Sprintf("Allowed: %s needs level %s; %s holds %s on %s and its human's ceiling there is %s.",
			tool, f.toolLevel, f.agentName(), f.granted, server, f.ceiling)
	} else {
		out.Summary = d.Message
	}
	return http.StatusOK, out, nil
}

// storeFacts reads the facts of a tool call from the store.
func (a *API) storeFacts(ctx context.Context, host, agentID, server, tool string) (explainFacts, error) {
	f := explainFacts{host: host, agentID: agentID, server: server, tool: tool}
	st := a.cfg.Store
	ag, err := st.GetAgent(ctx, host, agentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return f, fmt.Errorf("read agent: %w", err)
	default:
		f.agent, f.agentFound = ag, true
		f.member = !ag.Disabled
		if u, err := st.GetUser(ctx, host, ag.UserID); err == nil {
			f.owner, f.ownerFound = u, true
		} else if !errors.Is(err, store.ErrNotFound) {
			return f, fmt.Errorf("read human: %w", err)
		}
	}
	if _, err := st.GetServer(ctx, host, server); err == nil {
		f.serverFound = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return f, fmt.Errorf("read server: %w", err)
	}
	if !f.serverFound {
		return f, nil
	}
	if t, err := st.GetTool(ctx, host, server, tool); err == nil {
		f.toolFound, f.toolFlagged = true, t.Flagged
		if t.Enabled && !t.Flagged {
			f.toolLevel = t.Level
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return f, fmt.Errorf("read tool: %w", err)
	}
	if f.agentFound && !f.agent.Disabled {
		if g, err := st.GetGrant(ctx, host, server, f.agent.UserID); err == nil {
			f.ceiling = g.Ceiling
		} else if !errors.Is(err, store.ErrNotFound) {
			return f, fmt.Errorf("read ceiling: %w", err)
		}
		if c, err := st.GetConsent(ctx, host, agentID, server); err == nil {
			f.granted = c.Level
		} else if !errors.Is(err, store.ErrNotFound) {
			return f, fmt.Errorf("read grant: %w", err)
		}
	}
	return f, nil
}

// fromRelationships is f with what the engine holds in place of the store's levels and
// membership: the engine enforces.
func (f explainFacts) fromRelationships(rels []schema.Relationship) explainFacts {
	e := f
	e.member, e.toolLevel, e.ceiling, e.granted = false, 0, 0, 0
	agent := schema.Agent(f.host, f.agentID)
	server := schema.Server(f.host, f.server)
	tool := schema.Tool(f.host, f.server, f.tool)
	for _, r := range rels {
		switch {
		case r == schema.Relationship{Resource: schema.Host(f.host), Relation: schema.RelHostAgent, Subject: schema.SubjectRef{Object: agent}}:
			e.member = true
		case r.Resource == tool && r.Subject.Object == server:
			e.toolLevel = max(e.toolLevel, levelOfRelation(r.Relation, "server_"))
			e.toolCaveat = r.Caveat
		case r.Resource == server && r.Subject.Object == agent:
			// The consent, and the agent's copy of its human's ceiling.
			e.granted = max(e.granted, levelOfRelation(r.Relation, "granted_"))
			e.ceiling = max(e.ceiling, levelOfRelation(r.Relation, "ceiling_"))
		}
	}
	if e.granted == 0 && f.granted == 0 {
		// Without a consent the engine holds no copy of the ceiling: nothing to compare.
		e.ceiling = f.ceiling
	}
	return e
}

// disagreement says how the store and the engine differ, "" when they agree.
func (f explainFacts) disagreement(engine explainFacts) string {
	if f.member == engine.member && f.toolLevel == engine.toolLevel && f.ceiling == engine.ceiling && f.granted == engine.granted {
		return ""
	}
	return fmt.Sprintf("trustgate's store and the authorization engine differ (store: tool %s, ceiling %s, grant %s; engine: tool %s, ceiling %s, grant %s): a change is still being applied, and the engine decides.",
		levelName(f.toolLevel), levelName(f.ceiling), levelName(f.granted), levelName(engine.toolLevel), levelName(engine.ceiling), levelName(engine.granted))
}

func levelOfRelation(relation, prefix string) schema.Level {
	if len(relation) <= len(prefix) || relation[:len(prefix)] != prefix {
		return 0
	}
	l, err := schema.ParseLevel(relation[len(prefix):])
	if err != nil {
		return 0
	}
	return l
}

func levelName(l schema.Level) string {
	if !l.Valid() {
		return "none"
	}
	return l.String()
}

func (f explainFacts) agentName() string {
	if f.agentFound && f.agent.Name != "" {
		return fmt.Sprintf("agent %q", f.agent.Name)
	}
	return "agent " + f.agentID
}

func (f explainFacts) humanName() string {
	if f.ownerFound {
		return f.owner.Email
	}
	return "the agent's human"
}

// steps are the conditions of the tool call, each held or not, in words, with the
// relationships each rests on.
func (f explainFacts) steps() []ExplanationStep {
	agent := schema.Agent(f.host, f.agentID)
	membership := schema.Relationship{Resource: schema.Host(f.host), Relation: schema.RelHostAgent, Subject: schema.SubjectRef{Object: agent}}
	var steps []ExplanationStep

	s := ExplanationStep{Kind: stepAgent}
	switch {
	case !f.agentFound:
		s.Text = fmt.Sprintf("There is no agent %s on host %s: it was removed, or it belongs to another host.", f.agentID, f.host)
	case f.agent.Disabled:
		s.Text = fmt.Sprintf("%s was stopped with the kill switch (disabled): it holds no relationship and may call nothing.", f.agentName())
	default:
		s.Held = true
		s.Text = fmt.Sprintf("%s is enabled and acts for %s.", f.agentName(), f.humanName())
	}
	steps = append(steps, s)

	s = ExplanationStep{Kind: stepMembership, Held: f.member, Relationships: []string{membership.String()}}
	if f.member {
		s.Text = fmt.Sprintf("The agent is a member of host %s.", f.host)
	} else {
		s.Text = fmt.Sprintf("The agent is not a member of host %s (no relationship %s), so it may call no tool of this host.", f.host, membership)
	}
	steps = append(steps, s)

	s = ExplanationStep{Kind: stepServer, Held: f.serverFound, Relationships: []string{schema.ServerHost(f.host, f.server).String()}}
	if f.serverFound {
		s.Text = fmt.Sprintf("MCP server %s belongs to host %s.", f.server, f.host)
	} else {
		s.Text = fmt.Sprintf("There is no MCP server %s on host %s.", f.server, f.host)
	}
	steps = append(steps, s)
	if !f.serverFound {
		return steps
	}

	s = ExplanationStep{Kind: stepTool}
	switch {
	case f.toolLevel.Valid():
		s.Held = true
		s.Text = fmt.Sprintf("Tool %s is enabled and needs level %s.", f.tool, f.toolLevel)
		if f.toolCaveat != "" {
			s.Text = fmt.Sprintf("Tool %s is enabled and needs level %s, and its arguments must meet its conditions (%s).", f.tool, f.toolLevel, f.toolCaveat)
		}
		s.Relationships = []string{schema.ToolLevel(f.host, f.server, f.tool, f.toolLevel).Key()}
	case !f.toolFound:
		s.Text = fmt.Sprintf("%s has no tool %s.", f.server, f.tool)
	case f.toolFlagged:
		s.Text = fmt.Sprintf("Tool %s changed on the server and is disabled until an administrator approves it: it has no server_* relationship.", f.tool)
	default:
		s.Text = fmt.Sprintf("Tool %s is disabled: it has no server_* relationship, so no agent may call it.", f.tool)
	}
	steps = append(steps, s)

	s = ExplanationStep{Kind: stepCeiling}
	if f.ceiling.Valid() && f.granted.Valid() {
		// The engine holds the ceiling as the consenting agent's copy of it.
		s.Relationships = []string{schema.Ceiling(f.host, f.server, f.agentID, f.ceiling).String()}
	}
	switch {
	case !f.ceiling.Valid():
		s.Text = fmt.Sprintf("An administrator has not granted %s access to %s (no ceiling).", f.humanName(), f.server)
	case f.toolLevel.Valid() && f.toolLevel > f.ceiling:
		s.Text = fmt.Sprintf("The ceiling of %s on %s is %s, below the tool's level %s.", f.humanName(), f.server, f.ceiling, f.toolLevel)
	default:
		s.Held = true
		s.Text = fmt.Sprintf("An administrator allows %s up to %s on %s (ceiling).", f.humanName(), f.ceiling, f.server)
	}
	steps = append(steps, s)

	s = ExplanationStep{Kind: stepGrant}
	if f.granted.Valid() {
		s.Relationships = []string{schema.Grant(f.host, f.server, f.agentID, f.granted).String()}
	}
	switch {
	case !f.granted.Valid():
		s.Text = fmt.Sprintf("%s holds no level on %s (no grant).", f.agentName(), f.server)
	case f.toolLevel.Valid() && f.toolLevel > f.granted:
		s.Text = fmt.Sprintf("%s holds level %s on %s, below the tool's level %s.", f.agentName(), f.granted, f.server, f.toolLevel)
	default:
		s.Held = true
		s.Text = fmt.Sprintf("%s holds level %s on %s (granted by %s).", f.agentName(), f.granted, f.server, f.humanName())
	}
	return append(steps, s)
}

// meaning says what one relationship of an explanation means.
func (f explainFacts) meaning(r schema.Relationship) string {
	switch {
	case r.Resource.Type == schema.TypeTool && r.Caveat != "":
		return fmt.Sprintf("tool %s needs level %s on its server, and arguments that meet its conditions (caveat %s)", f.tool, levelName(levelOfRelation(r.Relation, "server_")), r.Caveat)
	case r.Resource.Type == schema.TypeTool:
		return fmt.Sprintf("tool %s needs level %s on its server", f.tool, levelName(levelOfRelation(r.Relation, "server_")))
	case r.Resource.Type == schema.TypeServer && r.Relation == schema.RelServerHost:
		return fmt.Sprintf("server %s belongs to host %s", f.server, f.host)
	case r.Resource.Type == schema.TypeServer && r.Subject.Object.Type == schema.TypeAgent && levelOfRelation(r.Relation, "ceiling_").Valid():
		return fmt.Sprintf("the agent's human may give it up to %s on %s (the agent's copy of the human's ceiling)", levelName(levelOfRelation(r.Relation, "ceiling_")), f.server)
	case r.Resource.Type == schema.TypeServer && r.Subject.Object.Type == schema.TypeAgent:
		return fmt.Sprintf("the agent holds level %s on %s (grant)", levelName(levelOfRelation(r.Relation, "granted_")), f.server)
	case r.Resource.Type == schema.TypeHost:
		return fmt.Sprintf("the agent is a member of host %s", f.host)
	case r.Resource.Type == schema.TypeAgent:
		return "the agent acts for this human"
	case r.Resource.Type == schema.TypeUser:
		return "this human's agents include the agent"
	}
	return ""
}

// traceDoc is the engine's trace as the API's document.
func traceDoc(t authzserver.TraceStep) TraceStep {
	kind := "permission"
	if t.Relation {
		kind = "relation"
	}
	out := TraceStep{Object: t.Resource.String(), Name: t.Name, Kind: kind, Result: string(t.Result), Cached: t.Cached}
	for _, s := range t.Steps {
		out.Steps = append(out.Steps, traceDoc(s))
	}
	return out
}
