package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/sse"
)

func TestEventBoundary(t *testing.T) {
	for _, c := range []struct {
		stream string
		at     bool
	}{
		{"", true},
		{"data: 1", false},
		{"data: 1\n", false},
		{"data: 1\n\n", true},
		{"data: 1\r\rdata", false},
		{"data: 1\r\r", true},
		{"data: 1\r\n\r\n", true},
		{"data: 1\r\n\r", true},
		{": ping\n\n", true},
		{"data: 1\n\n\n", true},
		{"data: 1\n\n:", false},
	} {
		var b eventBoundary
		b.at = true
		// Byte by byte and in one piece: the same answer.
		for _, chunks := range [][]string{{c.stream}, strings.Split(c.stream, "")} {
			b = eventBoundary{at: true}
			for _, ch := range chunks {
				b.feed([]byte(ch))
			}
			if b.at != c.at {
				t.Errorf("%q (in %d pieces): at a boundary = %v, want %v", c.stream, len(chunks), b.at, c.at)
			}
		}
	}
}

// A waiting notification is written after the first blank line, never inside an event, also
// when the blank line is split across reads or ends with CRLF.
func TestNotificationIsWrittenBetweenEvents(t *testing.T) {
	ev := string(listChangedEvent)
	for _, c := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"LF", []string{"data: 1\n\ndata: 2\n\n"}, "data: 1\n\n" + ev + "data: 2\n\n"},
		{"CRLF", []string{"data: 1\r\n\r\ndata: 2\r\n\r\n"}, "data: 1\r\n\r\n" + ev + "data: 2\r\n\r\n"},
		{"split", []string{"data: 1\n", "\ndata: 2\n\n"}, "data: 1\n\n" + ev + "data: 2\n\n"},
		{"inside an event first", []string{"data: {\"a\":", "1}\n\n"}, "data: {\"a\":1}\n\n" + ev},
	} {
		s := &notifyingStream{b: eventBoundary{at: false}, want: true}
		var out strings.Builder
		for _, ch := range c.chunks {
			out.Write(s.relay([]byte(ch)))
		}
		if out.String() != c.want {
			t.Errorf("%s: relayed %q, want %q", c.name, out.String(), c.want)
		}
		if s.want {
			t.Errorf("%s: the notification is still waiting", c.name)
		}
	}
}

// The relayed stream, read as a client reads it: the upstream's events unchanged and in
// order, trustgate's notification between them, and closing the stream ends the subscription.
func TestNotifyingStream(t *testing.T) {
	upR, upW := io.Pipe()
	notify := make(chan struct{}, 1)
	stopped := false
	s := relayWithNotifications(upR, notify, func() { stopped = true })
	r := sse.NewReader(s, 1<<20)
	write := func(data string) {
		go func() { _, _ = io.WriteString(upW, data) }()
	}
	next := func() string {
		t.Helper()
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("read the relayed stream: %v", err)
		}
		return string(ev.Data)
	}

	write(": keep-alive\n\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n")
	if got := next(); !strings.Contains(got, "notifications/message") {
		t.Fatalf("first event %q, want the upstream's", got)
	}
	notify <- struct{}{}
	if got := next(); got != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` {
		t.Fatalf("second event %q, want trustgate's list_changed", got)
	}
	if r.LastEventID() != "7" {
		t.Fatalf("last event id %q after trustgate's event, want the upstream's 7 kept", r.LastEventID())
	}
	write("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n")
	if got := next(); !strings.Contains(got, "list_changed") {
		t.Fatalf("third event %q, want the upstream's own list_changed passed on", got)
	}
	_ = upW.Close()
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the upstream ended: %v, want EOF", err)
	}
	_ = s.Close()
	_ = s.Close()
	if !stopped {
		t.Fatal("closing the stream did not end its subscription")
	}
}

func TestDeclareListChanged(t *testing.T) {
	initResult := func(caps string) string {
		return `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":` + caps + `,"serverInfo":{"name":"up","version":"1"}}}`
	}
	listChanged := func(t *testing.T, out []byte) bool {
		t.Helper()
		var m struct {
			Result struct {
				Capabilities map[string]map[string]any `json:"capabilities"`
				ServerInfo   map[string]any            `json:"serverInfo"`
			} `json:"result"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("rewritten answer %s: %v", out, err)
		}
		if m.Result.ServerInfo["name"] != "up" {
			t.Fatalf("serverInfo lost: %s", out)
		}
		return m.Result.Capabilities["tools"]["listChanged"] == true
	}
	for _, caps := range []string{`{"tools":{}}`, `{"tools":{"listChanged":false},"logging":{}}`} {
		out, err := declareListChanged{}.filter([]byte(initResult(caps)))
		if err != nil || out == nil || !listChanged(t, out) {
			t.Errorf("capabilities %s: out %s, err %v; want tools.listChanged true", caps, out, err)
		}
	}
	for _, body := range []string{
		initResult(`{"tools":{"listChanged":true}}`),
		initResult(`{"logging":{}}`), // no tools: nothing for the policy to change
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}`,
		``,
	} {
		if out, err := (declareListChanged{}).filter([]byte(body)); err != nil || out != nil {
			t.Errorf("%s: out %s, err %v; want it passed on unchanged", body, out, err)
		}
	}
	// A batch: the element that answers initialize is rewritten.
	out, err := declareListChanged{}.filter([]byte("[" + initResult(`{"tools":{}}`) + "]"))
	var elems []json.RawMessage
	if err != nil || json.Unmarshal(out, &elems) != nil || len(elems) != 1 || !listChanged(t, elems[0]) {
		t.Errorf("batch: out %s, err %v", out, err)
	}
	// Keys a client could read differently fail the answer, as the tools/list filter does.
	for _, body := range []string{
		initResult(`{"tools":{},"Tools":{"listChanged":false}}`),
		initResult(`{"tools":{"listChanged":false,"listchanged":false}}`),
		`{"jsonrpc":"2.0","id":1,"result":{"capabilities":{"tools":{}},"capabilities":{}}}`,
	} {
		var unread *unreadableError
		if _, err := (declareListChanged{}).filter([]byte(body)); !errors.As(err, &unread) {
			t.Errorf("%s: err %v, want it unreadable", body, err)
		}
	}
}
