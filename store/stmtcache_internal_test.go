package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Statements first seen inside a transaction are prepared in the background. Closing the store
// must wait for those preparations: one that opened a connection after Close returned would
// recreate the database's -wal and -shm files while the caller removes the directory (seen as
// "directory not empty" from a test's TempDir cleanup). And the pool must close its connections
// one after another: closed at the same moment, each may see another still open, and none removes
// the -wal and -shm files.
func TestCloseWaitsForBackgroundPreparations(t *testing.T) {
	ctx := context.Background()
	for round := range 10 {
		dir := filepath.Join(t.TempDir(), "data")
		st, err := Open(ctx, Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		err = st.(*sqlStore).db.writeTx(ctx, func(q querier) error {
			for i := range 40 {
				if _, err := q.exec(ctx, fmt.Sprintf("UPDATE control_generation SET n = n WHERE %d = %d", i, round)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		db := st.(*sqlStore).db.(generationBackend).backend.(*sqliteBackend).db
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if n := db.Stats().OpenConnections; n != 0 {
			t.Fatalf("round %d: %d connections are open after Close", round, n)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), "-wal") || strings.HasSuffix(e.Name(), "-shm") {
				t.Fatalf("round %d: %s is left after Close: a connection outlived the store", round, e.Name())
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("round %d: remove the data directory after Close: %v", round, err)
		}
	}
}
