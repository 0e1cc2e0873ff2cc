package authzserver_test

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// BenchmarkFailClosedOverCache is a cached check with and without NewFailClosed around the
// decision cache, as the gateway composes them, for a host with nothing pending while
// another host has a change pending (so the Lag's map is not empty).
func BenchmarkFailClosedOverCache(b *testing.B) {
	ctx := context.Background()
	st, db := sqliteStore(b)
	spicedb, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = spicedb.Close() })
	if err := spicedb.WriteSchema(ctx, schema.Text); err != nil {
		b.Fatal(err)
	}
	cache, err := authzserver.NewDecisionCache(ctx, spicedb, 0)
	if err != nil {
		b.Fatal(err)
	}
	w := authzserver.NewWriter(st, spicedb, nil)
	acme := seedHost(b, st, "acme")
	seedHost(b, st, "globex")
	if _, err := w.Reconcile(ctx); err != nil {
		b.Fatal(err)
	}
	putPoison(b, db, "globex")
	if _, err := w.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	req := callOfTool("acme", acme, "tool_low")
	for name, backend := range map[string]authzserver.Backend{"cache": cache, "failclosed+cache": authzserver.NewFailClosed(cache, w.Lag())} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := backend.Check(ctx, req); err != nil || !ok {
					b.Fatalf("check: %v %v", ok, err)
				}
			}
		})
	}
}
