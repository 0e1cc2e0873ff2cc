package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/internal/strictjson"
	"github.com/trustgate/trustgate/store"
)

// The result filter (DLP): the answers to a tools/call pass through the host's detectors
// (package dlp) when the server's mode, or else the host's, is redact or block.
//
//   - What is scanned: every message of the answer, a JSON body or each SSE event on its own
//     (an event's JSON is complete, so no finding is split between events, and one event at a
//     time is held): in each message its result, error and params (a tool's result, its error,
//     and the notifications and requests the server sends while it works), every string
//     value, number and key in them, decoded (escapes cannot hide a value). HTTP error answers
//     that carry a JSON-RPC error are scanned too.
//   - redact: each finding becomes "[redacted:<kind>]" inside its JSON string, so that the
//     message stays valid JSON (a number with a finding becomes that string; a key gets "#n"
//     appended, so that keys stay distinct); everything else is passed on unchanged.
//   - block: a response (result or error) with a finding is replaced by a denial, reason
//     result_blocked, in the host's denial format (a tool result with isError, or the
//     -31001 error); a notification or request with a finding is redacted.
//   - The audit entry of the call's result records the kinds and counts, never a value.
//   - Every message is read strictly first (its envelope, internal/strictjson); one that
//     cannot be read fails the answer closed, as the tools/list filter does (filter.go). Every
//     string token of result, error and params is scanned, so a member a reader would take
//     from a duplicate key is scanned too. Answers above maxFilterBytes (JSON) or events above
//     it (SSE) are refused whole, as for tools/list.

// ReasonResultBlocked: the tool's result held secrets or personal data and the server's (or
// the host's) result filter blocks such results.
const ReasonResultBlocked Reason = "result_blocked"

// resultFilter scans the answers to one tools/call. filter may run on the goroutine that copies
// the answer while serveMCP waits; found is read once the answer was copied.
type resultFilter struct {
	scanner *dlp.Scanner
	mode    dlp.Mode
	// deny is the denial that replaces a blocked response to id.
	deny func(id json.RawMessage, found dlp.Findings) []byte

	mu      sync.Mutex
	found   dlp.Findings
	blocked bool
}

// filter rewrites one answer body (a JSON-RPC message, a batch, or an SSE event's data). out is
// nil when the answer passes unchanged.
func (f *resultFilter) filter(data []byte) ([]byte, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(bytes.TrimSpace(trimmed)) == 0:
		return nil, nil
	case trimmed[0] == '{':
		out, changed, err := f.message(data)
		if err != nil || !changed {
			return nil, err
		}
		return out, nil
	case trimmed[0] == '[':
		return rewriteBatch(data, f.message)
	case json.Valid(trimmed):
		return nil, nil // a JSON scalar: no client reads it as a message
	default:
		return nil, unreadable("not JSON")
	}
}

// scannedMembers are the members of a JSON-RPC message whose content comes from the tool.
var scannedMembers = []string{"result", "error", "params"}

// message filters one JSON-RPC message.
func (f *resultFilter) message(data []byte) (out []byte, changed bool, err error) {
	env, err := strictjson.Shallow(data, envelopeKeys...)
	if err != nil {
		return nil, false, unreadable("message: %v", err)
	}
	var found dlp.Findings
	for _, key := range scannedMembers {
		raw, ok := env[key]
		if !ok {
			continue
		}
		red, fd, err := f.scanner.RedactJSON(raw)
		if err != nil {
			return nil, false, unreadable("%s: %v", key, err)
		}
		if fd == nil {
			continue
		}
		if found == nil {
			found = dlp.Findings{}
		}
		found.Add(fd)
		env[key] = red
	}
	if found == nil {
		return nil, false, nil
	}
	response := env.Has("id") && (env.Has("result") || env.Has("error"))
	blocked := f.mode == dlp.ModeBlock && response
	f.mu.Lock()
	if f.found == nil {
		f.found = dlp.Findings{}
	}
	f.found.Add(found)
	f.blocked = f.blocked || blocked
	f.mu.Unlock()
	if blocked {
		return f.deny(env["id"], found), true, nil
	}
	out, err = json.Marshal(env)
	return out, err == nil, err
}

// auditNote is what the result's audit entry records of the filter's work ("" when nothing
// was found): the kinds and counts, never a value.
func (f *resultFilter) auditNote() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.found) == 0 {
		return ""
	}
	if f.blocked {
		return fmt.Sprintf("%s: result blocked, it held %s", ReasonResultBlocked, f.found)
	}
	return "result redacted: " + f.found.String()
}

// filterErrorAnswer scans an HTTP error answer of the upstream to a filtered tools/call: a
// JSON-RPC error (checkResponse passed no other body on).
func (p *Proxy) filterErrorAnswer(resp *http.Response, fw *forward) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFilterBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if len(data) > maxFilterBytes {
		return errTooLarge
	}
	out, err := fw.dlp.filter(data)
	if err != nil {
		return err
	}
	if out != nil {
		data = out
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Set("Content-Length", fmt.Sprint(len(data)))
	return nil
}

// scannerEntry is a host's compiled detectors and the settings they were compiled from.
type scannerEntry struct {
	key     string
	scanner *dlp.Scanner
}

// resultFilterOf is the result filter of a tools/call of tool on srv (decide's stage 6): nil
// when the server's mode, or the host's (hs), is off. Settings that do not compile (they were
// checked when stored) fail the call closed.
func resultFilterOf(f facts, host string, hs store.HostSettings, srv store.Server, tool string) (*resultFilter, *refusal) {
	settings := hs.DLP
	mode := srv.DLPMode
	if mode == "" {
		mode = settings.Mode
	}
	if mode == "" || mode == dlp.ModeOff {
		return nil, nil
	}
	scanner, err := f.resultScanner(host, settings)
	if err != nil {
		return nil, filterRefusal(err)
	}
	asResult := hs.DenialFormat != store.DenialJSONRPCError
	name := displayName(srv)
	return &resultFilter{scanner: scanner, mode: mode, deny: func(id json.RawMessage, found dlp.Findings) []byte {
		return blockedAnswer(id, tool, name, found, asResult)
	}}, nil
}

func filterRefusal(err error) *refusal {
	return &refusal{form: formReject, status: http.StatusServiceUnavailable, code: ErrCodeUnavailable,
		message: "trustgate could not read its result filter's settings; the call was not forwarded",
		audited: audit.Error, reason: "result filter settings unavailable",
		logMsg: "proxy: result filter settings unavailable; not forwarding", logLevel: slog.LevelError, cause: err}
}

// scannerMemo holds each host's compiled result-filter detectors (host → *scannerEntry),
// recompiled when the host's settings change.
type scannerMemo struct{ hosts sync.Map }

// scannerOf is host's compiled scanner for settings.
func (sm *scannerMemo) scannerOf(host string, settings dlp.Settings) (*dlp.Scanner, error) {
	settings.Mode = "" // a change of mode alone keeps the detectors
	keyJSON, err := json.Marshal(settings)
	if err != nil {
		return nil, err
	}
	key := string(keyJSON)
	if e, ok := sm.hosts.Load(host); ok && e.(*scannerEntry).key == key {
		return e.(*scannerEntry).scanner, nil
	}
	sc, err := dlp.Compile(settings)
	if err != nil {
		return nil, err
	}
	sm.hosts.Store(host, &scannerEntry{key: key, scanner: sc})
	return sc, nil
}

// blockedAnswer is the JSON-RPC response to id that replaces a blocked result: the tool result
// with isError that the model reads (asResult), or the -31001 error, both with reason
// result_blocked and the kinds found (never a value).
func blockedAnswer(id json.RawMessage, tool, server string, found dlp.Findings, asResult bool) []byte {
	kinds := make([]string, 0, len(found))
	for _, k := range found.Kinds() {
		kinds = append(kinds, string(k))
	}
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	fields := map[string]any{"reason": string(ReasonResultBlocked), "kinds": kinds}
	text := fmt.Sprintf("trustgate withheld the result of the tool %q on %s: it held %s, which this host does not let tool results carry. "+
		"Retrying will not help; ask an administrator if this data must reach the agent.", tool, server, strings.Join(kinds, ", "))
	if asResult {
		// No structuredContent: a tool with an outputSchema would have it checked against that
		// schema (denialresult.go); the fields are in _meta.
		return (&deniedCall{text: text, fields: fields}).resultBody(id)
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id,
		"error": map[string]any{"code": ErrCodeDenied, "message": text, "data": fields}})
	if err != nil {
		return []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	return body
}
