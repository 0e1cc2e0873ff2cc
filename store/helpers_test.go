package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// engine is one database engine the suite runs against.
type engine struct {
	name string
	// config returns the config of a fresh, empty database; every call is a new database.
	config func(t *testing.T) store.Config
}

func engines() []engine {
	return []engine{
		{name: "sqlite", config: func(t *testing.T) store.Config {
			return store.Config{DataDir: t.TempDir()}
		}},
		{name: "postgres", config: func(t *testing.T) store.Config {
			return store.Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second}
		}},
	}
}

// forEachEngine runs fn against a fresh store of every engine available.
func forEachEngine(t *testing.T, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e.config(t))
			if got := s.Engine(); got != e.name {
				t.Fatalf("Engine() = %q, want %q", got, e.name)
			}
			fn(t, s)
		})
	}
}

func openStore(t *testing.T, cfg store.Config) store.Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// relationshipSet reads Relationships into a set of zed strings.
func relationshipSet(t *testing.T, s store.Store) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	err := s.Relationships(context.Background(), func(r schema.Relationship) error {
		k := r.String()
		if set[k] {
			t.Errorf("Relationships yields %s twice", k)
		}
		set[k] = true
		return nil
	})
	noErr(t, "Relationships", err)
	return set
}

// drainAll drains the whole outbox and returns its changes in order.
func drainAll(t *testing.T, s store.Store) []store.RelationshipChange {
	t.Helper()
	var got []store.RelationshipChange
	_, err := s.DrainRelationshipChanges(context.Background(), 0, func(_ context.Context, cs []store.RelationshipChange) error {
		got = append(got[:0], cs...)
		return nil
	})
	noErr(t, "drain", err)
	return got
}

// changeStrings renders changes as "op rel" lines.
func changeStrings(cs []store.RelationshipChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.Op) + " " + c.Relationship.String()
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// logBuffer is a slog destination safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
