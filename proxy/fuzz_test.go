package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
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

// FuzzSSEFilter: whatever an upstream streams, the filter never panics, never grows an event
// past its bound, and leaves a stream without the response's id byte-for-byte unchanged.
func FuzzSSEFilter(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n"))
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n: comment\n\n"))
	f.Add([]byte("data: {\"jsonrpc\":\ndata: \"2.0\",\"id\":1,\"result\":{}}\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		keep := func(name string) bool { return name == "a" }
		out, err := io.ReadAll(newSSEFilter(io.NopCloser(bytes.NewReader(stream)), json.RawMessage(`1`), keep))
		if err != nil {
			return // refused as too large or malformed: the proxy reports it
		}
		if !bytes.Contains(stream, []byte(`"id"`)) && !bytes.Equal(out, stream) {
			t.Fatalf("a stream without responses was changed:\n%q\n%q", stream, out)
		}
		if strings.Contains(string(out), `"name":"b"`) && !strings.Contains(string(stream), `"name":"b"`) {
			t.Fatal("the filter invented a tool")
		}
	})
}

// FuzzSSEReader: whatever a legacy upstream streams, the event reader never panics, never
// returns an event above its bound, and ends with an error rather than looping.
func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("event: endpoint\ndata: /messages?sessionid=1\n\n"))
	f.Add([]byte(": ping\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n"))
	f.Add([]byte("data: a\ndata: b\n\ndata: truncated"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := newSSEReader(bytes.NewReader(stream))
		for i := 0; ; i++ {
			ev, err := r.next()
			if err != nil {
				return
			}
			if len(ev.data) > maxFilterBytes {
				t.Fatalf("an event of %d bytes", len(ev.data))
			}
			if i > len(stream) {
				t.Fatal("more events than bytes")
			}
		}
	})
}
