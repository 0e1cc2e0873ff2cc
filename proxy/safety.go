package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/proxy/argcheck"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/store"
)

// The safety stages of decide, after the trust level and before anything is forwarded, each a
// small policy of the host's settings with its own reason code (denial.go) and audit reason:
//
//   - argument validation: a tools/call's arguments fit the tool's approved inputSchema
//     (argcheck), unless the host turned it off;
//   - rate limits: the call takes a token from the bucket of each scope the host limits
//     (ratelimit), all or none; an empty bucket refuses it with retry_after.
//
// And before the trust level, the host's emergency stop: while it is set, every request is
// refused but those that let a client connect and show why (initialize, ping, tools/list);
// notifications and the client's answers to the server pass (they ask the server for nothing).
//
// A refusal here is answered like a trust-level denial: by default the tool's result with
// isError (denialresult.go), or the host's JSON-RPC error.

// checkArguments is the argument validation stage of the tools/call m on srv: nil when the
// arguments fit (or the host does not check them).
func checkArguments(ctx context.Context, f facts, hs store.HostSettings, req request, srv store.Server, m *message) *refusal {
	if hs.ArgumentValidation == store.ArgumentValidationOff || (req.dryRun && m.arguments == nil) {
		return nil
	}
	t, found, err := f.tool(ctx, srv.Host, srv.Key, m.tool)
	switch {
	case err != nil:
		rf := storeFailed(err)
		return &rf
	case !found:
		// The trust level allowed a tool the store does not know (the backend behind the store):
		// nothing to check against, so nothing is forwarded.
		rf := storeFailed(fmt.Errorf("tool %s/%s allowed but not stored", srv.Key, m.tool))
		return &rf
	}
	err = f.checkArguments(t.InputSchema, m.arguments)
	if err == nil {
		return nil
	}
	var mismatch *argcheck.MismatchError
	if errors.As(err, &mismatch) {
		return safetyRefusal(m, srv, t, ReasonInvalidArguments, ErrCodeInvalidParams,
			"its arguments do not fit the tool's input schema: "+mismatch.Message,
			"Fix the arguments and call the tool again.", mismatch.Audit,
			map[string]any{"error": mismatch.Message})
	}
	rf := safetyRefusal(m, srv, t, ReasonInputSchemaUnusable, ErrCodeDenied,
		"the tool's approved input schema cannot be used to check its arguments",
		"Retrying will not help; ask an administrator to look at the tool on the server.", err.Error(), nil)
	rf.logLevel, rf.cause = slog.LevelWarn, err
	return rf
}

// safetyRefusal is the refusal of the tools/call m by a safety stage: a JSON-RPC error of code
// with data (reason, server, tool, action and the extra fields), and the tool's result form
// (the same fields). auditText follows the reason code in the audit entry; it never quotes
// argument values.
func safetyRefusal(m *message, srv store.Server, t store.Tool, reason Reason, code int, cause, action, auditText string, extra map[string]any) *refusal {
	msg := fmt.Sprintf("trustgate refused tools/call %q on %s: %s. %s", m.tool, srv.Key, cause, action)
	data := map[string]any{"reason": string(reason), "server": srv.Key, "tool": m.tool, "action": action}
	fields := map[string]any{"reason": string(reason)}
	for k, v := range extra {
		data[k], fields[k] = v, v
	}
	return &refusal{form: formReject, status: http.StatusForbidden, code: code, message: msg, data: data,
		audited: audit.Denied, reason: string(reason) + ": " + auditText, denial: reason,
		logMsg: "proxy: denied", logLevel: slog.LevelInfo,
		call: &deniedCall{text: fmt.Sprintf("trustgate refused the tool %q on %s: %s. %s", m.tool, srv.Key, cause, action),
			fields: fields, structured: t.OutputSchema == ""}}
}

// emergencyStop is the refusal of m while the host is stopped (nil: not stopped, or m may pass).
func emergencyStop(ctx context.Context, f facts, hs store.HostSettings, srv store.Server, m *message) *refusal {
	stop := hs.EmergencyStop
	if stop == nil || m == nil || m.kind != kindRequest {
		return nil
	}
	switch m.method {
	case "initialize", "ping", "tools/list":
		return nil
	}
	since := stop.Since.UTC().Format(time.RFC3339)
	cause := "an administrator stopped every call on this host (emergency stop since " + since + ")"
	if stop.Reason != "" {
		cause += ": " + stop.Reason
	}
	const action = "Retrying will not help until an administrator lifts the stop."
	auditText := "the host is stopped since " + since
	extra := map[string]any{"since": since}
	if m.toolCall {
		// The result carries structuredContent only when the tool is known to declare no
		// output schema (denialresult.go).
		t, found, err := f.tool(ctx, srv.Host, srv.Key, m.tool)
		if err != nil {
			t = store.Tool{OutputSchema: "unknown"}
		} else if !found {
			t = store.Tool{}
		}
		return safetyRefusal(m, srv, t, ReasonEmergencyStop, ErrCodeDenied, cause, action, auditText, extra)
	}
	msg := fmt.Sprintf("trustgate refused %s on %s: %s. %s", m.method, srv.Key, cause, action)
	return &refusal{form: formReject, status: http.StatusForbidden, code: ErrCodeDenied, message: msg,
		data:    map[string]any{"reason": string(ReasonEmergencyStop), "server": srv.Key, "action": action, "since": since},
		audited: audit.Denied, reason: string(ReasonEmergencyStop) + ": " + auditText, denial: ReasonEmergencyStop,
		logMsg: "proxy: denied", logLevel: slog.LevelInfo}
}

// rateLimit is the rate-limit stage of the tools/call m: for each scope, the most specific of
// the host's rules that matches the call (its tool, its server, the host's) names a bucket, and
// the call takes a token from each. nil: allowed (or no rule applies).
func rateLimit(ctx context.Context, f facts, hs store.HostSettings, req request, srv store.Server, m *message) *refusal {
	rules := rulesFor(hs.RateLimits, srv.Key, m.tool)
	if len(rules) == 0 {
		return nil
	}
	buckets := make([]ratelimit.Bucket, len(rules))
	for i, r := range rules {
		burst := r.Burst
		if burst == 0 {
			burst = r.PerMinute
		}
		buckets[i] = ratelimit.Bucket{Key: bucketKey(req, srv.Key, m.tool, r), PerMinute: r.PerMinute, Burst: burst}
	}
	take := f.takeTokens
	if req.dryRun {
		take = f.peekTokens
	}
	res, err := take(ctx, buckets)
	if err != nil {
		return &refusal{form: formReject, status: http.StatusServiceUnavailable, code: ErrCodeUnavailable,
			message: "trustgate could not reach its rate limiter; the call was not forwarded",
			audited: audit.Error, reason: "rate limiter failed: " + err.Error(),
			logMsg: "proxy: rate limiter failed; denying", logLevel: slog.LevelError, cause: err}
	}
	if res.Allowed {
		return nil
	}
	r := rules[res.Empty]
	retry := int(math.Ceil(res.RetryAfter.Seconds()))
	if retry < 1 {
		retry = 1
	}
	burst := buckets[res.Empty].Burst
	where := ""
	if r.Server != "" {
		where = " on " + r.Server
		if r.Tool != "" {
			where += "/" + r.Tool
		}
	}
	limit := fmt.Sprintf("%s limit%s of %d calls a minute (burst %d)", scopeName(r.Scope), where, r.PerMinute, burst)
	extra := map[string]any{"limit": r.Scope, "per_minute": r.PerMinute, "burst": burst, "retry_after": retry}
	if r.Server != "" {
		extra["limit_server"] = r.Server
	}
	if r.Tool != "" {
		extra["limit_tool"] = r.Tool
	}
	t, found, err := f.tool(ctx, srv.Host, srv.Key, m.tool)
	if err != nil || !found {
		t = store.Tool{OutputSchema: "unknown"}
	}
	return safetyRefusal(m, srv, t, ReasonRateLimited, ErrCodeDenied, "the "+limit+" is spent",
		fmt.Sprintf("Try again in %d seconds.", retry), fmt.Sprintf("%s; retry after %ds", limit, retry), extra)
}

func scopeName(scope string) string {
	switch scope {
	case store.RateScopeAgent:
		return "this agent's"
	case store.RateScopeAgentTool:
		return "this agent's per-tool"
	case store.RateScopeHuman:
		return "the per-person"
	}
	return "the host's"
}

// rulesFor picks, for each scope, the most specific rule matching a call of tool on server.
func rulesFor(limits []store.RateLimit, server, tool string) []store.RateLimit {
	var out []store.RateLimit
	for _, scope := range []string{store.RateScopeAgent, store.RateScopeAgentTool, store.RateScopeHuman, store.RateScopeHost} {
		best, rank := store.RateLimit{}, 0
		for _, l := range limits {
			if l.Scope != scope {
				continue
			}
			r := 0
			switch {
			case l.Server == "" && l.Tool == "":
				r = 1
			case l.Server == server && l.Tool == "":
				r = 2
			case l.Server == server && l.Tool == tool:
				r = 3
			}
			if r > rank {
				best, rank = l, r
			}
		}
		if rank > 0 {
			out = append(out, best)
		}
	}
	return out
}

// bucketKey names the bucket of rule r that a call counts in: the host in braces (one Redis
// Cluster slot for all the buckets of a call), the rule, and the subject of its scope; every
// part is length-prefixed, so no name can spell another key.
func bucketKey(req request, server, tool string, r store.RateLimit) string {
	parts := []string{r.Scope, r.Server, r.Tool}
	switch r.Scope {
	case store.RateScopeAgent:
		parts = append(parts, req.agentID)
	case store.RateScopeAgentTool:
		parts = append(parts, req.agentID, server, tool)
	case store.RateScopeHuman:
		parts = append(parts, req.userID)
	}
	var b strings.Builder
	b.WriteString("{" + req.host + "}")
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}
