package proxy

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestSSEFilterRewritesOnlyTheResponse(t *testing.T) {
	keep := func(name string) bool { return name == "a" }
	in := "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n" +
		"id: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\n" +
		"data: \"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}],\"nextCursor\":\"c\"}}\n\n" +
		": comment after the response\n\n"
	out, err := io.ReadAll(newSSEFilter(io.NopCloser(strings.NewReader(in)), json.RawMessage("3"), keep))
	if err != nil {
		t.Fatal(err)
	}
	want := "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n" +
		"id: 7\nevent: message\ndata: {\"id\":3,\"jsonrpc\":\"2.0\",\"result\":{\"nextCursor\":\"c\",\"tools\":[{\"name\":\"a\"}]}}\n\n" +
		": comment after the response\n\n"
	if string(out) != want {
		t.Fatalf("got\n%q\nwant\n%q", out, want)
	}
}

func TestFilterToolsResponseOtherID(t *testing.T) {
	msg := []byte(`{"jsonrpc":"2.0","id":"3","result":{"tools":[{"name":"b"}]}}`)
	if _, changed, err := filterToolsResponse(msg, json.RawMessage("3"), func(string) bool { return false }); changed || err != nil {
		t.Fatalf("a response with id \"3\" was rewritten for id 3 (err %v)", err)
	}
	out, changed, err := filterToolsResponse(msg, json.RawMessage(`"3"`), func(string) bool { return false })
	if !changed || err != nil || string(out) != `{"id":"3","jsonrpc":"2.0","result":{"tools":[]}}` {
		t.Fatalf("got %s %v %v", out, changed, err)
	}
}
