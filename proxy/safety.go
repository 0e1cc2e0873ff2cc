package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/proxy/argcheck"
	"github.com/trustgate/trustgate/store"
)

// The safety stages of decide, after the trust level and before anything is forwarded, each a
// small policy of the host's settings with its own reason code (denial.go) and audit reason:
//
//   - argument validation: a tools/call's arguments fit the tool's approved inputSchema
//     (argcheck), unless the host turned it off.
//
// A refusal here is answered like a trust-level denial: by default the tool's result with
// isError (denialresult.go), or the host's JSON-RPC error.

// checkArguments is the argument validation stage of the tools/call m on srv: nil when the
// arguments fit (or the host does not check them).
func checkArguments(ctx context.Context, f facts, hs store.HostSettings, srv store.Server, m *message) *refusal {
	if hs.ArgumentValidation == store.ArgumentValidationOff {
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
