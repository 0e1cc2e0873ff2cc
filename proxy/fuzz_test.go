package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdkjson "github.com/segmentio/encoding/json"
)

// FuzzParseMessage: any body either parses into one well-formed message or is refused with a
// JSON-RPC error code; it never panics, and a parsed request always has a method.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"a","result":{}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`,
		`{`, ``, `null`, `{"jsonrpc":"2.0","id":null,"method":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseMessage(body)
		if err != nil {
			if _, ok := asRPCError(err); !ok {
				t.Fatalf("error is not a JSON-RPC error: %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		if m.kind == kindRequest && m.method == "" {
			t.Fatalf("a request without a method: %q", body)
		}
	})
}

// FuzzParseMessageAgreesWithSDK: whatever message the gateway accepts, the official Go SDK (the
// upstream's JSON-RPC decoder, and its exact-key decoding of params) reads the same kind of
// message with the same method, id, tool name, resource URI, params and arguments. A message
// the gateway accepts but the SDK refuses is fine (the upstream answers with an error and runs
// nothing); one it reads differently would let the gateway authorize one thing and the
// upstream run another.
func FuzzParseMessageAgreesWithSDK(f *testing.F) {
	for _, seed := range smuggled {
		f.Add([]byte(seed))
	}
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","arguments":{"a":1}}}`,
		`{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"file:///a","_meta":{"progressToken":1}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":9007199254740991,"result":{}}`,
		`{"jsonrpc":"2.0","id":"e","error":{"code":-1,"message":"m"}}`,
		"\ufeff{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
		" \r\n\t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} \n",
		`{"jsonrpc":"2.0","id":"\u0000","method":"tools/call\u0000","params":{"name":"a\u0000b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83d\ude00","arguments":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[{"name":"x"}]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}}`,
		`{"jsonrpc":"2.0","id":1.0,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"1","method":"ping","ID":2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseMessage(body)
		if err != nil {
			return
		}
		sdk, err := jsonrpc.DecodeMessage(body)
		if err != nil {
			return // the upstream refuses it too
		}
		switch msg := sdk.(type) {
		case *jsonrpc.Request:
			if m.kind == kindResponse || msg.IsCall() != (m.kind == kindRequest) {
				t.Fatalf("kind: gateway %d, SDK request (call %v): %q", m.kind, msg.IsCall(), body)
			}
			if msg.Method != m.method {
				t.Fatalf("method: gateway %q, SDK %q: %q", m.method, msg.Method, body)
			}
			if msg.IsCall() && sdkID(t, msg.ID) != string(m.id) {
				t.Fatalf("id: gateway %s, SDK %s: %q", m.id, sdkID(t, msg.ID), body)
			}
			if !sameJSON(msg.Params, m.params) {
				t.Fatalf("params: gateway %s, SDK %s: %q", m.params, msg.Params, body)
			}
			agreeOnParams(t, body, msg.Params, m)
		case *jsonrpc.Response:
			if m.kind != kindResponse || sdkID(t, msg.ID) != string(m.id) {
				t.Fatalf("gateway %d id %s, SDK response id %s: %q", m.kind, m.id, sdkID(t, msg.ID), body)
			}
		default:
			t.Fatalf("SDK message %T", sdk)
		}
	})
}

// agreeOnParams decodes params as the SDK's server does (segmentio/encoding/json, exact keys)
// into its tools/call and resources/read parameters and compares with what the gateway read.
func agreeOnParams(t *testing.T, body []byte, params json.RawMessage, m message) {
	t.Helper()
	if len(params) == 0 {
		return
	}
	var call mcp.CallToolParamsRaw
	if sdkUnmarshal(params, &call) == nil && (call.Name != m.name || !sameJSON(call.Arguments, m.arguments)) {
		t.Fatalf("tools/call: gateway name %q arguments %s, SDK name %q arguments %s: %q", m.name, m.arguments, call.Name, call.Arguments, body)
	}
	var read mcp.ReadResourceParams
	if sdkUnmarshal(params, &read) == nil && read.URI != m.uri {
		t.Fatalf("resources/read: gateway uri %q, SDK %q: %q", m.uri, read.URI, body)
	}
}

// sdkUnmarshal decodes as the Go SDK's internal JSON package does.
func sdkUnmarshal(data []byte, v any) error {
	dec := sdkjson.NewDecoder(bytes.NewReader(data))
	dec.DontMatchCaseInsensitiveStructFields()
	return dec.Decode(v)
}

// sdkID is the JSON the SDK answers with for id (what the gateway's canonical id must equal).
func sdkID(t *testing.T, id jsonrpc.ID) string {
	t.Helper()
	switch v := id.Raw().(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(buf.String(), "\n")
	case nil:
		return ""
	default:
		t.Fatalf("SDK id of type %T", v)
		return ""
	}
}

// sameJSON: both absent, or both the same JSON text once compacted.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// FuzzSSEFilter: whatever an upstream answers to tools/list, as an SSE stream or as a JSON
// body, the filter never panics, and no client reading its output (an SSE reader following
// the standard; exact-key and case-insensitive JSON readers; events of any name; batches)
// lists a tool the agent may not see. A stream in which nothing lists tools passes unchanged
// up to its last complete event.
func FuzzSSEFilter(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n"))
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n: comment\n\n"))
	f.Add([]byte("data: {\"jsonrpc\":\ndata: \"2.0\",\"id\":1,\"result\":{}}\n\n"))
	f.Add([]byte("event: ignored\rdata: [{\"id\":1,\"result\":{\"tools\":[{\"name\":\"b\",\"NAME\":\"a\"}]}}]\r\r"))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"},{"Name":"b","name":"a"}]}}]`))
	f.Fuzz(func(t *testing.T, stream []byte) {
		out, err := io.ReadAll(newSSEFilter(io.NopCloser(bytes.NewReader(stream)), &toolsFilter{keep: keepA}, json.RawMessage("1"),
			func(err error) []byte { return rpcErrorEvent(json.RawMessage("1"), ErrCodeUpstream, err.Error()) }))
		if err != nil {
			t.Fatalf("the filter failed instead of answering with an error event: %v", err)
		}
		filteredAll(t, out)
		passed := out
		if i := bytes.LastIndex(out, []byte("event: message\ndata: {\"error\":{\"code\":-31003")); i >= 0 {
			passed = out[:i] // up to the filter's own error event
		}
		if !bytes.Contains(stream, []byte(`"`)) && !bytes.HasPrefix(stream, passed) {
			t.Fatalf("a stream without JSON strings was changed:\n%q\n%q", stream, out)
		}
		if body, err := (&toolsFilter{keep: keepA}).filter(stream); err == nil {
			if body == nil {
				body = stream
			}
			if names, _ := toolNamesOf(body); !onlyA(names) {
				t.Fatalf("a client lists %v from the filtered body %q", names, body)
			}
		}
	})
}
