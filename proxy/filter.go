package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxFilterBytes bounds the one response (JSON) or the one SSE event a tools/list filter buffers.
const maxFilterBytes = 16 << 20

// errTooLarge: a tools/list response above maxFilterBytes; it is not passed on unfiltered.
var errTooLarge = errors.New("tools/list response too large to filter")

// filterToolsResponse rewrites result.tools of the JSON-RPC response msg when its id is id,
// keeping only the tools keep accepts. changed is false (and out nil) when msg is another
// message or carries no result.tools; other fields of the message and of each tool are kept.
func filterToolsResponse(msg []byte, id json.RawMessage, keep func(string) bool) (out []byte, changed bool, err error) {
	var env map[string]json.RawMessage
	if json.Unmarshal(msg, &env) != nil || env["method"] != nil || !sameID(env["id"], id) || env["result"] == nil {
		return nil, false, nil
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(env["result"], &result); err != nil {
		return nil, false, fmt.Errorf("tools/list result is not an object: %w", err)
	}
	var tools []json.RawMessage
	if raw, ok := result["tools"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &tools); err != nil {
			return nil, false, fmt.Errorf("tools/list result.tools is not an array: %w", err)
		}
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for _, t := range tools {
		var named struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &named) == nil && named.Name != "" && keep(named.Name) {
			kept = append(kept, t)
		}
	}
	if result["tools"], err = json.Marshal(kept); err != nil {
		return nil, false, err
	}
	if env["result"], err = json.Marshal(result); err != nil {
		return nil, false, err
	}
	out, err = json.Marshal(env)
	return out, err == nil, err
}

// sseFilter passes an SSE stream through event by event, rewriting the data of the one event
// that carries the tools/list response with the awaited id. Events stay in order; every other
// event is passed on byte for byte, and after the response the rest of the stream is copied
// without parsing. Only one event at a time is buffered (at most maxFilterBytes).
type sseFilter struct {
	body io.ReadCloser
	r    *bufio.Reader
	id   json.RawMessage
	keep func(string) bool

	out  bytes.Buffer // filtered bytes not yet read
	done bool         // the response was seen: copy the rest
	err  error        // sticky error of the upstream stream
}

func newSSEFilter(body io.ReadCloser, id json.RawMessage, keep func(string) bool) *sseFilter {
	return &sseFilter{body: body, r: bufio.NewReaderSize(body, 64<<10), id: id, keep: keep}
}

func (f *sseFilter) Close() error { return f.body.Close() }

func (f *sseFilter) Read(p []byte) (int, error) {
	for f.out.Len() == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.done {
			return f.r.Read(p)
		}
		f.err = f.nextEvent()
	}
	return f.out.Read(p)
}

// nextEvent reads one event (up to and including its blank line) into out, rewritten when it
// is the awaited response.
func (f *sseFilter) nextEvent() error {
	var raw []byte
	var lines [][]byte
	for {
		line, err := f.readLine(maxFilterBytes - len(raw))
		raw = append(raw, line...)
		content := bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && len(content) > 0 {
			lines = append(lines, content)
		}
		if err != nil {
			f.out.Write(raw) // a truncated last event: pass on as it came
			return err
		}
		if len(content) == 0 { // blank line: end of the event
			break
		}
	}
	var data [][]byte
	first := -1
	for i, l := range lines {
		if v, ok := sseField(l, "data"); ok {
			if first < 0 {
				first = i
			}
			data = append(data, v)
		}
	}
	if first < 0 {
		f.out.Write(raw)
		return nil
	}
	rewritten, changed, err := filterToolsResponse(bytes.Join(data, []byte("\n")), f.id, f.keep)
	if err != nil {
		return err
	}
	if !changed {
		f.out.Write(raw)
		return nil
	}
	for i, l := range lines {
		if _, ok := sseField(l, "data"); ok {
			if i == first {
				f.out.WriteString("data: ")
				f.out.Write(rewritten)
				f.out.WriteByte('\n')
			}
			continue
		}
		f.out.Write(l)
		f.out.WriteByte('\n')
	}
	f.out.WriteByte('\n')
	f.done = true
	return nil
}

// readLine reads through the next '\n' (or to EOF), failing beyond limit bytes.
func (f *sseFilter) readLine(limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := f.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, errTooLarge
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// sseField returns the value of a "name: value" line (one leading space removed).
func sseField(line []byte, name string) ([]byte, bool) {
	if string(line) == name {
		return nil, true
	}
	v, ok := bytes.CutPrefix(line, []byte(name+":"))
	if !ok {
		return nil, false
	}
	return bytes.TrimPrefix(v, []byte(" ")), true
}
