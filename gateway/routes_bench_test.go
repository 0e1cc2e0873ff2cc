package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/store"
)

// BenchmarkRouting serves requests whose handlers do little, so that the route table and the
// host check are most of the time: the JWKS at the bare URL (no host read) and an MCP request
// without a token at /h/acme and at acme's subdomain (a host read, then 401).
func BenchmarkRouting(b *testing.B) {
	ctx := context.Background()
	g, err := New(ctx, Config{
		Listen: "127.0.0.1:0", PublicURL: "http://gw.example.test", SubdomainRouting: true,
		DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.close)
	if _, err := g.store.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}); err != nil {
		b.Fatal(err)
	}
	routes := g.routes()
	for _, c := range []struct{ name, method, url string }{
		{"jwks", "GET", "http://gw.example.test/.well-known/jwks.json"},
		{"mcp-path", "POST", "http://gw.example.test/h/acme/mcp"},
		{"mcp-subdomain", "POST", "http://acme.gw.example.test/mcp"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				routes.ServeHTTP(w, httptest.NewRequest(c.method, c.url, nil))
				if w.Code >= 500 {
					b.Fatalf("%s %s: %d", c.method, c.url, w.Code)
				}
			}
		})
	}
}
