package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/store"
)

// A denied tools/call as the tool's result. The MCP specification (2025-11-25, tools, error
// handling) keeps JSON-RPC errors for protocol problems and reports a tool call's failures as a
// CallToolResult with isError: true, so that the model reads why and can act on it; every SDK
// turns a JSON-RPC error into an exception that most agent loops never show the model. So by
// default a policy denial of a tools/call is answered with such a result: one text content
// addressed to the agent (what the call needs, and who can provide it) and the stable fields of
// the denial in the result's _meta, under denialMetaKey, and in its structuredContent unless the
// tool declares an outputSchema: clients check structuredContent against the tool's output
// schema even when isError is set (the TypeScript SDK does, and throws), and never check
// _meta. A tool the store does not know (or of an unknown server) has no schema known, and
// gets structuredContent. A host whose denial format is store.DenialJSONRPCError
// gets the JSON-RPC error (ErrCodeDenied) instead. The decision and its audit entry are the
// same either way: decide builds both forms, and refuse picks one when it writes the answer.

// pendingChangeRetryAfter is the retry_after (seconds) of a pending_change denial: the
// relationship writer applies a change within its sync interval (a second by default).
const pendingChangeRetryAfter = 5

// denialMetaKey is the result's _meta key of a denial's fields (a prefix of trustgate's own,
// as the specification asks of keys that are not MCP's).
const denialMetaKey = "trustgate/denial"

// deniedCall is the result form of a denied tools/call.
type deniedCall struct {
	// text is the result's one text content: what the model reads.
	text string
	// fields are the denial's fields in _meta, and its structuredContent when structured:
	// reason, and those of required_level, agent_level, ceiling and retry_after that apply.
	fields map[string]any
	// structured: the result carries fields as structuredContent too (the tool declares no
	// outputSchema that it would be checked against).
	structured bool
}

// deniedCallOf is the result form of the denial d of a tools/call, decided from the store's
// facts f (denial.go).
func deniedCallOf(f denialFacts, d denial) *deniedCall {
	fields := map[string]any{"reason": string(d.Reason)}
	if f.HasGrant {
		fields["ceiling"] = levelName(f.Ceiling)
	}
	if f.HasConsent {
		fields["agent_level"] = levelName(f.Level)
	}
	if f.ToolFound && f.ToolEnabled && !f.ToolFlagged && f.ToolLevel.Valid() {
		fields["required_level"] = f.ToolLevel.String()
	}
	if d.Reason == ReasonPendingChange {
		fields["retry_after"] = pendingChangeRetryAfter
	}
	cause, action := agentAdvice(f, d)
	return &deniedCall{text: fmt.Sprintf("trustgate denied the tool %q on %s: %s. %s", f.Tool, f.Server, cause, action), fields: fields,
		structured: !f.ToolHasOutputSchema}
}

// agentAdvice is the cause of a denied tools/call and the action that fixes it, addressed to
// the agent: it cannot reconnect itself or change a setting, so the action says who can (the
// person who connected it, or an administrator) and whether retrying helps. A reason without
// advice of its own gets the human's (denial.go).
func agentAdvice(f denialFacts, d denial) (cause, action string) {
	const noRetry = "Retrying will not help"
	switch d.Reason {
	case ReasonAgentRemoved:
		return "an administrator removed this agent", "Ask the person using it to reconnect the client."
	case ReasonAgentDisabled:
		return "an administrator disabled this agent",
			noRetry + ", and neither will reconnecting; only an administrator can enable it again."
	case ReasonNoAccess:
		return fmt.Sprintf("the person who connected this agent has no access to %s", f.Server),
			fmt.Sprintf("%s; ask them to get access to %s from an administrator and reconnect.", noRetry, f.Server)
	case ReasonNotConsented:
		return fmt.Sprintf("this agent has no trust level on %s", f.Server),
			fmt.Sprintf("Ask the person who connected it to reconnect and choose a trust level for %s (they may grant up to %s).", f.Server, levelName(f.Ceiling))
	case ReasonUnknownTool:
		return fmt.Sprintf("%s has no tool %q", f.Server, f.Tool),
			"Call tools/list for the tools this agent may call."
	case ReasonToolDisabled:
		return "an administrator disabled this tool",
			noRetry + "; use another tool, or ask an administrator to enable it."
	case ReasonToolPendingReview:
		return "the tool's definition changed on the server and awaits an administrator's review",
			noRetry + " until an administrator approves it; use another tool meanwhile."
	case ReasonCeilingTooLow:
		return fmt.Sprintf("it needs trust level %s; this agent has %s, and the person who connected it may grant at most %s on %s",
				f.ToolLevel, levelName(f.Level), levelName(f.Ceiling), f.Server),
			fmt.Sprintf("Only an administrator can raise that ceiling to %s; reconnecting will not help.", f.ToolLevel)
	case ReasonLevelTooLow:
		return fmt.Sprintf("it needs trust level %s; this agent has %s", f.ToolLevel, levelName(f.Level)),
			fmt.Sprintf("Ask the person who connected it to reconnect and grant %s, or ask an administrator.", f.ToolLevel)
	case ReasonPendingChange:
		if f.Behind {
			return "a change to what agents may do on this host has not been applied by the authorization backend yet, and calls are refused until it is",
				fmt.Sprintf("Try again in %d seconds; if this persists, tell the person using this agent to ask an administrator.", pendingChangeRetryAfter)
		}
		return "a recent change to what this agent may do is still being applied",
			fmt.Sprintf("Try again in %d seconds.", pendingChangeRetryAfter)
	}
	return d.Cause, d.Action
}

// resultBody is the JSON-RPC response (id) whose result is the CallToolResult of c.
func (c *deniedCall) resultBody(id json.RawMessage) []byte {
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type result struct {
		Content           []text                    `json:"content"`
		StructuredContent map[string]any            `json:"structuredContent,omitempty"`
		IsError           bool                      `json:"isError"`
		Meta              map[string]map[string]any `json:"_meta"`
	}
	res := result{Content: []text{{"text", c.text}}, IsError: true, Meta: map[string]map[string]any{denialMetaKey: c.fields}}
	if c.structured {
		res.StructuredContent = c.fields
	}
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  result          `json:"result"`
	}{"2.0", id, res})
	if err != nil { // the fields are strings and integers; keep a fallback anyway
		return []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	return body
}

// writeDeniedCall answers the tools/call m (HTTP 200) with the result of its denial c, as a
// JSON body or, for a client that accepts only an event stream, as one SSE event. The
// telemetry's decision is the one the JSON-RPC error would record: denied, with reason.
func writeDeniedCall(w http.ResponseWriter, r *http.Request, m *message, c *deniedCall, reason string) {
	decidedByError(w, ErrCodeDenied, reason) // telemetry.go
	body := c.resultBody(m.id)
	w.Header().Set("Cache-Control", "no-store")
	if wantsEventStream(r.Header) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(sse.AppendEvent(nil, sse.Event{Type: "message", Data: body}))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// wantsEventStream: the request's Accept names text/event-stream and not application/json (a
// Streamable HTTP client accepts both, and then gets JSON).
func wantsEventStream(h http.Header) bool {
	stream := false
	for _, v := range h.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			switch mediaType {
			case "application/json", "application/*", "*/*":
				return false
			case "text/event-stream":
				stream = true
			}
		}
	}
	return stream
}

// answersDenialsAsResults: host answers a denied tools/call with its result (the default); a
// host that cannot be read gets the default too (the call is denied either way).
func (p *Proxy) answersDenialsAsResults(ctx context.Context, host string) bool {
	h, err := p.cfg.Store.GetHost(ctx, host)
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	if err != nil {
		p.log.Warn("proxy: could not read the host's denial format; answering with a tool result", "host", host, "err", err)
		return true
	}
	return h.Settings.DenialFormat != store.DenialJSONRPCError
}
