package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// JSON-RPC error codes trustgate answers with. The -3200x codes are stable: clients, SDKs and
// tests may match on them.
const (
	// ErrCodeParse: the body is not JSON (JSON-RPC 2.0).
	ErrCodeParse = -32700
	// ErrCodeInvalidRequest: not one JSON-RPC 2.0 message (batches included, which MCP
	// 2025-06-18 removed).
	ErrCodeInvalidRequest = -32600
	// ErrCodeInvalidParams: params missing or mistyped (tools/call without a name).
	ErrCodeInvalidParams = -32602

	// trustgate's own codes lie in -31001…-31004, a range that no official MCP SDK (TypeScript,
	// Python, Go, C#, Java) reserves: the Go SDK, for one, uses -32003/-32004 for "client
	// closing"/"server closing" and matches errors by code, so a denial there read as a closed
	// connection.

	// ErrCodeDenied: trustgate's authorization denied the message. Stable. The error's data
	// carries the cause as a stable reason code and the action that fixes it (denial.go), with
	// {server, agent_level, ceiling} and, for tools/call, {tool, required_level}. A denied
	// tools/call gets it only on a host whose denial format is jsonrpc_error; by default it is
	// the tool's result with isError (denialresult.go).
	ErrCodeDenied = -31001
	// ErrCodeUnavailable: trustgate could not reach its authorization backend, so it failed
	// closed and did not forward the message. Stable; retrying later may succeed.
	ErrCodeUnavailable = -31002
	// ErrCodeUpstream: the upstream MCP server could not be reached or refused the gateway's
	// credentials. Stable.
	ErrCodeUpstream = -31003
)

// kind is what a JSON-RPC message is.
type kind int

const (
	kindRequest      kind = iota + 1 // method and id
	kindNotification                 // method, no id
	kindResponse                     // id and result or error (a client answering the server)
)

// message is one parsed JSON-RPC 2.0 message; only what the proxy decides on is decoded, and it
// is decoded the way the upstream's SDK decodes it (see parseMessage).
type message struct {
	kind   kind
	id     json.RawMessage // canonical JSON of the id (request and response): a string or an integer
	method string
	params json.RawMessage
	// Read from params when it is an object, by exact key:
	name        string          // params.name when it is a string (the tool of a tools/call)
	uri         string          // params.uri when it is a string (resources/read)
	arguments   json.RawMessage // params.arguments as sent
	metaVersion *string         // params._meta["io.modelcontextprotocol/protocolVersion"] when a string
	metaHasVer  bool            // that member is present (whatever its type)

	// Decided once, here, for everything downstream (decision, audit, telemetry):
	toolCall bool   // a tools/call request
	tool     string // its tool: params.name ("" when missing, which is refused as invalid params)
}

// label is how audit entries and telemetry name the message's method: "response" for a
// client's answer to the server.
func (m *message) label() string {
	if m.kind == kindResponse {
		return "response"
	}
	return m.method
}

// The members of a message the proxy reads, at each level. A key that differs from one of them
// only by case or Unicode folding is refused (strictjson), as are duplicate and fold-equal keys
// anywhere in the message.
var (
	envelopeKeys = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	paramsKeys   = []string{"name", "uri", "arguments", "_meta"}
	metaKeys     = []string{metaProtocolVersion, "progressToken"}
)

// maxSafeInteger is the largest integer every JSON reader (JavaScript's numbers among them)
// holds exactly: 2^53-1.
const maxSafeInteger = 1<<53 - 1

// rpcError is a JSON-RPC error that parseMessage returns.
type rpcError struct {
	code int
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

func invalidRequest(format string, args ...any) error {
	return &rpcError{ErrCodeInvalidRequest, "invalid request: " + fmt.Sprintf(format, args...)}
}

// parseMessage reads exactly one JSON-RPC 2.0 message, strictly: what the proxy decides on must
// be what the upstream acts on, whichever JSON reader the upstream uses. Keys match exactly
// (encoding/json's case-insensitive, last-match-wins struct decoding is never used on a
// message), and a message that readers could understand differently is refused with
// ErrCodeInvalidRequest instead of being decided on: duplicate keys or keys equal under Unicode
// case folding at any depth, a key that folds to one the proxy reads ("Params", "paramſ"),
// invalid UTF-8, nesting deeper than strictjson.MaxDepth, an id that is not a string or an
// integer within ±(2^53-1), a non-string or empty method. The bytes forwarded are the body as
// received, which is exactly what was parsed here.
func parseMessage(body []byte) (message, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !json.Valid(trimmed) {
		return message{}, &rpcError{ErrCodeParse, "parse error: the body is not valid JSON"}
	}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: JSON-RPC batches are not supported (MCP 2025-06-18 removed them); send one message per request"}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: a JSON-RPC message must be a JSON object"}
	}
	obj, err := strictjson.ParseObject(trimmed, envelopeKeys...)
	if err != nil {
		return message{}, invalidRequest("%v", err)
	}
	if v, ok := obj.String("jsonrpc"); !ok || v != "2.0" {
		return message{}, invalidRequest(`"jsonrpc" must be "2.0"`)
	}
	var m message
	if raw, ok := obj["id"]; ok {
		if m.id, err = canonicalID(raw); err != nil {
			return message{}, err
		}
	}
	_, hasResult := obj["result"]
	_, hasError := obj["error"]
	if obj.Has("method") {
		method, isString := obj.String("method")
		switch {
		case !isString:
			return message{}, invalidRequest(`"method" must be a string`)
		case method == "":
			return message{}, invalidRequest("empty method")
		case hasResult || hasError:
			return message{}, invalidRequest(`a request has no "result" or "error"`)
		}
		m.method = method
		m.kind = kindNotification
		if m.id != nil {
			m.kind = kindRequest
		}
		if m.params = obj["params"]; m.params != nil {
			if err := m.readParams(); err != nil {
				return message{}, err
			}
		}
		if m.kind == kindRequest && m.method == "tools/call" {
			m.toolCall, m.tool = true, m.name
		}
		return m, nil
	}
	switch {
	case m.id == nil || hasResult == hasError:
		return message{}, invalidRequest("neither a request, a notification nor a response")
	case obj.Has("params"):
		return message{}, invalidRequest(`a response has no "params"`)
	}
	m.kind = kindResponse
	return m, nil
}

// readParams reads the members of params the proxy decides on, by exact key.
func (m *message) readParams() error {
	p := bytes.TrimLeft(m.params, " \t\r\n")
	if len(p) == 0 || p[0] != '{' {
		return nil // JSON-RPC allows an array; MCP never sends one and the proxy reads nothing of it
	}
	params, err := strictjson.Members(p, paramsKeys...)
	if err != nil {
		return invalidRequest("params: %v", err)
	}
	m.name, _ = params.String("name")
	m.uri, _ = params.String("uri")
	m.arguments = params["arguments"]
	if raw := bytes.TrimLeft(params["_meta"], " \t\r\n"); len(raw) > 0 && raw[0] == '{' {
		meta, err := strictjson.Members(raw, metaKeys...)
		if err != nil {
			return invalidRequest("params._meta: %v", err)
		}
		if _, ok := meta[metaProtocolVersion]; ok {
			m.metaHasVer = true
			if v, ok := meta.String(metaProtocolVersion); ok {
				m.metaVersion = &v
			}
		}
	}
	return nil
}

// idIntegerRE is an integer id as JSON writes it (no fraction, no exponent, no "-0").
var idIntegerRE = regexp.MustCompile(`^(0|-?[1-9][0-9]{0,15})$`)

// canonicalID checks a request or response id and returns it in canonical form: a string
// (re-encoded after unescaping) or an integer within ±(2^53-1). null, fractions, exponents and
// larger numbers are refused: readers disagree on them (the Go SDK truncates 1.5 to 1,
// JavaScript rounds 2^53+1).
func canonicalID(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil || strings.ContainsRune(s, utf8.RuneError) {
			return nil, invalidRequest("the id must be a valid string or an integer")
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			return nil, invalidRequest("the id must be a valid string or an integer")
		}
		return bytes.TrimRight(buf.Bytes(), "\n"), nil
	}
	if !idIntegerRE.Match(raw) {
		return nil, invalidRequest("the id must be a string or an integer")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxSafeInteger || n < -maxSafeInteger {
		return nil, invalidRequest("an integer id must lie within ±(2^53-1)")
	}
	return json.RawMessage(strconv.FormatInt(n, 10)), nil
}

// writeRPCError answers with a JSON-RPC error response (id null when id is nil).
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string, data any) {
	decidedByError(w, code, msg) // telemetry.go
	if id == nil {
		id = json.RawMessage("null")
	}
	type errObj struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   errObj          `json:"error"`
	}{"2.0", id, errObj{code, msg, data}})
	if err != nil { // data is always marshalable; keep a fallback anyway
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// asRPCError unwraps an *rpcError.
func asRPCError(err error) (*rpcError, bool) {
	var e *rpcError
	ok := errors.As(err, &e)
	return e, ok
}
