// Package controlplane builds a real control plane for tests: a SQLite store in a temporary
// directory, an embedded SpiceDB holding trustgate's schema, and the relationship writer
// between them. Everything is closed when the test ends.
package controlplane

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// ControlPlane is a store, the SpiceDB its relationships go to, and the writer that applies them.
type ControlPlane struct {
	Store   store.Store
	Backend *authzserver.SpiceDB
	Writer  *authzserver.Writer
}

// New starts a control plane for t.
func New(t testing.TB) *ControlPlane {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatal(err)
	}
	return &ControlPlane{Store: st, Backend: b, Writer: authzserver.NewWriter(st, b, nil)}
}

// Sync applies the store's pending relationship changes to SpiceDB.
func (c *ControlPlane) Sync(t testing.TB) {
	t.Helper()
	if _, err := c.Writer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}
