package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

func testAuditAppendListScan(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var batch []audit.Entry
		for i := range 10 {
			d := audit.Allowed
			if i%3 == 0 {
				d = audit.Denied
			}
			// Every other entry has a client address (format version 2), the others none (1).
			addr := ""
			if i%2 == 0 {
				addr = fmt.Sprintf("198.51.100.%d", i)
			}
			// Entries 3 and 6 carry anomaly flags (format version 3).
			var flags []string
			switch i {
			case 2:
				flags = []string{"new_tool"}
			case 5:
				flags = []string{"new_tool", "denial_streak"}
			}
			batch = append(batch, audit.Entry{Host: "acme", Time: t0.Add(time.Duration(i) * time.Minute), AgentID: fmt.Sprintf("ag%d", i%2),
				Server: "git", Tool: "push", Method: "tools/call", Decision: d, Reason: "r", ClientAddr: addr, Flags: flags})
			batch = append(batch, audit.Entry{Host: "other", Time: t0, Decision: audit.Admin, Actor: "cli", Action: "grant.set"})
		}
		noErr(t, "append", s.AppendAudit(ctx, batch[:7]))
		noErr(t, "append", s.AppendAudit(ctx, batch[7:]))

		all := must[[]audit.Entry](t, "list")(s.ListAudit(ctx, audit.Filter{Host: "acme"}, 0, 0))
		if len(all) != 10 {
			t.Fatalf("acme has %d entries, want 10", len(all))
		}
		for i, e := range all {
			if e.Seq != int64(i+1) || e.Hash == "" || (i > 0 && e.PrevHash != all[i-1].Hash) || (i == 0 && e.PrevHash != "") {
				t.Fatalf("entry %d: seq %d prev %q hash %q: not chained", i, e.Seq, e.PrevHash, e.Hash)
			}
		}
		if got := all[4]; got.AgentID != "ag0" || !got.Time.Equal(t0.Add(4*time.Minute)) || got.Tool != "push" ||
			got.ClientAddr != "198.51.100.4" || got.Version != 2 {
			t.Fatalf("entry 5 reads back as %+v", got)
		}
		if got := all[6]; got.ClientAddr != "198.51.100.6" || got.Version != 2 {
			t.Fatalf("entry 7 reads back as %+v", got)
		}
		if got := all[7]; got.ClientAddr != "" || got.Version != 1 {
			t.Fatalf("entry 8 (no client address) reads back as %+v", got)
		}
		if got := all[5]; fmt.Sprint(got.Flags) != "[new_tool denial_streak]" || got.Version != 3 {
			t.Fatalf("entry 6 (flags) reads back as %+v", got)
		}
		for flag, want := range map[string]string{"new_tool": "[3 6]", "denial_streak": "[6]", "rate_spike": "[]"} {
			got := must[[]audit.Entry](t, "list flag")(s.ListAudit(ctx, audit.Filter{Host: "acme", Flag: flag}, 0, 0))
			if fmt.Sprint(seqs(got)) != want {
				t.Fatalf("entries with flag %s: %v, want %s", flag, seqs(got), want)
			}
		}
		// _ is not a wildcard; a malformed flag is refused.
		if got := must[[]audit.Entry](t, "list flag")(s.ListAudit(ctx, audit.Filter{Host: "acme", Flag: "new_too_"}, 0, 0)); len(got) != 0 {
			t.Fatalf("flag new_too_ matched %v", seqs(got))
		}
		if _, err := s.ListAudit(ctx, audit.Filter{Host: "acme", Flag: "new%"}, 0, 0); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("flag new%%: %v, want ErrInvalid", err)
		}
		// Filters, cursor, order.
		denied := must[[]audit.Entry](t, "list denied")(s.ListAudit(ctx, audit.Filter{Host: "acme", Decision: audit.Denied}, 0, 0))
		if len(denied) != 4 {
			t.Fatalf("%d denied entries, want 4", len(denied))
		}
		page := must[[]audit.Entry](t, "list page")(s.ListAudit(ctx, audit.Filter{Host: "acme", AgentID: "ag1"}, 4, 2))
		if len(page) != 2 || page[0].Seq != 6 || page[1].Seq != 8 {
			t.Fatalf("agent ag1 after 4, limit 2: %v", seqs(page))
		}
		desc := must[[]audit.Entry](t, "list desc")(s.ListAudit(ctx, audit.Filter{Host: "acme", Descending: true}, 9, 3))
		if fmt.Sprint(seqs(desc)) != "[8 7 6]" {
			t.Fatalf("descending below 9: %v", seqs(desc))
		}
		timed := must[[]audit.Entry](t, "list time")(s.ListAudit(ctx, audit.Filter{Host: "acme", Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, 0, 0))
		if fmt.Sprint(seqs(timed)) != "[3 4 5]" {
			t.Fatalf("since +2m until +5m: %v", seqs(timed))
		}

		var scanned []int64
		noErr(t, "scan", s.ScanAudit(ctx, "acme", 4, func(e audit.Entry) error { scanned = append(scanned, e.Seq); return nil }))
		if fmt.Sprint(scanned) != "[4 5 6 7 8 9 10]" {
			t.Fatalf("scan from 4: %v", scanned)
		}
		heads := must[[]audit.Head](t, "heads")(s.AuditHeads(ctx))
		if len(heads) != 2 || heads[0].Host != "acme" || heads[0].Seq != 10 || heads[0].Hash != all[9].Hash || heads[1].Seq != 10 {
			t.Fatalf("heads: %+v", heads)
		}
		for _, h := range heads {
			sum, err := audit.Verify(ctx, s, h.Host, &h)
			if err != nil || sum.Entries != 10 {
				t.Fatalf("verify %s: %+v, %v", h.Host, sum, err)
			}
		}
		wantErr(t, "append an invalid decision", s.AppendAudit(ctx, []audit.Entry{{Host: "acme", Decision: "maybe"}}), store.ErrInvalid)
	})
}

// testAuditKeptWhenHostDeleted: the audit log outlives its tenant.
func testAuditKeptWhenHostDeleted(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}))
		noErr(t, "append", s.AppendAudit(ctx, []audit.Entry{{Host: "acme", Decision: audit.Admin, Action: "host.create"}}))
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		got := must[[]audit.Entry](t, "list")(s.ListAudit(ctx, audit.Filter{Host: "acme"}, 0, 0))
		if len(got) != 1 {
			t.Fatalf("after deleting the host, %d entries remain, want 1", len(got))
		}
	})
}

func seqs(es []audit.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}
