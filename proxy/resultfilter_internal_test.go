package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/internal/sse"
)

func testResultFilter(t *testing.T, mode dlp.Mode) *resultFilter {
	t.Helper()
	sc, err := dlp.Compile(dlp.Settings{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return &resultFilter{scanner: sc, mode: mode, deny: func(id json.RawMessage, found dlp.Findings) []byte {
		return blockedAnswer(id, "list_issues", "tracker", found, true)
	}}
}

// Every shape of an answer: the result (text and structuredContent), an error, a batch, the
// params of a notification; what has no finding passes unchanged (nil).
func TestResultFilterShapes(t *testing.T) {
	f := testResultFilter(t, dlp.ModeRedact)
	for _, c := range []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"owner jane@example.com"}],"structuredContent":{"card":4111111111111111}}}`,
			`{"id":1,"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"owner [redacted:email]"}],"structuredContent":{"card":"[redacted:card_number]"}}}`},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bad key AKIAIOSFODNN7EXAMPLE"}}`,
			`{"error":{"code":-32000,"message":"bad key [redacted:aws_access_key_id]"},"id":1,"jsonrpc":"2.0"}`},
		{`[{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"token ghp_16C7e42F292c6912E7710c838347Ae178B4a"}}]`,
			`[{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"token [redacted:github_token]"}}]`},
		{`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"nothing"}]}}`, ""},
		{``, ""},
	} {
		out, err := f.filter([]byte(c.in))
		if err != nil || string(out) != c.want {
			t.Errorf("%s:\n got %s, %v\nwant %s", c.in, out, err, c.want)
		}
	}
	if got := f.auditNote(); got != "result redacted: aws_access_key_id=1, card_number=1, email=1, github_token=1" {
		t.Errorf("audit note %q", got)
	}
	for _, bad := range []string{`{"id":1,"id":2,"result":{}}`, `{"jsonrpc":"2.0","Result":{}}`, `not json`, `{"id":1,"result":"\xff"}`} {
		if _, err := f.filter([]byte(bad)); !errors.As(err, new(*unreadableError)) {
			t.Errorf("%q: %v, want unreadable", bad, err)
		}
	}
}

// Block: the response is replaced by the denial for its id; a notification is redacted.
func TestResultFilterBlocks(t *testing.T) {
	f := testResultFilter(t, dlp.ModeBlock)
	out, err := f.filter([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"found jane@example.com"}}`))
	if err != nil || !strings.Contains(string(out), "[redacted:email]") || strings.Contains(string(out), "jane@") {
		t.Fatalf("notification: %s %v", out, err)
	}
	out, err = f.filter([]byte(`{"jsonrpc":"2.0","id":"c1","result":{"content":[{"type":"text","text":"4111 1111 1111 1111"}]}}`))
	var a struct {
		ID     string `json:"id"`
		Result struct {
			IsError bool                      `json:"isError"`
			Meta    map[string]map[string]any `json:"_meta"`
			SC      any                       `json:"structuredContent"`
		} `json:"result"`
	}
	if err != nil || json.Unmarshal(out, &a) != nil || a.ID != "c1" || !a.Result.IsError || a.Result.SC != nil ||
		a.Result.Meta["trustgate/denial"]["reason"] != "result_blocked" || strings.Contains(string(out), "4111") {
		t.Fatalf("response: %s %v", out, err)
	}
	if got := f.auditNote(); got != "result_blocked: result blocked, it held card_number=1, email=1" {
		t.Errorf("audit note %q", got)
	}
	if body := blockedAnswer(json.RawMessage("7"), "t", "s", dlp.Findings{dlp.JWT: 2}, false); !strings.Contains(string(body), `"code":-31001`) ||
		!strings.Contains(string(body), `"reason":"result_blocked"`) || !strings.Contains(string(body), `"kinds":["jwt"]`) {
		t.Errorf("JSON-RPC error form: %s", body)
	}
}

// An SSE answer is filtered event by event, each complete (the upstream's bytes arrive one at
// a time): a value in an event is redacted whatever the reads' boundaries, and events without
// findings pass byte for byte.
func TestResultFilterSSE(t *testing.T) {
	f := testResultFilter(t, dlp.ModeRedact)
	in := "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\n" +
		"data: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"AKIAIOSFODNN7EXAMPLE\"}]}}\n\n"
	fail := func(err error) []byte { return rpcErrorEvent(json.RawMessage("2"), ErrCodeUpstream, err.Error()) }
	out, err := io.ReadAll(newSSEFilter(io.NopCloser(iotest.OneByteReader(strings.NewReader(in))), f, json.RawMessage("2"), fail))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"") {
		t.Errorf("the clean event changed: %q", out)
	}
	r := sse.NewReader(strings.NewReader(string(out)), 1<<20)
	var datas []string
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		datas = append(datas, string(ev.Data))
	}
	if len(datas) != 2 || datas[1] != `{"id":2,"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"[redacted:aws_access_key_id]"}]}}` {
		t.Errorf("events %q", datas)
	}
}
