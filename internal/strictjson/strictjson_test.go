package strictjson

import (
	"bytes"
	"encoding/json"
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

func TestCheckAcceptsOrdinaryJSON(t *testing.T) {
	for _, in := range []string{`1`, `"s"`, `null`, `[]`, `{}`, `{"a":{"A2":1,"b":[{"a":1},{"a":2}]}}`, `{"ä":1,"Ä2":2}`} {
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
