package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestParseObjectRefusesDisagreements(t *testing.T) {
	known := []string{"jsonrpc", "id", "method", "params"}
	for _, tc := range []struct{ name, in string }{
		{"case twin", `{"method":"tools/call","METHOD":"ping"}`},
		{"case twin nested", `{"method":"tools/call","params":{"name":"delete_item","Name":"list_items"}}`},
		{"long s folds to s", `{"method":"tools/call","params":{},"paramſ":{}}`},
		{"upper case folds to lower", `{"a":{"k":1,"K":2}}`},
		{"kelvin sign folds to k", `{"a":{"k":1,"\u212a":2}}`},
		{"kelvin sign, raw, folds to k", "{\"a\":{\"\u212a\":1,\"k\":2}}"},
		{"long s and s", `{"a":{"ſ":1,"s":2}}`},
		{"long s folds to S", `{"a":{"S":1,"\u017f":2}}`},
		{"exact duplicate", `{"method":"a","method":"b"}`},
		{"escaped duplicate", `{"method":"a","\u006dethod":"b"}`},
		{"duplicate in an array's object", `{"params":{"x":[{"a":1,"a":2}]}}`},
		{"variant of a known key alone", `{"Params":{}}`},
		{"invalid utf-8 key", "{\"na\xffme\":1}"},
		{"invalid utf-8 value", "{\"name\":\"a\xff\"}"},
		{"two values", `{"a":1}{"b":2}`},
		{"trailing garbage", `{"a":1} x`},
		{"not an object", `[{"a":1}]`},
		{"bom", "\ufeff{\"a\":1}"},
		{"truncated", `{"a":`},
		{"empty", ``},
		{"deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)},
		{"deep object", `{"a":` + strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat(`}`, MaxDepth+1)},
		{"fold twin in a large object", `{"a":{` + manyKeys(40) + `,"K7":1}}`},
		{"exact duplicate in a large object", `{"a":{` + manyKeys(40) + `,"k39":1}}`},
		{"escaped twin in a large object", `{"a":{` + manyKeys(40) + `,"\u006b3":1}}`},
		{"twin after a nested object closes", `{"a":{"x":1,"y":{"x":2},"X":3}}`},
		{"twin across escapes", `{"a":{"\u004e":1,"n":2}}`},
		{"number after the value", `{"a":1} 2`},
		{"lone closing brace", `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseObject([]byte(tc.in), known...); err == nil || !IsRefusal(err) {
				t.Fatalf("ParseObject(%q) = %v, want a refusal", tc.in, err)
			}
		})
	}
}

func TestParseObjectMembers(t *testing.T) {
	in := ` { "jsonrpc" : "2.0", "id": 7 , "method":"tools/call","params": {"name":"x","arguments":{"a":[1,{"b":null}]}}, "other":true } `
	obj, err := ParseObject([]byte(in), "jsonrpc", "id", "method", "params")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"jsonrpc": `"2.0"`, "id": `7`, "method": `"tools/call"`,
		"params": `{"name":"x","arguments":{"a":[1,{"b":null}]}}`, "other": `true`,
	}
	if len(obj) != len(want) {
		t.Fatalf("members %v, want %v", obj, want)
	}
	for k, v := range want {
		if got := strings.TrimSpace(string(obj[k])); got != v {
			t.Errorf("member %q = %s, want %s", k, got, v)
		}
	}
	if m, ok := obj.String("method"); !ok || m != "tools/call" {
		t.Errorf("String(method) = %q, %v", m, ok)
	}
	if _, ok := obj.String("id"); ok {
		t.Error("String(id) of a number reported ok")
	}
	params, err := Members(obj["params"], "name", "arguments", "_meta")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := params.String("name"); n != "x" {
		t.Errorf("params.name = %q", n)
	}
	if _, err := Members([]byte(`{"NAME":"x"}`), "name"); err == nil {
		t.Error("Members accepted a case variant of a known key")
	}
}

// TestShallowChecksOnlyItsOwnKeys: Shallow refuses what ParseObject refuses at the top level
// and leaves nested objects to the caller.
func TestShallowChecksOnlyItsOwnKeys(t *testing.T) {
	for _, in := range []string{`{"id":1,"ID":2}`, `{"id":1,"id":2}`, `{"Result":{}}`, `[{}]`, `{"a":}`, "{\"a\":\"\xff\"}", `{"a":1}x`} {
		if _, err := Shallow([]byte(in), "result"); err == nil || !IsRefusal(err) {
			t.Errorf("Shallow(%q) = %v, want a refusal", in, err)
		}
	}
	obj, err := Shallow([]byte(` {"result":{"tools":[{"name":"a","NAME":"b"}]}, "id":7} `), "result", "id")
	if err != nil {
		t.Fatal(err)
	}
	if string(obj["result"]) != `{"tools":[{"name":"a","NAME":"b"}]}` || string(obj["id"]) != `7` {
		t.Fatalf("members %q", obj)
	}
}

// manyKeys is n members "k0":0 … of an object, without the braces.
func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

func TestCheckAcceptsOrdinaryJSON(t *testing.T) {
	for _, in := range []string{`1`, `"s"`, `null`, `[]`, `{}`, `{"a":{"A2":1,"b":[{"a":1},{"a":2}]}}`, `{"ä":1,"Ä2":2}`,
		`{"a":{` + manyKeys(40) + `}}`, `{"a":{"x":{"y":1},"y":{"x":2}}}`, `{"name":"\ud800"}`,
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)} {
		if err := Check([]byte(in)); err != nil {
			t.Errorf("Check(%s) = %v", in, err)
		}
	}
}

// FuzzAgreesWithCaseInsensitiveReader is the guard for the class of bug this package exists
// for: whenever ParseObject accepts an input, encoding/json's case-insensitive, last-wins
// struct decoding reads every known member exactly as the exact-key reader does.
func FuzzAgreesWithCaseInsensitiveReader(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
		`{"method":"a","METHOD":"b"}`, `{"paramſ":1}`, `{"\u006dethod":"a"}`, `{"Method":"a"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		known := []string{"jsonrpc", "id", "method", "params"}
		shallow, shallowErr := Shallow(data, known...)
		obj, err := ParseObject(data, known...)
		if err == nil && (shallowErr != nil || len(shallow) != len(obj)) {
			t.Fatalf("%q: ParseObject accepts, Shallow %v (%d members, want %d)", data, shallowErr, len(shallow), len(obj))
		}
		if shallowErr == nil {
			obj = shallow // Shallow's top-level reading must agree with encoding/json's too
		} else if err != nil {
			return
		}
		var loose struct {
			JSONRPC json.RawMessage `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Method  json.RawMessage `json:"method"`
			Params  json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(data, &loose); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
		}
		for key, got := range map[string]json.RawMessage{"jsonrpc": loose.JSONRPC, "id": loose.ID, "method": loose.Method, "params": loose.Params} {
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(obj[key])) {
				t.Fatalf("%q: encoding/json reads %s = %s, the exact reader %s", data, key, got, obj[key])
			}
		}
	})
}

// toolsListAnswer is a tools/list answer with n tools, each with a small input schema.
func toolsListAnswer(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":7,"result":{"tools":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"lookup_%d","title":"Lookup %d","description":"Looks up item %d in the tracker and returns its fields.",`+
			`"inputSchema":{"type":"object","properties":{"id":{"type":"string","description":"The item's id"},"fields":{"type":"array","items":{"type":"string"}}},"required":["id"]},`+
			`"annotations":{"readOnlyHint":true,"openWorldHint":false}}`, i, i, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// BenchmarkToolsListAnswer reads a 200-tool answer the way the tools/list filter does: the
// envelope and the result shallowly, then every tool entry strictly.
func BenchmarkToolsListAnswer(b *testing.B) {
	data := toolsListAnswer(200)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		env, err := Shallow(data, "jsonrpc", "id", "result", "error", "method", "params")
		if err != nil {
			b.Fatal(err)
		}
		res, err := Shallow(env["result"], "tools", "nextCursor", "_meta")
		if err != nil {
			b.Fatal(err)
		}
		var tools []json.RawMessage
		if err := json.Unmarshal(res["tools"], &tools); err != nil {
			b.Fatal(err)
		}
		for _, tool := range tools {
			if _, err := ParseObject(tool, "name", "title", "description", "inputSchema", "outputSchema", "annotations", "_meta"); err != nil {
				b.Fatal(err)
			}
		}
	}
}
