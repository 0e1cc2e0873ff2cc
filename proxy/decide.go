package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The decision of one message. decide maps what is known of a request to a decision value and
// does nothing else: it writes no answer, no audit entry and no telemetry, and reads nothing but
// its facts (the control-plane cache, the authorization backend and the rate limiter, behind an
// interface). The handler applies the decision in one place (serveMCP: refuse, hold, or
// forward). The stages, in order:
//
//  1. the body is one JSON-RPC 2.0 message (jsonrpc.go): batches and malformed bodies are refused;
//  2. the protocol revision's transport rules (protocol.go);
//  3. the upstream server: the one in the path, or the agent's latest consent on bare /mcp;
//     then the host's emergency stop (safety.go);
//  4. the trust level: tools/call is one check of tool#call, every other request and
//     notification one check of the server's low level; a response passes once authenticated.
//     A "no" is explained from the store's facts (denial.go);
//  5. the safety stages of a tools/call (safety.go): its arguments fit the tool's input schema,
//     then the host's rate limits, then the host's approval policy (approval.go: a call a
//     person must approve carries a hold, which the handler applies before it forwards);
//  6. what the answer goes through: tools/list keeps the tools the agent may see
//     (verdictFilter); a tools/call's result goes through the result filter when the server's
//     or the host's DLP mode is redact or block (verdictFilterResult);
//  7. the server's URL is one the proxy can forward to.
//
// Stages 3 to 7 (decideMessage) also answer the admin API's check (check.go), which asks about
// a tools/call outside any request: the same stages, with rate limits read but not taken.
// request is what decide knows of one authenticated request.
type request struct {
	host, userID, agentID string
	// pathServer is the server key of /mcp/{server} ("" for bare /mcp).
	pathServer string
	// httpMethod is POST, GET or DELETE; header carries the protocol revision's headers.
	httpMethod string
	header     http.Header
	// msg is the POST body's message (nil for GET and DELETE, and when parseErr is set).
	msg *message
	// parseErr: the POST body is not one message the proxy reads (see parseMessage).
	parseErr error
	// dryRun: asked by the admin API's check, not by a client: rate limits are read, not
	// taken, and arguments are checked only when the question gives some.
	dryRun bool
}

// facts is what decide reads: stored facts (from the control-plane cache) and the
// authorization backend's answers. Errors fail the decision closed.
type facts interface {
	// latestConsent is the server of the agent's most recent consent (found false: none).
	latestConsent(ctx context.Context, host, agentID string) (server string, found bool, err error)
	// server is the host's server of that key (found false: no such server).
	server(ctx context.Context, host, key string) (srv store.Server, found bool, err error)
	// check asks the authorization backend.
	check(ctx context.Context, req authzserver.CheckRequest) (bool, error)
	// denialFacts are the stored facts that explain a denial (denial.go).
	denialFacts(ctx context.Context, q denialQuery) (denialFacts, error)
	// visibleTools is the per-tool decision of a tools/list answer (filter.go, pinning.go).
	visibleTools(ctx context.Context, host, server, agentID string) (*pinCheck, error)
	// hostSettings are the host's settings: the safety stages' policies (safety.go).
	hostSettings(ctx context.Context, host string) (store.HostSettings, error)
	// tool is the stored tool (found false: none).
	tool(ctx context.Context, host, server, name string) (t store.Tool, found bool, err error)
	// checkArguments checks a tools/call's arguments against the tool's input schema
	// (argcheck.Cache.Check: nil, a *argcheck.MismatchError or argcheck.ErrSchema).
	checkArguments(inputSchema string, arguments json.RawMessage) error
	// takeTokens takes one token from each of a call's rate-limit buckets, all or none
	// (ratelimit.Limiter); peekTokens answers the same and takes nothing.
	takeTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error)
	peekTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error)
	// resultScanner is the host's compiled result-filter detectors for settings (compiled
	// once per change of the settings).
	resultScanner(host string, settings dlp.Settings) (*dlp.Scanner, error)
	// agent is the stored agent (found false: none).
	agent(ctx context.Context, host, id string) (a store.Agent, found bool, err error)
	// standingApproval reports whether an approval of the agent's calls of tool on server
	// stands now (approval.go).
	standingApproval(ctx context.Context, host, agentID, server, tool string) (bool, error)
}

// verdict is what happens to a message. The zero value refuses: a decision that was never made
// forwards nothing.
type verdict int

const (
	// verdictRefuse: the message is not forwarded; the refusal says how it is answered.
	verdictRefuse verdict = iota
	// verdictForward: the message is forwarded, its answer passed on as it comes.
	verdictForward
	// verdictFilter: the message (tools/list) is forwarded and its answer keeps only the tools
	// the decision's keep check allows.
	verdictFilter
	// verdictFilterResult: the tools/call is forwarded and its answers go through the
	// decision's result filter (resultfilter.go).
	verdictFilterResult
)

func (v verdict) String() string {
	switch v {
	case verdictForward:
		return "forward"
	case verdictFilter:
		return "filter"
	case verdictFilterResult:
		return "filter result"
	}
	return "refuse"
}

// decision is decide's answer.
type decision struct {
	verdict verdict
	refusal refusal // verdictRefuse

	proto protocol
	// described: the message passed the transport rules; telemetry describes it (agent,
	// method, tool and server).
	described bool
	// server is the upstream server (zero until it is known); auditServer is the server key the
	// audit entry names (also a key that names no server).
	server      store.Server
	auditServer string
	target      *url.URL  // the server's URL (forwarded messages)
	keep        *pinCheck // verdictFilter: the tools the answer keeps
	// result is the result filter of a tools/call's answers (verdictFilterResult).
	result *resultFilter
	// hold, when set, holds the tools/call for a person's approval before it is forwarded
	// (approval.go); the verdict is what happens once it is approved.
	hold *hold
}

// answerForm is how a refusal is written.
type answerForm int

const (
	// formReject: a request gets HTTP 200 with a JSON-RPC error (its id); a notification whose
	// status would be 403 gets 202 Accepted without a body (it is dropped); anything else gets
	// the status with a JSON-RPC error without id.
	formReject answerForm = iota
	// formRPC: the status with a JSON-RPC error carrying id.
	formRPC
	// formText: the status with a plain-text body (and an Allow header when allow is set).
	formText
)

// refusal is how a message that is not forwarded is answered, audited and logged.
type refusal struct {
	form    answerForm
	status  int
	id      json.RawMessage // formRPC: the id answered (nil: null)
	code    int             // JSON-RPC error code
	message string          // the error's message (the text body of formText)
	data    any             // the error's data
	allow   string          // formText: the Allow header

	// audited is the audit entry's decision (audit.Denied or audit.Error) with reason; ""
	// when the refusal is not audited (the transport rules, a tools/call without a name, a
	// failing audit log itself).
	audited audit.Decision
	reason  string
	// denial is the cause of an authorization denial ("" otherwise); levels, when set, are the
	// levels of the denial that the audit entry records.
	denial Reason
	// behind: the denial is pending_change because the host is behind (denialFacts.Behind),
	// which no other explanation may replace.
	behind bool
	levels *deniedLevels
	// call is the result form of a denied tools/call (denialresult.go): refuse answers with it
	// unless the host wants the JSON-RPC error.
	call *deniedCall

	// logMsg, when set, is logged at logLevel with the request's facts and cause.
	logMsg   string
	logLevel slog.Level
	cause    error
}

// deniedLevels are the levels a denial on a server involved.
type deniedLevels struct{ agent, ceiling, required string }

// decide decides one message (see the top of this file).
func decide(ctx context.Context, req request, f facts) decision {
	// 1. The message.
	if req.parseErr != nil {
		e, ok := asRPCError(req.parseErr)
		if !ok {
			e = &rpcError{ErrCodeInvalidRequest, "invalid request: " + req.parseErr.Error()}
		}
		return decision{auditServer: req.pathServer, refusal: refusal{form: formRPC, status: http.StatusBadRequest,
			code: e.code, message: e.msg, audited: audit.Denied, reason: e.msg}}
	}
	m := req.msg

	// 2. The protocol revision's transport rules.
	proto, rf := checkProtocol(req.httpMethod, req.header, m)
	if rf != nil {
		return decision{refusal: *rf}
	}
	return decideMessage(ctx, req, decision{proto: proto, described: true}, f)
}

// decideMessage is stages 3 to 7 of decide for a message that passed the transport rules (d).
func decideMessage(ctx context.Context, req request, d decision, f facts) decision {
	m := req.msg

	// 3. The upstream server.
	key := req.pathServer
	if key == "" {
		server, found, err := f.latestConsent(ctx, req.host, req.agentID)
		switch {
		case err != nil:
			return d.refuse(storeFailed(err))
		case !found:
			return d.refuse(deny(ctx, f, req, "", ""))
		}
		key = server
	}
	srv, found, err := f.server(ctx, req.host, key)
	switch {
	case err != nil:
		return d.refuse(storeFailed(err))
	case !found:
		d.auditServer = key
		return d.refuse(deny(ctx, f, req, key, ""))
	}
	d.server, d.auditServer = srv, srv.Key

	// The host's emergency stop (safety.go) comes before everything the host allows.
	hs, err := f.hostSettings(ctx, req.host)
	if err != nil {
		return d.refuse(storeFailed(err))
	}
	if rf := emergencyStop(ctx, f, hs, srv, m); rf != nil {
		return d.refuse(*rf)
	}

	// 4. The trust level: one check per message.
	subject := schema.SubjectRef{Object: schema.Agent(req.host, req.agentID)}
	var check authzserver.CheckRequest
	var conds schema.ArgumentConditions // the tool's argument conditions (conditions.go)
	var condTool store.Tool
	switch {
	case m != nil && m.kind == kindResponse:
		// The client answering the server: authenticated is enough.
	case m != nil && m.toolCall:
		if m.tool == "" {
			return d.refuse(refusal{form: formRPC, status: http.StatusOK, id: m.id, code: ErrCodeInvalidParams,
				message: "invalid params: tools/call needs params.name"})
		}
		check = authzserver.CheckRequest{Resource: schema.Tool(req.host, srv.Key, m.tool), Permission: schema.PermToolCall, Subject: subject}
		var rf *refusal
		if conds, condTool, rf = withConditions(ctx, f, req.host, srv, m, &check); rf != nil {
			return d.refuse(*rf)
		}
	default:
		check = authzserver.CheckRequest{Resource: schema.Server(req.host, srv.Key), Permission: permUseLow, Subject: subject}
	}
	if check.Permission != "" {
		allowed, err := f.check(ctx, check)
		if err != nil {
			return d.refuse(backendFailed(err))
		}
		if !allowed {
			tool := ""
			if m != nil {
				tool = m.tool
			}
			return d.refuse(conditionDenied(deny(ctx, f, req, srv.Key, tool), conds, condTool, srv, m))
		}
	}

	// 5. The safety stages of a tools/call (safety.go).
	if m != nil && m.toolCall {
		if rf := checkArguments(ctx, f, hs, req, srv, m); rf != nil {
			return d.refuse(*rf)
		}
		if rf := rateLimit(ctx, f, hs, req, srv, m); rf != nil {
			return d.refuse(*rf)
		}
		h, rf := approvalStage(ctx, f, hs, req, srv, m)
		if rf != nil {
			return d.refuse(*rf)
		}
		d.hold = h
	}

	// 6. What the answer goes through: tools/list keeps the tools the agent may see; a
	// tools/call's result goes through the result filter (fail closed).
	d.verdict = verdictForward
	switch {
	case m != nil && m.kind == kindRequest && m.method == "tools/list":
		keep, err := f.visibleTools(ctx, req.host, srv.Key, req.agentID)
		if err != nil {
			return d.refuse(backendFailed(err))
		}
		d.verdict, d.keep = verdictFilter, keep
	case m != nil && m.toolCall:
		rf, refused := resultFilterOf(f, req.host, hs, srv, m.tool)
		if refused != nil {
			return d.refuse(*refused)
		}
		if rf != nil {
			d.verdict, d.result = verdictFilterResult, rf
		}
	}

	// 7. Where it goes.
	target, err := url.Parse(srv.URL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return d.refuse(refusal{form: formReject, status: http.StatusBadGateway, code: ErrCodeUpstream,
			message: fmt.Sprintf("the MCP server %s could not be reached", displayName(srv)),
			audited: audit.Error, reason: "the server's URL is invalid",
			logMsg: "proxy: server has an invalid URL", logLevel: slog.LevelError})
	}
	d.target = target
	return d
}

// refuse turns d into a refusal.
func (d decision) refuse(rf refusal) decision {
	d.verdict, d.refusal, d.target, d.keep, d.result, d.hold = verdictRefuse, rf, nil, nil, nil, nil
	return d
}

// deny is the refusal of a message the authorization denied (or that names no server the
// agent may use), explained from the store's facts (denial.go); server is "" on bare /mcp
// without a consent, tool the tool of a tools/call.
func deny(ctx context.Context, f facts, req request, server, tool string) refusal {
	method := ""
	if req.msg != nil {
		method = req.msg.method
	}
	facts, err := f.denialFacts(ctx, denialQuery{host: req.host, userID: req.userID, agentID: req.agentID,
		method: method, server: server, tool: tool})
	if err != nil {
		return storeFailed(err)
	}
	d := explainDenial(facts)
	msg, data := d.Message(facts), denialData(facts, d)
	rf := refusal{form: formReject, status: http.StatusForbidden, code: ErrCodeDenied, message: msg, data: data,
		audited: audit.Denied, reason: string(d.Reason) + ": " + msg, denial: d.Reason, behind: facts.Behind,
		logMsg: "proxy: denied", logLevel: slog.LevelInfo}
	if d.Reason == ReasonUnknownServer {
		rf.status = http.StatusNotFound
	}
	if server != "" {
		rf.levels = &deniedLevels{agent: data["agent_level"], ceiling: data["ceiling"], required: data["required_level"]}
	}
	if req.msg != nil && req.msg.toolCall {
		rf.call = deniedCallOf(facts, d)
	}
	return rf
}

// storeFailed fails closed on a control-plane failure.
func storeFailed(err error) refusal {
	return refusal{form: formReject, status: http.StatusServiceUnavailable, code: ErrCodeUnavailable,
		message: "trustgate could not read its configuration; the call was not forwarded",
		audited: audit.Error, reason: "store failed: " + err.Error(),
		logMsg: "proxy: store failed; denying", logLevel: slog.LevelError, cause: err}
}

// backendFailed fails closed on an authorization backend failure.
func backendFailed(err error) refusal {
	return refusal{form: formReject, status: http.StatusServiceUnavailable, code: ErrCodeUnavailable,
		message: "trustgate could not reach its authorization backend; the call was not forwarded",
		audited: audit.Error, reason: "authorization backend failed: " + err.Error(),
		logMsg: "proxy: authorization backend failed; denying", logLevel: slog.LevelError, cause: err}
}

// refuse applies a refusal to r: the log line, the audit entry e (its levels and decision) and
// the answer, which is also the telemetry's decision: a JSON-RPC error (writeRPCError), or for
// a denied tools/call the tool's result unless the host wants the error (denialresult.go).
func (p *Proxy) refuse(ctx context.Context, w http.ResponseWriter, r *http.Request, m *message, e *audit.Entry, rf refusal) {
	if rf.logMsg != "" {
		attrs := []any{"host", e.Host, "server", e.Server, "agent", e.AgentID, "method", e.Method}
		if e.Tool != "" {
			attrs = append(attrs, "tool", e.Tool)
		}
		if rf.denial != "" {
			attrs = append(attrs, "reason", rf.denial)
		}
		if rf.cause != nil {
			attrs = append(attrs, "err", rf.cause)
		}
		p.log.Log(ctx, rf.logLevel, rf.logMsg, attrs...)
	}
	if rf.levels != nil {
		e.AgentLevel, e.Ceiling, e.RequiredLevel = rf.levels.agent, rf.levels.ceiling, rf.levels.required
	}
	var flags []anomaly.Flag
	if rf.audited == audit.Denied {
		flags = p.flagCall(ctx, e, m, true) // anomalies.go
	}
	if rf.audited != "" {
		p.auditReject(ctx, e, rf.audited, rf.reason)
	}
	p.actOnFlags(ctx, *e, flags)
	if rf.call != nil && m != nil && m.toolCall && p.answersDenialsAsResults(ctx, e.Host) {
		writeDeniedCall(w, r, m, rf.call, rf.message)
		return
	}
	switch rf.form {
	case formRPC:
		writeRPCError(w, rf.status, rf.id, rf.code, rf.message, rf.data)
	case formText:
		if rf.allow != "" {
			w.Header().Set("Allow", rf.allow)
		}
		http.Error(w, rf.message, rf.status)
	default:
		p.reject(w, m, rf.code, rf.message, rf.data, rf.status)
	}
}
