package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/store"
)

// BenchmarkAppendAudit is the audit log's write (one AppendAudit: one transaction) with one
// entry, as with one client, and with a batch of 32, as group commit writes them under load;
// every entry of a host, as a forwarded call's entries are. allocs/op is what the store and
// its driver allocate per transaction.
func BenchmarkAppendAudit(b *testing.B) {
	cfgs := []struct {
		name string
		cfg  func(b *testing.B) store.Config
	}{
		{"sqlite", func(b *testing.B) store.Config { return store.Config{DataDir: b.TempDir()} }},
		{"postgres", func(b *testing.B) store.Config {
			return store.Config{URL: services.Postgres(b), ConnectTimeout: 5 * time.Second}
		}},
	}
	for _, c := range cfgs {
		for _, n := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/entries=%d", c.name, n), func(b *testing.B) {
				cfg := c.cfg(b)
				cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
				s, err := store.Open(context.Background(), cfg)
				if err != nil {
					b.Fatalf("open store: %v", err)
				}
				b.Cleanup(func() { _ = s.Close() })
				entries := make([]audit.Entry, n)
				for i := range entries {
					entries[i] = audit.Entry{Host: "acme", Decision: audit.Allowed, Server: "docs", Tool: "search",
						AgentID: "agent", UserID: "user", RequestID: "req", Arguments: `{"q":"x"}`, Time: time.Now()}
				}
				ctx := context.Background()
				if err := s.AppendAudit(ctx, entries); err != nil { // the head exists, statements are prepared
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := s.AppendAudit(ctx, entries); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
