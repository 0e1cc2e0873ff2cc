package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/trustgate/trustgate/internal/sse"
)

// keepA keeps only the tool named "a".
func keepA(name string, _ json.RawMessage) bool { return name == "a" }

// filterStream runs an SSE answer through the filter (the upstream's bytes one at a time, so
// that every line end is split across reads) and returns the output and the drops reported.
func filterStream(t testing.TB, in string) (string, []string) {
	t.Helper()
	var drops []string
	f := &toolsFilter{keep: keepA, dropped: func(r string) { drops = append(drops, r) }}
	fail := func(err error) []byte { return rpcErrorEvent(json.RawMessage("2"), ErrCodeUpstream, err.Error()) }
	out, err := io.ReadAll(newSSEFilter(io.NopCloser(iotest.OneByteReader(strings.NewReader(in))), f, json.RawMessage("2"), fail))
	if err != nil {
		t.Fatalf("filter: %v", err)
	}
	return string(out), drops
}

// listed is what a client following the SSE standard lists from an SSE answer: the tool names
// of every event (whatever its name), read as an exact-key and as a case-insensitive reader
// would; errors are the JSON-RPC error codes seen.
func listed(t testing.TB, stream string) (names []string, errors []int) {
	t.Helper()
	r := sse.NewReader(strings.NewReader(stream), 1<<30)
	for {
		ev, err := r.Next()
		if err != nil {
			return names, errors
		}
		n, e := toolNamesOf(ev.Data)
		names, errors = append(names, n...), append(errors, e...)
	}
}

// toolNamesOf reads the tools of a JSON answer (message or batch) as two kinds of client do:
// exact keys (last duplicate wins, as in JavaScript and Python) and encoding/json's
// case-insensitive matching.
func toolNamesOf(data []byte) (names []string, errCodes []int) {
	var msgs []json.RawMessage
	if json.Unmarshal(data, &msgs) != nil {
		msgs = []json.RawMessage{data}
	}
	for _, m := range msgs {
		var exact map[string]any
		if json.Unmarshal(m, &exact) == nil {
			if res, ok := exact["result"].(map[string]any); ok {
				if tools, ok := res["tools"].([]any); ok {
					for _, tool := range tools {
						if obj, ok := tool.(map[string]any); ok {
							if n, ok := obj["name"].(string); ok {
								names = append(names, n)
							}
						}
					}
				}
			}
		}
		var loose struct {
			Result struct {
				Tools []struct{ Name string }
			}
			Error *struct{ Code int }
		}
		if json.Unmarshal(m, &loose) == nil {
			for _, tool := range loose.Result.Tools {
				if tool.Name != "" {
					names = append(names, tool.Name)
				}
			}
			if loose.Error != nil {
				errCodes = append(errCodes, loose.Error.Code)
			}
		}
	}
	return names, errCodes
}

func onlyA(names []string) bool {
	for _, n := range names {
		if n != "a" {
			return false
		}
	}
	return true
}

const toolsAB = `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","inputSchema":{"type":"object"}}]}}`

// TestToolsFilterEveryFraming: in every framing a client accepts, the answer's tools are
// filtered (issue: bare CR line ends, batches, a decoy event before the real one).
func TestToolsFilterEveryFraming(t *testing.T) {
	batch := "[" + toolsAB + "]"
	for name, in := range map[string]string{
		"LF":                    "event: message\ndata: " + toolsAB + "\n\n",
		"CRLF":                  "event: message\r\ndata: " + toolsAB + "\r\n\r\n",
		"bare CR":               "event: message\rdata: " + toolsAB + "\r\r",
		"bare CR, BOM, comment": "\ufeff: hi\rid: 9\rretry: 100\rdata: " + toolsAB + "\r\r",
		"split data lines":      "data: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n",
		"batch":                 "data: " + batch + "\n\n",
		"decoy event first":     "event: ignored\ndata: " + toolsAB + "\n\nevent: message\ndata: " + toolsAB + "\n\n",
		"another id":            "data: " + strings.Replace(toolsAB, `"id":2`, `"id":"2"`, 1) + "\n\n",
		"notification first":    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\ndata: " + toolsAB + "\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, _ := filterStream(t, in)
			names, errs := listed(t, out)
			if !onlyA(names) || len(names) == 0 || (len(errs) != 0 && name != "another id") {
				t.Fatalf("a client lists %v (errors %v) from\n%q", names, errs, out)
			}
		})
	}
}

// TestToolsFilterTwinKeyEntry: an entry whose keys differ only by case is dropped (and
// reported), whichever of its names a client would read.
func TestToolsFilterTwinKeyEntry(t *testing.T) {
	in := `data: {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"b","NAME":"a"},{"name":"a"},{"name":"a","inputSchema":{"type":"object","type":"x"}}]}}` + "\n\n"
	out, drops := filterStream(t, in)
	if names, _ := listed(t, out); len(names) != 2 || !onlyA(names) { // exact and loose reading of the one clean entry
		t.Fatalf("listed %v from %q", names, out)
	}
	if len(drops) != 2 {
		t.Fatalf("drops reported: %v", drops)
	}
}

// TestToolsFilterFailsClosed: what cannot be read exactly, or exceeds the bound, ends the
// answer with a JSON-RPC error for the request instead of passing on.
func TestToolsFilterFailsClosed(t *testing.T) {
	for name, in := range map[string]string{
		"twin envelope keys": `data: {"jsonrpc":"2.0","id":2,"result":{"tools":[]},"RESULT":{"tools":[{"name":"b"}]}}` + "\n\n",
		"twin result keys":   `data: {"jsonrpc":"2.0","id":2,"result":{"tools":[],"Tools":[{"name":"b"}]}}` + "\n\n",
		"tools not an array": `data: {"jsonrpc":"2.0","id":2,"result":{"tools":{"name":"b"}}}` + "\n\n",
		"not JSON":           "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"b\"}]},\"x\":NaN}\n\n",
		"after a good event": "data: " + toolsAB + "\n\ndata: {\"id\":2,\"id\":3}\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, _ := filterStream(t, in)
			names, errs := listed(t, out)
			if !onlyA(names) || len(errs) != 1 || errs[0] != ErrCodeUpstream {
				t.Fatalf("listed %v, errors %v from %q", names, errs, out)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		in := "data: " + strings.Repeat(" ", maxFilterBytes) + toolsAB + "\n\n"
		out, err := io.ReadAll(newSSEFilter(io.NopCloser(strings.NewReader(in)), &toolsFilter{keep: keepA}, json.RawMessage("2"),
			func(err error) []byte { return rpcErrorEvent(json.RawMessage("2"), ErrCodeUpstream, err.Error()) }))
		if err != nil {
			t.Fatal(err)
		}
		if names, errs := listed(t, string(out)); len(names) != 0 || len(errs) != 1 {
			t.Fatalf("listed %v, errors %v", names, errs)
		}
	})
	if _, err := (&toolsFilter{keep: keepA}).filter([]byte(`[` + toolsAB + `,{"jsonrpc":"2.0","id":3,"Id":4,"result":{}}]`)); !errors.As(err, new(*unreadableError)) {
		t.Fatalf("a batch with a twin-key message: %v", err)
	}
}

// TestSSEFilterPassesTheRestByteForByte: events that list no tools stream on unchanged; a
// rewritten event replaces its whole segment (the comments and empty lines before it too);
// what follows the last complete event, which no client dispatches, is not passed on.
func TestSSEFilterPassesTheRestByteForByte(t *testing.T) {
	head := "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n" +
		"id: 7\rdata:\r\r"
	tail := "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"
	out, _ := filterStream(t, head+": comment\n\nid: 8\nevent: message\ndata: "+toolsAB+"\n\n"+tail+": after\n\ndata: "+toolsAB)
	want := head + "event: message\nid: 8\ndata: " + `{"id":2,"jsonrpc":"2.0","result":{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}}` + "\n\n" + tail
	if out != want {
		t.Fatalf("got\n%q\nwant\n%q", out, want)
	}
}

func TestToolsFilterJSONBody(t *testing.T) {
	f := &toolsFilter{keep: keepA}
	for _, in := range []string{toolsAB, "[" + toolsAB + "]", " [ " + toolsAB + ", {\"jsonrpc\":\"2.0\",\"method\":\"x\"} ] "} {
		out, err := f.filter([]byte(in))
		if err != nil || out == nil {
			t.Fatalf("%s: %s %v", in, out, err)
		}
		if names, _ := toolNamesOf(out); !onlyA(names) || len(names) == 0 {
			t.Fatalf("%s: listed %v", in, names)
		}
	}
	same := `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}`
	if out, err := f.filter([]byte(same)); out != nil || err != nil {
		t.Fatalf("an answer needing no change was rewritten: %s %v", out, err)
	}
}

// filteredAll reports whether no client reading out lists a tool but "a"; every error in it
// is the filter's.
func filteredAll(t testing.TB, out []byte) {
	t.Helper()
	if names, _ := listed(t, string(out)); !onlyA(names) {
		t.Fatalf("a client lists %v from the filtered stream %q", names, out)
	}
}
