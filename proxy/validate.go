package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// maxJSONResponseBytes bounds a JSON (not SSE) response the proxy checks before passing it on.
const maxJSONResponseBytes = 16 << 20

// invalidResponseError: the upstream answered a request with something that is not an MCP
// response (not JSON-RPC, or of a content type MCP does not use). It is never passed on: the
// client gets a JSON-RPC error naming the server instead of a parse failure of its own.
type invalidResponseError struct{ reason string }

func (e *invalidResponseError) Error() string { return "invalid response: " + e.reason }

// checkResponse makes sure a successful answer to a request is an MCP response: JSON bodies
// must be one JSON-RPC message or batch (read whole, bounded), SSE streams pass as they come
// (each event is the client's to parse, and filtering needs them streamed), anything else is
// refused. Answers to notifications and responses (202 without body) are left alone.
func checkResponse(resp *http.Response, fw *forward) error {
	if fw == nil || fw.msg == nil || fw.msg.kind != kindRequest {
		return nil
	}
	if resp.StatusCode >= 400 {
		return checkErrorStatus(resp, fw)
	}
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	mediaType, err := parseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return &invalidResponseError{"no valid Content-Type"}
	}
	switch mediaType {
	case "text/event-stream":
		return nil
	case "application/json":
	default:
		return &invalidResponseError{fmt.Sprintf("content type %s", mediaType)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONResponseBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read upstream response: %w", err)
	}
	if len(data) > maxJSONResponseBytes {
		return &invalidResponseError{fmt.Sprintf("JSON response above %d bytes", maxJSONResponseBytes)}
	}
	trimmed := bytes.TrimSpace(data)
	if !(len(trimmed) > 0 && json.Valid(trimmed)) || (trimmed[0] != '{' && trimmed[0] != '[') {
		return &invalidResponseError{"not a JSON-RPC message"}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	return nil
}

// maxErrorBodyBytes bounds the body of an upstream's HTTP error the proxy looks at.
const maxErrorBodyBytes = 64 << 10

// upstreamStatusError: the upstream answered a request with an HTTP error whose body is not a
// JSON-RPC error. The client gets ErrCodeUpstream instead of the raw body.
type upstreamStatusError struct{ status int }

func (e *upstreamStatusError) Error() string {
	return fmt.Sprintf("upstream answered HTTP %d without a JSON-RPC error", e.status)
}

// checkErrorStatus passes on an HTTP error answer to a request when its body is a JSON-RPC
// error (the client reads it), and refuses it otherwise (a text 500). initialize and
// server/discover are left alone: a 4xx there is how a client learns to fall back to an older
// transport or revision, and the legacy probe (legacysse.go) looks at it.
func checkErrorStatus(resp *http.Response, fw *forward) error {
	if fw.msg.method == "initialize" || fw.msg.method == "server/discover" {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read upstream error answer: %w", err)
	}
	if len(data) > maxErrorBodyBytes || !isRPCError(data) {
		return &upstreamStatusError{resp.StatusCode}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	return nil
}

// isRPCError: data is one JSON-RPC 2.0 error response, read exactly.
func isRPCError(data []byte) bool {
	env, err := strictjson.Shallow(bytes.TrimSpace(data), envelopeKeys...)
	if err != nil {
		return false
	}
	v, _ := env.String("jsonrpc")
	e := bytes.TrimSpace(env["error"])
	return v == "2.0" && len(e) > 0 && e[0] == '{' && !env.Has("result") && !env.Has("method")
}

// isInvalidResponse reports whether err is an invalidResponseError.
func isInvalidResponse(err error) bool {
	var e *invalidResponseError
	return errors.As(err, &e)
}

// parseMediaType is mime.ParseMediaType's media type (its parameters are not needed): the two
// types MCP answers come in, written exactly so, are recognised without parsing, which
// allocates a map of the parameters each time.
func parseMediaType(contentType string) (string, error) {
	switch contentType {
	case "application/json", "text/event-stream":
		return contentType, nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	return mediaType, err
}

// mediaTypeOf is the media type of a Content-Type value ("" when it names none).
func mediaTypeOf(contentType string) string {
	mediaType, _ := parseMediaType(contentType)
	return mediaType
}
