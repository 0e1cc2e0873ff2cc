package store_test

import (
	"testing"

	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/store/storetest"
)

// TestSuite runs the conformance suite on every engine: SQLite always, PostgreSQL when
// TRUSTGATE_TEST_POSTGRES is set (see engines).
func TestSuite(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				t.Helper()
				s := openStore(t, e.config(t))
				if got := s.Engine(); got != e.name {
					t.Fatalf("Engine() = %q, want %q", got, e.name)
				}
				return s
			})
		})
	}
}

// TestSuiteCockroachDB would run the suite on CockroachDB; the tests have no CockroachDB server
// to reach (only the engine's detection and its URL forms are tested, in open_test.go and
// internal_test.go).
func TestSuiteCockroachDB(t *testing.T) {
	t.Skip("CockroachDB suite skipped: the tests have no CockroachDB server to run it on")
}
