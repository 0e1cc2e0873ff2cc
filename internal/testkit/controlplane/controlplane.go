// Package controlplane builds a real control plane for tests: a SQLite store in a temporary
// directory, an embedded SpiceDB holding trustgate's schema, and the relationship writer
// between them. Everything is closed when the test ends.
package controlplane

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// ControlPlane is a store, the SpiceDB its relationships go to, and the writer that applies them.
type ControlPlane struct {
	Store   store.Store
	Backend *authzserver.SpiceDB
	Writer  *authzserver.Writer
	// DataDir is the store's data directory (its SQLite file is trustgate.db there).
	DataDir string
}

// New starts a control plane for t.
func New(t testing.TB) *ControlPlane {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Config{DataDir: dir})
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
	return &ControlPlane{Store: st, Backend: b, Writer: authzserver.NewWriter(st, b, nil), DataDir: dir}
}

// Sync applies the store's pending relationship changes to SpiceDB.
func (c *ControlPlane) Sync(t testing.TB) {
	t.Helper()
	if _, err := c.Writer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Refused is a relationship of host that SpiceDB's schema does not accept (no such relation):
// SpiceDB refuses for good every write that carries it, as it would a change written for
// another schema.
func Refused(host string) schema.Relationship {
	return schema.Relationship{Resource: schema.Server(host, "tracker"), Relation: "no_such_relation",
		Subject: schema.SubjectRef{Object: schema.Agent(host, "a_refused")}}
}

// SetAside puts host's Refused relationship into the store's outbox, as a change the store
// never writes itself, and syncs: the writer sets it aside, and host fails closed until it is
// retried or discarded.
func (c *ControlPlane) SetAside(t testing.TB, host string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(c.DataDir, "trustgate.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES ('touch', ?, ?, ?)",
		Refused(host).String(), time.Now().UnixMilli(), host); err != nil {
		t.Fatal(err)
	}
	c.Sync(t)
}
