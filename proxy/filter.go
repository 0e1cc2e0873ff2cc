package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/strictjson"
)

// The tools/list filter reads an upstream's answer exactly as the client will, and fails closed
// when it cannot:
//
//   - every shape a client accepts is inspected: a JSON body and the data of every SSE event,
//     whatever the event's name (clients skip events not named "message", but another client
//     may not), and inspection goes on after the first answer; a batch (array) is filtered
//     element by element; every response in the answer that has result.tools is filtered, not
//     only one whose id equals the request's (clients compare ids loosely: "2" is 2 to some);
//   - the events are those a client following the server-sent events standard dispatches
//     (internal/sse: CR, LF and CRLF line ends, BOM, ...); an unterminated last event, which no
//     such client dispatches, is not passed on;
//   - keys are read exactly (internal/strictjson): an envelope or result with duplicate or
//     case/fold-twin keys cannot be read with certainty and fails the answer; a tool entry
//     with such keys (at any depth), or without a string name, is dropped from the list;
//   - an answer that cannot be read, or whose JSON body or one event exceeds maxFilterBytes,
//     becomes a JSON-RPC error (ErrCodeUpstream) for the request, naming the upstream.
//
// Events and messages that need no change stream on byte for byte.

// maxFilterBytes bounds the one JSON answer, or the one SSE event, the filter holds.
const maxFilterBytes = 16 << 20

// newEventReader is the one reader of an upstream's event stream, shared by the tools/list
// filter and the legacy (HTTP+SSE) transport: the events a client following the standard
// dispatches (internal/sse), each bounded by maxFilterBytes. Events the proxy writes itself go
// through sse.AppendEvent.
func newEventReader(body io.Reader) *sse.Reader { return sse.NewReader(body, maxFilterBytes) }

// errTooLarge: an answer (or one of its events) above maxFilterBytes; it is not passed on.
var errTooLarge = errors.New("answer too large to inspect")

var (
	// errStreamBroken: the upstream's answer stream failed before the answer came.
	errStreamBroken = errors.New("the answer stream broke off")
	// errStreamEnded: the answer stream ended without the answer, and without an event id
	// the client could resume from.
	errStreamEnded = errors.New("the answer stream ended without an answer")
)

// keepTool decides whether a tools/list answer keeps a tool: name is its name, tool the raw
// JSON of its entry (already read strictly: no duplicate or fold-twin keys at any depth).
type keepTool func(name string, tool json.RawMessage) bool

// unreadableError: an answer the filter must inspect but cannot read with certainty.
type unreadableError struct{ reason string }

func (e *unreadableError) Error() string { return "unreadable tools/list answer: " + e.reason }

func unreadable(format string, args ...any) error {
	return &unreadableError{fmt.Sprintf(format, args...)}
}

// toolKeys are the members of a tool definition the gateway or a client decides on.
var toolKeys = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations", "_meta", "icons"}

// toolsFilter filters the answers to one tools/list request.
type toolsFilter struct {
	keep keepTool
	// dropped is told of each tool entry dropped because it cannot be read exactly (nil: none).
	dropped func(reason string)
	// settle, when set, runs after the tools of one message were decided, before the message
	// is passed on (pinning.go: the withheld tools are flagged).
	settle func()
}

// filter rewrites one answer body (a JSON-RPC message, a batch, or an SSE event's data). out is
// nil when the answer passes unchanged.
func (f *toolsFilter) filter(data []byte) (out []byte, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(bytes.TrimSpace(trimmed)) == 0:
		return nil, nil // an empty event (a stream's priming event)
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

// rewriteBatch applies rewrite to each message of a JSON-RPC batch. out is nil when no message
// changed.
func rewriteBatch(data []byte, rewrite func(msg []byte) ([]byte, bool, error)) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, unreadable("invalid UTF-8")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, unreadable("invalid JSON batch")
	}
	changed := false
	for i, el := range elems {
		if t := bytes.TrimLeft(el, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			continue
		}
		out, ch, err := rewrite(el)
		if err != nil {
			return nil, err
		}
		if ch {
			elems[i], changed = out, true
		}
	}
	if !changed {
		return nil, nil
	}
	return json.Marshal(elems)
}

// message filters one JSON-RPC message: result.tools when it has one.
func (f *toolsFilter) message(data []byte) (out []byte, changed bool, err error) {
	env, err := strictjson.Shallow(data, envelopeKeys...) // jsonrpc.go
	if err != nil {
		return nil, false, unreadable("message: %v", err)
	}
	result, ok := env["result"]
	if result = bytes.TrimLeft(result, " \t\r\n"); !ok || len(result) == 0 || result[0] != '{' {
		return nil, false, nil // no result object: no tools for a client to list
	}
	res, err := strictjson.Shallow(result, "tools", "nextCursor", "_meta")
	if err != nil {
		return nil, false, unreadable("result: %v", err)
	}
	raw, ok := res["tools"]
	if raw = bytes.TrimLeft(raw, " \t\r\n"); !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var tools []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &tools) != nil {
		return nil, false, unreadable("result.tools is not an array")
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for _, t := range tools {
		if name, ok := f.readTool(t); ok && f.keep(name, t) {
			kept = append(kept, t)
		}
	}
	if f.settle != nil {
		f.settle()
	}
	if len(kept) == len(tools) {
		return nil, false, nil
	}
	if res["tools"], err = json.Marshal(kept); err != nil {
		return nil, false, err
	}
	if env["result"], err = json.Marshal(res); err != nil {
		return nil, false, err
	}
	out, err = json.Marshal(env)
	return out, err == nil, err
}

// readTool reads a tool entry exactly: ok is false (and the drop reported) when it has
// duplicate or fold-twin keys at any depth, or no string name.
func (f *toolsFilter) readTool(t json.RawMessage) (name string, ok bool) {
	obj, err := strictjson.ParseObject(t, toolKeys...)
	if err == nil {
		if name, ok = obj.String("name"); !ok || name == "" {
			err, ok = errors.New("no name"), false
		}
	}
	if err != nil && f.dropped != nil {
		f.dropped(err.Error())
	}
	return name, err == nil
}

// answerRewriter rewrites the data of an answer: a JSON body, or one SSE event's data. out is
// nil when the data passes unchanged.
type answerRewriter interface {
	filter(data []byte) (out []byte, err error)
}

// sseFilter passes an SSE answer to a request through event by event, read as a client
// does (internal/sse). With a rewriter (the tools/list filter, or the initialize answer's
// declareListChanged) it rewrites the data of every event that needs it; every other event is passed on byte for byte. When an event cannot be read or
// exceeds maxFilterBytes, when the upstream's stream breaks before the answer came, or when it
// ends without the answer and without an event id to resume from, the stream ends with fail's
// JSON-RPC error event instead. Only one event at a time is held.
type sseFilter struct {
	body io.ReadCloser
	r    *sse.Reader
	f    answerRewriter  // nil: no event is rewritten
	id   json.RawMessage // the request's id (canonical)
	fail func(err error) []byte

	answered bool // an event answered the request
	resume   bool // an event had an id: the client can resume the stream
	out      bytes.Buffer
	err      error // sticky: the end of the output
}

func newSSEFilter(body io.ReadCloser, f answerRewriter, id json.RawMessage, fail func(error) []byte) *sseFilter {
	r := newEventReader(body)
	r.KeepRaw()
	return &sseFilter{body: body, r: r, f: f, id: id, fail: fail}
}

func (s *sseFilter) Close() error { return s.body.Close() }

func (s *sseFilter) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	return s.out.Read(p)
}

// next reads one event into out, rewritten when it lists tools.
func (s *sseFilter) next() error {
	ev, err := s.r.Next()
	switch {
	case err == io.EOF:
		// An unterminated last event is not passed on: no client dispatches it.
		if !s.answered && !s.resume {
			return s.failWith(errStreamEnded)
		}
		return io.EOF
	case errors.Is(err, sse.ErrTooLarge):
		return s.failWith(errTooLarge)
	case err != nil:
		if s.answered {
			return io.EOF
		}
		return s.failWith(fmt.Errorf("%w: %w", errStreamBroken, err))
	}
	s.resume = s.resume || ev.HasID
	if !s.answered {
		s.answered = answers(ev.Data, s.id)
	}
	var out []byte
	if s.f != nil {
		if out, err = s.f.filter(ev.Data); err != nil {
			return s.failWith(err)
		}
	}
	if out == nil {
		s.out.Write(s.r.Raw())
		return nil
	}
	ev.Data = out
	s.out.Write(sse.AppendEvent(s.out.AvailableBuffer(), ev))
	return nil
}

// answers: data is (or, as a batch, holds) a response to the request id.
func answers(data []byte, id json.RawMessage) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 {
		return false
	}
	if t[0] == '[' {
		var elems []json.RawMessage
		if json.Unmarshal(t, &elems) != nil {
			return false
		}
		for _, el := range elems {
			if answers(el, id) {
				return true
			}
		}
		return false
	}
	env, err := strictjson.Shallow(t, envelopeKeys...)
	if err != nil || (!env.Has("result") && !env.Has("error")) {
		return false
	}
	got, err := canonicalID(env["id"])
	return err == nil && bytes.Equal(got, id)
}

// failWith ends the output with the error event for err and stops reading the upstream.
func (s *sseFilter) failWith(err error) error {
	if s.fail != nil {
		s.out.Write(s.fail(err))
	}
	_ = s.body.Close()
	return io.EOF
}
