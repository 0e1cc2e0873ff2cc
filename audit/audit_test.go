package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
)

// memChain is a host's chain in memory, as a store would return it.
type memChain []audit.Entry

func (m memChain) ScanAudit(_ context.Context, _ string, from int64, fn func(audit.Entry) error) error {
	for _, e := range m {
		if e.Seq >= from {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func buildChain(t *testing.T, n int) memChain {
	t.Helper()
	var out memChain
	prev := ""
	for i := range n {
		e, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Allowed, Tool: "push", RequestID: string(rune('a' + i)),
			Time: time.Date(2026, 1, 1, 0, 0, i, 123456789, time.UTC)}, int64(i+1), prev)
		if err != nil {
			t.Fatal(err)
		}
		out, prev = append(out, e), e.Hash
	}
	return out
}

func head(c memChain) *audit.Head {
	last := c[len(c)-1]
	return &audit.Head{Host: "acme", Seq: last.Seq, Hash: last.Hash}
}

func TestVerifyIntactChain(t *testing.T) {
	c := buildChain(t, 5)
	sum, err := audit.Verify(context.Background(), c, "acme", head(c))
	if err != nil || sum.Entries != 5 || sum.LastSeq != 5 {
		t.Fatalf("Verify = %+v, %v; want 5 entries", sum, err)
	}
	if c[0].Time.Nanosecond() != 123000000 {
		t.Fatalf("time kept at %v: want millisecond precision", c[0].Time)
	}
}

func TestVerifyFindsFirstBrokenEntry(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(memChain) memChain
		wantSeq int64
		reason  string
	}{
		{"edited field", func(c memChain) memChain { c[2].Tool = "delete"; return c }, 3, "edited"},
		{"edited decision", func(c memChain) memChain { c[1].Decision = audit.Denied; return c }, 2, "edited"},
		{"edited time", func(c memChain) memChain { c[3].Time = c[3].Time.Add(time.Second); return c }, 4, "edited"},
		{"edited and rehashed", func(c memChain) memChain {
			c[2].Tool = "delete"
			c[2].Hash, _ = audit.ComputeHash(c[2].PrevHash, c[2])
			return c
		}, 4, "prev_hash"},
		{"deleted row", func(c memChain) memChain { return append(c[:2:2], c[3:]...) }, 3, "missing"},
		{"deleted first row", func(c memChain) memChain { return c[1:] }, 1, "missing"},
		{"deleted and renumbered", func(c memChain) memChain {
			c = append(c[:2:2], c[3:]...)
			for i := range c {
				c[i].Seq = int64(i + 1)
			}
			return c
		}, 3, "prev_hash"},
		{"deleted last row", func(c memChain) memChain { return c[:4] }, 5, "last rows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := buildChain(t, 5)
			h := head(c)
			c = tc.tamper(append(memChain(nil), c...))
			_, err := audit.Verify(context.Background(), c, "acme", h)
			var be *audit.BrokenError
			if !errors.As(err, &be) || !errors.Is(err, audit.ErrBroken) {
				t.Fatalf("Verify = %v; want a BrokenError", err)
			}
			if be.Seq != tc.wantSeq || !strings.Contains(be.Error(), tc.reason) {
				t.Fatalf("broken at %d (%s); want %d (%s)", be.Seq, be.Error(), tc.wantSeq, tc.reason)
			}
		})
	}
}

func TestCanonicalCoversEveryField(t *testing.T) {
	base := audit.Normalize(audit.Entry{Host: "acme", Seq: 1, Decision: audit.Admin})
	h0, err := audit.ComputeHash("", base)
	if err != nil {
		t.Fatal(err)
	}
	fields := []func(*audit.Entry){
		func(e *audit.Entry) { e.UserID = "x" }, func(e *audit.Entry) { e.UserEmail = "x" }, func(e *audit.Entry) { e.AgentID = "x" },
		func(e *audit.Entry) { e.ClientID = "x" }, func(e *audit.Entry) { e.ClientName = "x" }, func(e *audit.Entry) { e.Server = "x" },
		func(e *audit.Entry) { e.Tool = "x" }, func(e *audit.Entry) { e.Method = "x" }, func(e *audit.Entry) { e.Reason = "x" },
		func(e *audit.Entry) { e.RequiredLevel = "x" }, func(e *audit.Entry) { e.AgentLevel = "x" }, func(e *audit.Entry) { e.Ceiling = "x" },
		func(e *audit.Entry) { e.UpstreamStatus = 200 }, func(e *audit.Entry) { e.LatencyMS = 1 }, func(e *audit.Entry) { e.RequestID = "x" },
		func(e *audit.Entry) { e.TraceID = "x" }, func(e *audit.Entry) { e.Arguments = "{}" }, func(e *audit.Entry) { e.Actor = "x" },
		func(e *audit.Entry) { e.Action = "x" }, func(e *audit.Entry) { e.Object = "x" }, func(e *audit.Entry) { e.OldValue = "x" },
		func(e *audit.Entry) { e.NewValue = "x" }, func(e *audit.Entry) { e.Seq = 2 }, func(e *audit.Entry) { e.Host = "other" },
		func(e *audit.Entry) { e.Decision = audit.Denied },
		func(e *audit.Entry) { e.ClientAddr, e.Version = "198.51.100.9", 2 },
		func(e *audit.Entry) { e.Flags, e.Version = []string{"new_tool"}, 3 },
	}
	for i, f := range fields {
		e := base
		f(&e)
		if h, _ := audit.ComputeHash("", e); h == h0 {
			t.Errorf("field change %d does not change the hash", i)
		}
	}
}

func TestNormalizeBoundsFields(t *testing.T) {
	e := audit.Normalize(audit.Entry{Host: "acme", Reason: strings.Repeat("é", 5000), Tool: "bad\xffutf8", Arguments: strings.Repeat("x", audit.MaxArguments+1)})
	if len(e.Reason) > 2048 || !strings.HasPrefix(e.Reason, "é") || strings.ContainsRune(e.Reason[len(e.Reason)-2:], 0xFFFD) {
		t.Fatalf("reason of %d bytes not clipped at a rune boundary", len(e.Reason))
	}
	if e.Tool != "bad\uFFFDutf8" {
		t.Fatalf("tool %q: invalid UTF-8 kept", e.Tool)
	}
	if len(e.Arguments) > 200 || !strings.Contains(e.Arguments, "not stored") {
		t.Fatalf("oversized arguments kept: %d bytes", len(e.Arguments))
	}
}

func TestRedactArguments(t *testing.T) {
	in := `{"query":"weather in Paris","password":"hunter2","nested":{"API_Key":"abc","Authorization":"Bearer xyz","list":["ok","Bearer abcdef123"]},` +
		`"token":"","note":"use sk-ant-api03-abcdefghijklmnopqrstuv please","jwt":"eyJhbGciOi.eyJzdWIiOiJ4In0.sig","n":12345678901234567890,` +
		`"url":"https://user:pw@example.com/x","author":"Jane","max":3}`
	got := audit.RedactArguments([]byte(in), 0)
	for _, secret := range []string{"hunter2", `"abc"`, "Bearer", "sk-ant", "eyJhbGci", "user:pw"} {
		if strings.Contains(got, secret) {
			t.Errorf("redacted arguments still hold %q: %s", secret, got)
		}
	}
	for _, kept := range []string{`"query":"weather in Paris"`, `"token":""`, `"author":"Jane"`, `"max":3`, `"n":12345678901234567890`, `"ok"`} {
		if !strings.Contains(got, kept) {
			t.Errorf("redacted arguments lost %s: %s", kept, got)
		}
	}
	if got := audit.RedactArguments([]byte(`{"a":"`+strings.Repeat("x", 100)+`"}`), 50); !strings.Contains(got, "not stored") {
		t.Errorf("arguments above the bound: %s", got)
	}
	if got := audit.RedactArguments([]byte(`{"password":`), 0); strings.Contains(got, "password") {
		t.Errorf("malformed arguments stored as given: %s", got)
	}
}

// TestClientAddrFormatVersions: an entry with a client address is hashed with version 2, which
// covers the address (an edited address breaks the chain); one without keeps version 1, which
// the previous release verifies; a chain mixing both verifies; version 1 cannot carry an
// address (it would not be covered by the hash).
func TestClientAddrFormatVersions(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Admin, Time: at}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Denied, Time: at, ClientAddr: "198.51.100.9"}, 2, first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != 1 || second.Version != 2 {
		t.Fatalf("versions %d and %d; want 1 without a client address, 2 with one", first.Version, second.Version)
	}
	chain := memChain{first, second}
	if _, err := audit.Verify(context.Background(), chain, "acme", head(chain)); err != nil {
		t.Fatalf("a chain of version 1 and 2 entries: %v", err)
	}
	edited := second
	edited.ClientAddr = "203.0.113.1"
	if _, err := audit.Verify(context.Background(), memChain{first, edited}, "acme", head(chain)); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("an edited client address verified: %v", err)
	}
	downgraded := second
	downgraded.Version = 1
	if _, err := audit.Canonical(downgraded); err == nil {
		t.Fatal("a version 1 entry with a client address was encoded without it")
	}
}

// TestFlagsFormatVersion: an entry with anomaly flags is hashed with version 3, which covers
// them (edited, dropped or reordered flags break the chain) with the client address; an entry
// without flags keeps version 2 or 1; a chain of all three verifies; versions 1 and 2 cannot
// carry flags.
func TestFlagsFormatVersion(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Admin, Time: at}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Allowed, Time: at, ClientAddr: "198.51.100.9"}, 2, first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	third, err := audit.Chain(audit.Entry{Host: "acme", Decision: audit.Denied, Time: at, ClientAddr: "198.51.100.9",
		Flags: []string{"new_tool", "", "denial_streak"}}, 3, second.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != 1 || second.Version != 2 || third.Version != audit.FormatVersion || audit.FormatVersion != 3 {
		t.Fatalf("versions %d, %d, %d; want 1, 2 and 3 (flags)", first.Version, second.Version, third.Version)
	}
	if fmt.Sprint(third.Flags) != "[new_tool denial_streak]" {
		t.Fatalf("flags normalized to %q", third.Flags)
	}
	chain := memChain{first, second, third}
	if _, err := audit.Verify(context.Background(), chain, "acme", head(chain)); err != nil {
		t.Fatalf("a chain of version 1, 2 and 3 entries: %v", err)
	}
	for name, flags := range map[string][]string{"edited": {"new_tool", "rate_spike"}, "dropped": {"new_tool"},
		"reordered": {"denial_streak", "new_tool"}} {
		edited := third
		edited.Flags = flags
		if _, err := audit.Verify(context.Background(), memChain{first, second, edited}, "acme", head(chain)); !errors.Is(err, audit.ErrBroken) {
			t.Fatalf("%s flags verified: %v", name, err)
		}
	}
	for _, v := range []int{1, 2} {
		downgraded := third
		downgraded.Version, downgraded.ClientAddr = v, ""
		if _, err := audit.Canonical(downgraded); err == nil {
			t.Fatalf("a version %d entry with flags was encoded without them", v)
		}
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = "f"
	}
	if got := audit.Normalize(audit.Entry{Host: "acme", Decision: audit.Denied, Flags: append(many, "a,b")}); len(got.Flags) != audit.MaxFlags {
		t.Fatalf("%d flags kept, want %d", len(got.Flags), audit.MaxFlags)
	}
	if got := audit.Normalize(audit.Entry{Host: "acme", Decision: audit.Denied, Flags: []string{"a,b"}}); fmt.Sprint(got.Flags) != "[a_b]" {
		t.Fatalf("a comma in a flag kept: %q", got.Flags)
	}
}
