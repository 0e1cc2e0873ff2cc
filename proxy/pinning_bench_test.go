package proxy

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// benchList is a tools/list answer of 200 tools (a description, a two-property input schema
// and annotations each), their approved store records, and the 100 the agent may see.
func benchList(b *testing.B) (answer []byte, tools map[string]store.Tool, visible map[string]bool) {
	b.Helper()
	entries := make([]json.RawMessage, 0, 200)
	tools, visible = map[string]store.Tool{}, map[string]bool{}
	for i := range 200 {
		name := fmt.Sprintf("tool_%03d", i)
		raw := fmt.Sprintf(`{"name":%q,"description":"Tool %d of the benchmark server: looks things up and reports what it found, with paging.",`+
			`"inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"what to look for"},"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["query"]},`+
			`"annotations":{"readOnlyHint":true,"openWorldHint":false}}`, name, i)
		entries = append(entries, json.RawMessage(raw))
		ft, err := discovery.ParseTool(json.RawMessage(raw))
		if err != nil {
			b.Fatal(err)
		}
		t := catalog.StoredTool("h", "s", ft, true)
		t.Level = schema.Low
		tools[name] = t
		if i%2 == 0 {
			visible[name] = true
		}
	}
	list, err := json.Marshal(entries)
	if err != nil {
		b.Fatal(err)
	}
	return []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":` + string(list) + `}}`), tools, visible
}

func benchFilter(b *testing.B, answer []byte, f *toolsFilter) {
	b.Helper()
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := f.filter(answer)
		if err != nil || out == nil {
			b.Fatalf("filter: %v", err)
		}
	}
}

// BenchmarkToolsListUnpinned is the tools/list filter of a 200-tool answer with the agent's
// visibility only (what the filter did before definitions were compared): the baseline of
// BenchmarkToolsListPinned.
func BenchmarkToolsListUnpinned(b *testing.B) {
	answer, _, visible := benchList(b)
	benchFilter(b, answer, &toolsFilter{keep: func(name string, _ json.RawMessage) bool { return visible[name] }})
}

// BenchmarkToolsListPinned is the same filter comparing every entry's definition with the
// approved one (pinning.go), with the memo of entry hashes warm, as for an upstream that lists
// the same definitions again.
func BenchmarkToolsListPinned(b *testing.B) {
	answer, tools, visible := benchList(b)
	c := &pinCheck{defs: newDefMemo(), tools: tools, visible: func(name string) bool { return visible[name] }}
	benchFilter(b, answer, &toolsFilter{keep: c.keep})
	if len(c.pending) != 0 {
		b.Fatalf("%d unchanged tools pending review", len(c.pending))
	}
}

// BenchmarkToolsListPinnedCold is BenchmarkToolsListPinned with an empty memo each time: every
// entry hashed (an upstream whose entries change bytes on every list).
func BenchmarkToolsListPinnedCold(b *testing.B) {
	answer, tools, visible := benchList(b)
	f := &toolsFilter{}
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		c := &pinCheck{defs: newDefMemo(), tools: tools, visible: func(name string) bool { return visible[name] }}
		f.keep = c.keep
		if out, err := f.filter(answer); err != nil || out == nil {
			b.Fatalf("filter: %v", err)
		}
	}
}
