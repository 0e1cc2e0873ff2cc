package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/store"
)

// Asking the agent's human in their own client (MCP elicitation).
//
// When a call is held for the agent's own human (the rule names no approvers), the client
// declared form elicitation at initialize (session.go carries that in the session id), and the
// client accepts an event stream, the held request's stream carries a server-to-client request
// elicitation/create: "Agent X wants to call delete_repo on Tracker with {…}. Allow?", with a
// boolean "approve" to answer. The client shows it to its human and POSTs the JSON-RPC response
// to the MCP endpoint, with the same token and session; any replica reads it
// (answerElicitation), never forwards it, and records the decision the way the dashboard and
// the API do (store.Approvals.DecideHeldCall, channel elicitation, decided by the agent's
// human's email). The holder sees the decision at its next poll. Meanwhile the call is held as
// any other (the dashboard and the API list it and may decide it; the first decision wins);
// the email and webhook are not sent, since the human is being asked where they work. An
// answer that does not decide (the client answered with an error) leaves the call waiting
// until its timeout.
//
// The elicitation's id is "trustgate.approval.<held call id>.<mac>": the MAC (the session key,
// HMAC-SHA256) binds it to the host, the endpoint, the agent and the session id it was asked
// on, so an answer from another agent, session or endpoint, or to an id nobody was asked, is
// refused (400) before anything is read; a held call is decided at most once, so a second
// answer is refused (409) and changes nothing. Answers are bounded (maxElicitationAnswer).

// elicitationPrefix starts the id of every elicitation the gateway asks.
const elicitationPrefix = "trustgate.approval."

// maxElicitationAnswer bounds the body of an answer to an elicitation.
const maxElicitationAnswer = 16 << 10

// maxElicitationArguments bounds the arguments quoted in the question.
const maxElicitationArguments = 1 << 10

// capsOf reads the capabilities the gateway uses from initialize's params: form elicitation
// is declared by capabilities.elicitation being an object that is empty (form only, per the
// specification) or has a form member.
func capsOf(params json.RawMessage) clientCaps {
	var p struct {
		Capabilities struct {
			Elicitation json.RawMessage `json:"elicitation"`
		} `json:"capabilities"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return 0
	}
	var el map[string]json.RawMessage
	if json.Unmarshal(p.Capabilities.Elicitation, &el) != nil || el == nil {
		return 0
	}
	if _, form := el["form"]; form || len(el) == 0 {
		return capElicitationForm
	}
	return 0
}

// elicitationMAC binds an elicitation id to where it was asked.
func (b sessionBinder) elicitationMAC(host, endpoint, agentID, session, heldID string) []byte {
	return b.mac("elicitation", host, endpoint, agentID, session, heldID)
}

// elicitationID is the id of the question about the held call heldID asked on the session.
func (b sessionBinder) elicitationID(host, endpoint, agentID, session, heldID string) string {
	return elicitationPrefix + heldID + "." + base64.RawURLEncoding.EncodeToString(b.elicitationMAC(host, endpoint, agentID, session, heldID))
}

// heldOfElicitation is the held call an elicitation id asked about, when it was asked of this
// agent on this endpoint and session.
func (b sessionBinder) heldOfElicitation(host, endpoint, agentID, session, id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, elicitationPrefix)
	if !ok {
		return "", false
	}
	heldID, macPart, ok := strings.Cut(rest, ".")
	if !ok || heldID == "" || len(heldID) > 64 {
		return "", false
	}
	mac, err := base64.RawURLEncoding.DecodeString(macPart)
	if err != nil || !hmac.Equal(mac, b.elicitationMAC(host, endpoint, agentID, session, heldID)) {
		return "", false
	}
	return heldID, true
}

// isElicitationAnswer: m is a response to an id of the gateway's own (a string with
// elicitationPrefix), which is never forwarded.
func isElicitationAnswer(m *message) bool {
	if m == nil || m.kind != kindResponse || len(m.id) == 0 || m.id[0] != '"' {
		return false
	}
	var id string
	return json.Unmarshal(m.id, &id) == nil && strings.HasPrefix(id, elicitationPrefix)
}

// asksInClient reports whether the held call of h on the request r is asked of the agent's
// human in their client: the rule names no approvers, the client accepts an event stream and
// its session declared form elicitation.
func (p *Proxy) asksInClient(r *http.Request, req request, d decision) bool {
	if len(d.hold.rule.Approvers) > 0 || d.proto.stateless || !acceptsEventStream(r.Header) {
		return false
	}
	session := r.Header.Get("Mcp-Session-Id")
	if session == "" {
		return false
	}
	_, caps, ok := p.sessions.unwrap(req.host, d.server.Key, req.agentID, session)
	return ok && caps&capElicitationForm != 0
}

// elicitationRequest is the elicitation/create request asking about c, as an SSE event.
func (p *Proxy) elicitationRequest(r *http.Request, req request, c store.HeldCall, serverName string) ([]byte, error) {
	args := c.Arguments
	if args == "" {
		args = "{}"
	}
	if len(args) > maxElicitationArguments {
		cut := maxElicitationArguments
		for cut > 0 && !utf8.RuneStart(args[cut]) {
			cut--
		}
		args = args[:cut] + " … (cut)"
	}
	who := c.AgentName
	if who == "" {
		who = "Agent " + c.AgentID
	}
	id := p.sessions.elicitationID(req.host, req.pathServer, req.agentID, r.Header.Get("Mcp-Session-Id"), c.ID)
	data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "elicitation/create",
		"params": map[string]any{
			"message": fmt.Sprintf("%s wants to call %s on %s with %s. Allow? (If nobody answers by %s, the call is denied.)",
				who, c.Tool, serverName, args, c.ExpiresAt.UTC().Format("15:04:05 MST")),
			"requestedSchema": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"approve": map[string]any{"type": "boolean", "title": "Allow this call",
						"description": fmt.Sprintf("Allow %s to call %s now", who, c.Tool)},
				},
				"required": []string{"approve"},
			},
		}})
	if err != nil {
		return nil, err
	}
	return sse.AppendEvent(nil, sse.Event{Type: "message", Data: data}), nil
}

// elicitationOutcome reads an answer: approve or deny, or decided false when the answer
// decides nothing (a JSON-RPC error: the client could not ask).
func elicitationOutcome(body []byte) (approve, decided bool, err error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return false, false, err
	}
	if _, isErr := env["error"]; isErr {
		return false, false, nil
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(env["result"], &res); err != nil || res == nil {
		return false, false, errors.New("the result is not an object")
	}
	var action string
	if err := json.Unmarshal(res["action"], &action); err != nil {
		return false, false, errors.New("the result has no action")
	}
	switch action {
	case "decline", "cancel":
		return false, true, nil
	case "accept":
	default:
		return false, false, fmt.Errorf("unknown action %q", action)
	}
	var content map[string]json.RawMessage
	if raw, ok := res["content"]; ok && json.Unmarshal(raw, &content) != nil {
		return false, false, errors.New("the content is not an object")
	}
	// Only an explicit true approves; anything else accepted is a "no".
	return bytes.Equal(bytes.TrimSpace(content["approve"]), []byte("true")), true, nil
}

// answerElicitation handles a client's answer (m, the POST body) to a question the gateway
// asked: it is bounded, checked against where it was asked, and decides the held call through
// the store; it is never forwarded. Refused answers are audited (denied) and change nothing.
func (p *Proxy) answerElicitation(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, m *message, body []byte, entry audit.Entry) {
	refuse := func(status int, msg, reason string) {
		p.log.Info("proxy: answer to an elicitation refused", "host", req.host, "agent", req.agentID, "reason", reason)
		p.auditReject(ctx, &entry, audit.Denied, "elicitation answer refused: "+reason)
		writeRPCError(w, status, nil, ErrCodeInvalidRequest, msg, nil)
	}
	if len(body) > maxElicitationAnswer {
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("an answer to trustgate's question is at most %d bytes", maxElicitationAnswer), "too large")
		return
	}
	var id string
	_ = json.Unmarshal(m.id, &id)
	heldID, ok := p.sessions.heldOfElicitation(req.host, req.pathServer, req.agentID, r.Header.Get("Mcp-Session-Id"), id)
	if !ok || p.cfg.Approvals == nil {
		refuse(http.StatusBadRequest, "trustgate asked no such question on this session", "not asked of this agent on this session")
		return
	}
	entry.Object = "held_call:" + heldID
	c, err := p.cfg.Approvals.GetHeldCall(ctx, req.host, heldID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		refuse(http.StatusBadRequest, "trustgate asked no such question on this session", "no such held call")
		return
	case err != nil:
		p.log.Error("proxy: store failed while reading a held call", "host", req.host, "id", heldID, "err", err)
		writeRPCError(w, http.StatusServiceUnavailable, nil, ErrCodeUnavailable, "trustgate could not read the held call; try again", nil)
		return
	case c.AgentID != req.agentID || c.UserID != req.userID || len(c.Approvers) > 0:
		refuse(http.StatusBadRequest, "trustgate asked no such question on this session", "the held call is not this agent's human's to decide")
		return
	case c.Status != store.HeldPending:
		refuse(http.StatusConflict, "the call was already decided or is no longer waiting", "already "+c.Status)
		return
	}
	approve, decided, err := elicitationOutcome(body)
	if err != nil {
		refuse(http.StatusBadRequest, "invalid answer to trustgate's question: "+err.Error(), "invalid: "+err.Error())
		return
	}
	if !decided {
		p.log.Info("proxy: the client could not ask its human; the call stays held", "host", req.host, "agent", req.agentID, "id", heldID)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	u, err := p.cfg.Store.GetUser(ctx, req.host, req.userID)
	if err != nil {
		p.log.Error("proxy: store failed while reading the agent's human", "host", req.host, "err", err)
		writeRPCError(w, http.StatusServiceUnavailable, nil, ErrCodeUnavailable, "trustgate could not read the agent's human; try again", nil)
		return
	}
	status := store.HeldDenied
	if approve {
		status = store.HeldApproved
	}
	if _, err := p.cfg.Approvals.DecideHeldCall(ctx, req.host, heldID, status, u.Email, channelElicitation, time.Now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			refuse(http.StatusConflict, "the call was already decided or is no longer waiting", "already decided")
			return
		}
		p.log.Error("proxy: store failed while deciding a held call", "host", req.host, "id", heldID, "err", err)
		writeRPCError(w, http.StatusServiceUnavailable, nil, ErrCodeUnavailable, "trustgate could not record the answer; try again", nil)
		return
	}
	p.log.Log(ctx, slog.LevelInfo, "proxy: a held call was decided in the agent's client", "host", req.host, "agent", req.agentID, "id", heldID, "status", status)
	w.WriteHeader(http.StatusAccepted)
}

// channelElicitation is approval.ChannelElicitation (the proxy does not import the package).
const channelElicitation = "elicitation"
