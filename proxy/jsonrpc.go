package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
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
	// carries, for tools/call, {tool, server, required_level, agent_level, ceiling}.
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

// message is one parsed JSON-RPC 2.0 message; only what the proxy decides on is decoded.
type message struct {
	kind   kind
	id     json.RawMessage // compact JSON of the id (request and response)
	method string
	params json.RawMessage
}

type wireMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// rpcError is a JSON-RPC error that parseMessage returns.
type rpcError struct {
	code int
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

// parseMessage reads exactly one JSON-RPC 2.0 message.
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
	var w wireMessage
	if err := json.Unmarshal(trimmed, &w); err != nil {
		return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: " + err.Error()}
	}
	if w.JSONRPC != "2.0" {
		return message{}, &rpcError{ErrCodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`}
	}
	m := message{params: w.Params}
	if w.ID != nil {
		if !validID(w.ID) {
			return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: the id must be a string or a number"}
		}
		var buf bytes.Buffer
		_ = json.Compact(&buf, w.ID) // valid JSON: cannot fail
		m.id = buf.Bytes()
	}
	switch {
	case w.Method != nil:
		if *w.Method == "" {
			return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: empty method"}
		}
		m.method = *w.Method
		m.kind = kindNotification
		if m.id != nil {
			m.kind = kindRequest
		}
	case m.id != nil && (w.Result != nil || w.Error != nil):
		m.kind = kindResponse
	default:
		return message{}, &rpcError{ErrCodeInvalidRequest, "invalid request: neither a request, a notification nor a response"}
	}
	return m, nil
}

// validID: a JSON string or number.
func validID(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// sameID compares two JSON ids by value ("1" ≠ 1, 1 = 1.0).
func sameID(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	switch va.(type) {
	case string, float64:
		return va == vb
	}
	return false
}

// toolName is params.name of a tools/call ("" when missing or not a string).
func toolName(params json.RawMessage) string {
	var p struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return p.Name
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
