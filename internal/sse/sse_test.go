package sse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAll returns the events of stream read through src and the final error.
func readAll(t testing.TB, src io.Reader, max int) ([]Event, error) {
	t.Helper()
	r := NewReader(src, max)
	var evs []Event
	for i := 0; ; i++ {
		ev, err := r.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
		if i > 1<<20 {
			t.Fatal("reader does not end")
		}
	}
}

func TestReaderFollowsTheStandard(t *testing.T) {
	type ev struct{ typ, data, id string }
	for _, tc := range []struct {
		name, in string
		want     []ev
	}{
		{"LF", "data: a\n\n", []ev{{"", "a", ""}}},
		{"CRLF", "data: a\r\n\r\n", []ev{{"", "a", ""}}},
		{"bare CR", "event: message\rdata: a\r\rdata: b\r\r", []ev{{"message", "a", ""}, {"", "b", ""}}},
		{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", []ev{{"", "a\nb\nc", ""}}},
		{"BOM", "\ufeffdata: a\n\n", []ev{{"", "a", ""}}},
		{"only one BOM", "\ufeff\ufeffdata: a\n\n", nil},
		{"field without colon", "data\n\ndata\ndata\n\n", []ev{{"", "", ""}, {"", "\n", ""}}},
		{"one space removed", "data:  a\ndata:b\n\n", []ev{{"", " a\nb", ""}}},
		{"comments ignored", ": hi\ndata: a\n: there\n\n", []ev{{"", "a", ""}}},
		{"no data no event", "event: x\nid: 1\n\n", nil},
		{"event type reset", "event: x\n\ndata: a\n\n", []ev{{"", "a", ""}}},
		{"id persists", "id: 1\ndata: a\n\ndata: b\n\n", []ev{{"", "a", "1"}, {"", "b", "1"}}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\n", []ev{{"", "a", "1"}, {"", "b", "1"}}},
		{"unknown field", "foo: bar\ndata: a\n\n", []ev{{"", "a", ""}}},
		{"unterminated last event", "data: a\n\ndata: b\n", []ev{{"", "a", ""}}},
		{"unterminated last line", "data: a\n\ndata: b", []ev{{"", "a", ""}}},
		{"colon in value", "data: {\"a\":1}\n\n", []ev{{"", `{"a":1}`, ""}}},
		{"invalid UTF-8", "data: a\xffb\xe2\x82\n\n", []ev{{"", "a\ufffdb\ufffd", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := readAll(t, strings.NewReader(tc.in), 1<<20)
			if err != io.EOF {
				t.Fatalf("error %v, want io.EOF", err)
			}
			var got []ev
			for _, e := range evs {
				got = append(got, ev{e.Type, string(e.Data), e.LastEventID})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReaderCRThenLFAcrossReads: a CR at the end of one read and an LF at the start of the
// next are one line end, not a line end and a blank line; and a CR-ended event is dispatched
// without waiting for the next byte.
func TestReaderCRThenLFAcrossReads(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, 1<<20)
	go func() {
		_, _ = pw.Write([]byte("data: a\r"))
		_, _ = pw.Write([]byte("\ndata: b\r"))
	}()
	got := make(chan Event, 1)
	go func() {
		ev, _ := r.Next()
		got <- ev
	}()
	select {
	case ev := <-got:
		t.Fatalf("dispatched %q before the blank line", ev.Data)
	case <-time.After(50 * time.Millisecond):
	}
	go func() { _, _ = pw.Write([]byte("\r")) }()
	select {
	case ev := <-got:
		if string(ev.Data) != "a\nb" {
			t.Fatalf("data %q, want %q", ev.Data, "a\nb")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a CR-ended event was not dispatched")
	}
}

func TestReaderBounds(t *testing.T) {
	big := "data: " + strings.Repeat("x", 100) + "\n\n"
	if _, err := readAll(t, strings.NewReader(big), 50); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an event above the bound: %v", err)
	}
	many := strings.Repeat("data: 0123456789\n", 10) + "\n"
	if _, err := readAll(t, strings.NewReader(many), 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("many lines above the bound: %v", err)
	}
	// The bound is per event.
	if evs, err := readAll(t, strings.NewReader(strings.Repeat("data: 0123456789\n\n", 100)), 20); err != io.EOF || len(evs) != 100 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
}

func TestReaderContext(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := NewReader(pr, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.NextContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestReaderRaw: the raw bytes of the events and of the end give back the stream.
func TestReaderRaw(t *testing.T) {
	in := "\ufeff: c\r\nid: 1\rdata: a\r\n\r\n\n\nevent: x\ndata: b\n\ndata: tail"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), 1<<20)
	r.KeepRaw()
	var all []byte
	for {
		_, err := r.Next()
		all = append(all, r.Raw()...)
		if err != nil {
			break
		}
	}
	if string(all) != in {
		t.Fatalf("raw %q, want %q", all, in)
	}
}

// FuzzReader: whatever the stream, the reader never panics and never exceeds its bound; it
// reads the same events however the stream is cut into reads; its raw bytes give back the
// stream; and it agrees with a transcription of the standard's algorithm over the whole
// stream at once.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "data: a\r\rdata: b\r\n\r\n", "\ufeffdata\n\n", ": c\nid: 1\nretry: 10\nevent: e\ndata: x\n\n",
		"data: a\r", "data: \xff\xe2\x82\n\n", "id: a\x00b\ndata:\n\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		const max = 1 << 10
		whole, errWhole := readAll(t, bytes.NewReader(stream), max)
		for _, e := range whole {
			if len(e.Data) > max*3 { // U+FFFD is 3 bytes for one
				t.Fatalf("event of %d bytes", len(e.Data))
			}
		}
		chunked, errChunked := readAll(t, &chunkReader{data: stream, n: int(cut%7) + 1}, max)
		if !reflect.DeepEqual(whole, chunked) || (errWhole == io.EOF) != (errChunked == io.EOF) {
			t.Fatalf("whole: %+v %v\nchunked: %+v %v", whole, errWhole, chunked, errChunked)
		}
		r := NewReader(bytes.NewReader(stream), max)
		r.KeepRaw()
		var raw []byte
		for {
			_, err := r.Next()
			raw = append(raw, r.Raw()...)
			if err != nil {
				break
			}
		}
		if errWhole == io.EOF && !bytes.Equal(raw, stream) {
			t.Fatalf("raw %q, stream %q", raw, stream)
		}
		if errWhole == io.EOF {
			if want := referenceEvents(stream); !sameEvents(whole, want) {
				t.Fatalf("reader %+v\nstandard %+v", whole, want)
			}
		}
	})
}

// chunkReader hands out data n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func sameEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) || a[i].LastEventID != b[i].LastEventID {
			return false
		}
	}
	return true
}

// referenceEvents is the standard's algorithm transcribed as written, over the whole stream
// decoded at once (Go's own decoding with the standard's replacement), without bounds.
func referenceEvents(stream []byte) []Event {
	s := string(decodeUTF8(stream))
	s = strings.TrimPrefix(s, "\ufeff")
	var evs []Event
	var data strings.Builder
	var typ, lastID string
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return evs // the rest is not a complete line
		}
		line := s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		switch {
		case line == "":
			if data.Len() > 0 {
				d := strings.TrimSuffix(data.String(), "\n")
				evs = append(evs, Event{Type: typ, Data: []byte(d), LastEventID: lastID})
			}
			data.Reset()
			typ = ""
			continue
		case line[0] == ':':
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.Contains(value, "\x00") {
				lastID = value
			}
		}
	}
}

// TestAppendEvent: an appended event reads back as itself, multi-line data included, and a
// single-line event is written as the proxy always wrote it.
func TestAppendEvent(t *testing.T) {
	if got := string(AppendEvent(nil, Event{Type: "message", Data: []byte(`{"a":1}`)})); got != "event: message\ndata: {\"a\":1}\n\n" {
		t.Fatalf("single line: %q", got)
	}
	events := []Event{
		{Data: []byte("one")},
		{Type: "message", ID: "7", HasID: true, Retry: 1500, HasRetry: true, Data: []byte("{\n  \"a\": 1\n}")},
		{Data: []byte("")},
		{Data: []byte("\n\nend\n")},
		{Type: "x", Data: []byte("cr\rcrlf\r\nlf\nlast")},
	}
	var stream []byte
	for _, ev := range events {
		stream = AppendEvent(stream, ev)
	}
	r := NewReader(bytes.NewReader(stream), 1<<10)
	for i, want := range events {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(want.Data))
		if got.Type != want.Type || got.ID != want.ID || got.HasID != want.HasID || got.Retry != want.Retry ||
			got.HasRetry != want.HasRetry || string(got.Data) != wantData {
			t.Errorf("event %d: read %+v, wrote %+v", i, got, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the events: %v", err)
	}
}
