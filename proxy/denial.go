package proxy

import (
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

// Denials that name their real cause. The authorization backend answers only yes or no; when
// it says no, the proxy reads what the store says about the agent, the human's grant, the
// agent's consent and the tool (on this path only: the allowed path reads nothing more) and
// explainDenial turns that into a stable reason code, a message and the action that fixes it.
// The reason is in the JSON-RPC error's data.reason and at the head of the audit entry's reason.

// Reason is the stable code of a denial's cause (data.reason of a -31001 error).
type Reason string

// The reason codes. They are stable: clients may match on them.
const (
	// ReasonAgentDisabled: an administrator disabled (killed) the app; reconnecting does not help.
	ReasonAgentDisabled Reason = "agent_disabled"
	// ReasonAgentRemoved: the app (agent) no longer exists; reconnecting registers it again.
	ReasonAgentRemoved Reason = "agent_removed"
	// ReasonUnknownServer: the host has no server of that key.
	ReasonUnknownServer Reason = "unknown_server"
	// ReasonNotConnected: the agent (on bare /mcp) holds a trust level on no server.
	ReasonNotConnected Reason = "not_connected"
	// ReasonNoAccess: the human has no grant on the server (never granted, or revoked).
	ReasonNoAccess Reason = "no_access"
	// ReasonNotConsented: the human has a grant, but gave this agent no trust level there.
	ReasonNotConsented Reason = "not_consented"
	// ReasonCeilingTooLow: the tool needs more than the human's ceiling; an administrator
	// must raise it.
	ReasonCeilingTooLow Reason = "ceiling_too_low"
	// ReasonLevelTooLow: the ceiling allows the tool, the agent's level does not; the human
	// reconnects at a higher level.
	ReasonLevelTooLow Reason = "level_too_low"
	// ReasonUnknownTool: the server has no tool of that name.
	ReasonUnknownTool Reason = "unknown_tool"
	// ReasonToolDisabled: the tool is disabled (or not classified).
	ReasonToolDisabled Reason = "tool_disabled"
	// ReasonToolPendingReview: the tool's definition changed upstream and awaits an
	// administrator's review.
	ReasonToolPendingReview Reason = "tool_pending_review"
	// ReasonPendingChange: the authorization backend has not applied the latest change yet:
	// the store allows the message (a moment after a grant or a consent), or the host has a
	// change the backend failed to apply or has not applied for longer than the bound, and
	// every call on it is refused until it is (fail closed: the change may be a revocation).
	ReasonPendingChange Reason = "pending_change"

	// The safety stages' reasons (safety.go).

	// ReasonInvalidArguments: the tools/call's arguments do not fit the tool's approved input
	// schema; the agent fixes them and calls again.
	ReasonInvalidArguments Reason = "invalid_arguments"
	// ReasonInputSchemaUnusable: the tool's approved input schema cannot be used to check
	// arguments (invalid, or it refers to another document); an administrator must act.
	ReasonInputSchemaUnusable Reason = "input_schema_unusable"
	// ReasonEmergencyStop: an administrator stopped every call on the host until further
	// notice.
	ReasonEmergencyStop Reason = "emergency_stop"
	// ReasonRateLimited: a rate limit of the host is spent; retry_after says when a call is
	// allowed again.
	ReasonRateLimited Reason = "rate_limited"
)

// denialFacts is what the store says about a denied message.
type denialFacts struct {
	// Behind: the host has a change the authorization backend has not applied (failed, or
	// pending too long): its calls are refused whatever the store says, until it is.
	Behind bool
	// What was denied: the method ("tools/call", "initialize", …; "" for a GET or DELETE).
	Method string
	// Server is the server's key; "" when the agent (on bare /mcp) is connected to none.
	Server      string
	ServerFound bool
	// AnyGrant (Server ""): the human has a grant on some server of the host.
	AnyGrant bool

	AgentFound, AgentDisabled bool

	HasGrant bool
	Ceiling  schema.Level
	// HasConsent: the agent holds a consent on the server, at Level.
	HasConsent bool
	Level      schema.Level

	// Tool is the tool of a tools/call ("" for any other message); the rest describe it as
	// stored.
	Tool                                string
	ToolFound, ToolEnabled, ToolFlagged bool
	ToolLevel                           schema.Level
	// ToolHasOutputSchema: the stored tool declares an outputSchema.
	ToolHasOutputSchema bool
}

// denial is the cause of a denial.
type denial struct {
	Reason Reason
	// Cause says what is wrong, Action what fixes it (both for the model and the human).
	Cause, Action string
}

// Message is the client-facing text of the denial of what (as in denialFacts.Method).
func (d denial) Message(f denialFacts) string {
	what := f.Method
	switch {
	case what == "":
		what = "this request"
	case f.Tool != "":
		what = fmt.Sprintf("%s %q", what, f.Tool)
	}
	if f.Server != "" {
		what += " on " + f.Server
	}
	return fmt.Sprintf("trustgate denied %s: %s. %s", what, d.Cause, d.Action)
}

// levelName is a level's name, "none" for the zero level.
func levelName(l schema.Level) string {
	if !l.Valid() {
		return "none"
	}
	return l.String()
}

// explainDenial is the cause of a denial, decided from the store's facts alone. The causes are
// tried from the agent outwards: the agent, the server, the human's grant, the agent's consent,
// the tool, and last the levels; a message the store would allow was denied by a backend that
// has not caught up yet. A host that is behind (denialFacts.Behind) is refused before all of
// them: what the store says is not what the backend enforces.
func explainDenial(f denialFacts) denial {
	ask := "Ask an administrator"
	switch {
	case f.Behind:
		return denial{ReasonPendingChange, "a change to who may do what on this host has not been applied by the authorization backend yet, and calls are refused until it is",
			"Try again later; if this persists, ask an administrator."}
	case !f.AgentFound:
		return denial{ReasonAgentRemoved, "this app was removed by an administrator",
			"Reconnect the client to connect it again."}
	case f.AgentDisabled:
		return denial{ReasonAgentDisabled, "this app was disabled by an administrator",
			"Reconnecting will not help until an administrator enables it again."}
	case f.Server == "" && !f.AnyGrant:
		return denial{ReasonNoAccess, "you have no access to any MCP server on this host",
			ask + " to grant you access to a server, then reconnect the client."}
	case f.Server == "":
		return denial{ReasonNotConnected, "this app is not connected to any MCP server",
			"Reconnect the client and choose a server and a trust level."}
	case !f.ServerFound:
		return denial{ReasonUnknownServer, fmt.Sprintf("there is no MCP server %q on this host", f.Server),
			"Check the server in the URL, or ask an administrator which servers exist."}
	case !f.HasGrant:
		return denial{ReasonNoAccess, fmt.Sprintf("you have no access to %s (an administrator has not granted it, or revoked it)", f.Server),
			ask + fmt.Sprintf(" to grant you access to %s, then reconnect the client; reconnecting alone will not help.", f.Server)}
	case !f.HasConsent:
		return denial{ReasonNotConsented, fmt.Sprintf("this app has no trust level on %s", f.Server),
			fmt.Sprintf("Reconnect the client and choose a trust level for %s (your administrator allows up to %s).", f.Server, levelName(f.Ceiling))}
	}
	if f.Tool != "" {
		switch {
		case !f.ToolFound:
			return denial{ReasonUnknownTool, fmt.Sprintf("%s has no tool %q", f.Server, f.Tool),
				"Call tools/list for the tools this app may call; if the tool is new, ask an administrator to sync the server."}
		case f.ToolFlagged:
			return denial{ReasonToolPendingReview, "the tool's definition changed on the server and awaits an administrator's review",
				ask + " to review the change and approve the tool."}
		case !f.ToolEnabled || !f.ToolLevel.Valid():
			return denial{ReasonToolDisabled, "the tool is disabled",
				ask + " to enable it."}
		case f.ToolLevel > f.Ceiling:
			return denial{ReasonCeilingTooLow, fmt.Sprintf("it needs trust level %s; your administrator allows you at most %s on %s (this app has %s)",
				f.ToolLevel, levelName(f.Ceiling), f.Server, levelName(f.Level)),
				ask + fmt.Sprintf(" to raise your ceiling on %s to %s; reconnecting will not help.", f.Server, f.ToolLevel)}
		case f.ToolLevel > f.Level:
			return denial{ReasonLevelTooLow, fmt.Sprintf("it needs trust level %s; this app has %s (your ceiling is %s)",
				f.ToolLevel, levelName(f.Level), levelName(f.Ceiling)),
				fmt.Sprintf("Reconnect the client and choose trust level %s.", f.ToolLevel)}
		}
	}
	return denial{ReasonPendingChange, "a recent change to who may do what is still being applied",
		"Try again in a few seconds; if this persists, ask an administrator."}
}

// denialData is the data of the JSON-RPC error of a denial: the reason and the action, and the
// levels involved (a tools/call also names the tool and the level it needs).
func denialData(f denialFacts, d denial) map[string]string {
	data := map[string]string{"reason": string(d.Reason), "action": d.Action}
	if f.Server != "" {
		data["server"] = f.Server
		data["agent_level"], data["ceiling"] = levelName(f.Level), levelName(f.Ceiling)
	}
	if f.Tool != "" {
		data["tool"] = f.Tool
		data["required_level"] = ""
		if f.ToolFound && f.ToolEnabled && !f.ToolFlagged && f.ToolLevel.Valid() {
			data["required_level"] = f.ToolLevel.String()
		}
	}
	return data
}
