package proxy

import (
	"strings"
	"testing"
)

// smuggled are messages that one JSON reader could understand differently from another: the
// gateway would authorize one thing and the upstream run another. Each must be refused as an
// invalid request.
var smuggled = map[string]string{
	"tool name and its case twin":    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_item","Name":"list_items"}}`,
	"case twin of name alone":        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"list_items"}}`,
	"method and its case twin":       `{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"ping","params":{"name":"delete_item"}}`,
	"a second PARAMS":                `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_item"},"PARAMS":{"name":"list_items"}}`,
	"paramſ (long s)":                `{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"list_items"},"params":{"name":"delete_item"}}`,
	"paramſ alone":                   `{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"list_items"}}`,
	"Kelvin sign in a key":           `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"k":1,"\u212a":2}}}`,
	"duplicate name":                 `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","name":"delete_item"}}`,
	"duplicate name, escaped":        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","\u006eame":"delete_item"}}`,
	"duplicate method":               `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_item"}}`,
	"duplicate id":                   `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`,
	"duplicate jsonrpc":              `{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}`,
	"duplicate arguments":            `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{},"arguments":{"a":1}}}`,
	"duplicate in arguments":         `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"id":"1","id":"2"}}}`,
	"_meta case twin":                `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{},"_META":{}}}`,
	"meta version case twin":         `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolversion":"2025-06-18"}}}`,
	"invalid UTF-8":                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"list\xffitems\"}}",
	"fractional id":                  `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`,
	"id with exponent":               `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`,
	"id beyond 2^53-1":               `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`,
	"id -0":                          `{"jsonrpc":"2.0","id":-0,"method":"ping"}`,
	"null id on a request":           `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
	"boolean id":                     `{"jsonrpc":"2.0","id":true,"method":"ping"}`,
	"object id":                      `{"jsonrpc":"2.0","id":{},"method":"ping"}`,
	"id with a lone surrogate":       `{"jsonrpc":"2.0","id":"\ud800","method":"ping"}`,
	"null method":                    `{"jsonrpc":"2.0","id":1,"method":null,"result":{}}`,
	"numeric method":                 `{"jsonrpc":"2.0","id":1,"method":7}`,
	"request with a result":          `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"result":{}}`,
	"response with result and error": `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}`,
	"deep nesting":                   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}}}`,
}

func TestParseMessageRefusesSmuggling(t *testing.T) {
	for name, body := range smuggled {
		t.Run(name, func(t *testing.T) {
			m, err := parseMessage([]byte(body))
			e, ok := asRPCError(err)
			if !ok || e.code != ErrCodeInvalidRequest {
				t.Fatalf("parseMessage(%s) = %+v, %v; want invalid request", body, m, err)
			}
		})
	}
}

func TestParseMessageReadsExactKeys(t *testing.T) {
	for _, tc := range []struct {
		body               string
		kind               kind
		id, method, name   string
		uri, args, version string
	}{
		{body: ` {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_items","arguments":{"a":[1,{"b":null}]}}} `,
			kind: kindRequest, id: `7`, method: "tools/call", name: "list_items", args: `{"a":[1,{"b":null}]}`},
		{body: `{"jsonrpc":"2.0","id":"a\u0062<","method":"tools\/call","params":{"\u006eame":"x"}}`,
			kind: kindRequest, id: `"ab<"`, method: "tools/call", name: "x"},
		{body: `{"jsonrpc":"2.0","id":-9007199254740991,"method":"resources/read","params":{"uri":"file:///a","_meta":{"io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}`,
			kind: kindRequest, id: `-9007199254740991`, method: "resources/read", uri: "file:///a", version: "2025-06-18"},
		{body: `{"jsonrpc":"2.0","method":"notifications/initialized","other":{"Other":1}}`, kind: kindNotification, method: "notifications/initialized"},
		{body: `{"jsonrpc":"2.0","id":0,"result":{}}`, kind: kindResponse, id: `0`},
		{body: `{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}`, kind: kindResponse, id: `"x"`},
		{body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, kind: kindRequest, id: `1`, method: "tools/call"},
	} {
		m, err := parseMessage([]byte(tc.body))
		if err != nil {
			t.Errorf("parseMessage(%s): %v", tc.body, err)
			continue
		}
		var version string
		if m.metaVersion != nil {
			version = *m.metaVersion
		}
		if m.kind != tc.kind || string(m.id) != tc.id || m.method != tc.method || m.name != tc.name || m.uri != tc.uri ||
			string(m.arguments) != tc.args || version != tc.version {
			t.Errorf("parseMessage(%s) = %+v (version %q)", tc.body, m, version)
		}
	}
}
