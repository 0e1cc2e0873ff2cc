package dlp_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// result64K is a tools/call result of about 64 KiB as tool results look: a text content that
// holds JSON (issue records), and structuredContent with the same records. With planted, two
// records carry an AWS access key id and a card number.
func result64K(tb testing.TB, planted bool) []byte {
	tb.Helper()
	type issue struct {
		ID       int    `json:"id"`
		Title    string `json:"title"`
		Body     string `json:"body"`
		Assignee string `json:"assignee"`
		Created  string `json:"created_at"`
		Votes    int    `json:"votes"`
	}
	var issues []issue
	for i := 0; ; i++ {
		body := fmt.Sprintf("Steps to reproduce: open the dashboard, select project %d, click export (build 2026.%d.%d). Expected the CSV; got HTTP 500 after 30s.", 1000+i, i%12, i%28)
		if planted && i == 40 {
			body += " The deploy log printed AKIAIOSFODNN7EXAMPLE."
		}
		if planted && i == 80 {
			body += " Customer paid with 4111 1111 1111 1111."
		}
		issues = append(issues, issue{ID: 4000 + i, Title: fmt.Sprintf("Export fails for project %d", 1000+i), Body: body,
			Assignee: "team-" + strings.Repeat("x", i%5), Created: "2026-12-06T17:27:17Z", Votes: i % 17})
		text, _ := json.Marshal(issues)
		if 2*len(text) >= 64<<10 {
			res, _ := json.Marshal(map[string]any{"content": []map[string]any{{"type": "text", "text": string(text)}},
				"structuredContent": map[string]any{"issues": issues}, "isError": false})
			return res
		}
	}
}

// BenchmarkRedactJSON64K is the filter's cost on a 64 KiB tools/call result with every
// built-in detector on: clean (the common case: nothing changes) and with planted values.
func BenchmarkRedactJSON64K(b *testing.B) {
	s := allScanner(b)
	for _, planted := range []bool{false, true} {
		data := result64K(b, planted)
		b.Run(fmt.Sprintf("planted=%v", planted), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				out, found, err := s.RedactJSON(data)
				if err != nil || (found != nil) != planted || planted && found.Total() != 4 {
					b.Fatalf("%v %v %d", found, err, len(out))
				}
			}
		})
	}
}
