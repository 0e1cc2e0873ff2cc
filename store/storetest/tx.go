package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// A failure inside a transaction leaves nothing behind: no server without its tools, no outbox
// entry, no new generation.
func testReadWriteTxRollsBackOnError(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		user := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"}))
		pendingBefore := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx))
		genBefore := must[int64](t, "generation")(s.ControlGeneration(ctx))

		boom := errors.New("the second tool cannot be saved")
		err := s.ReadWriteTx(ctx, func(tx store.Tx) error {
			if _, err := tx.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker", Name: "Tracker"}); err != nil {
				return err
			}
			if _, err := tx.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "list_items", Level: schema.Low, Enabled: true}); err != nil {
				return err
			}
			if _, err := tx.SetGrant(ctx, store.Grant{Host: "acme", Server: "tracker", UserID: user.ID, Ceiling: schema.Low}); err != nil {
				return err
			}
			// The transaction reads its own writes.
			if tools, err := tx.ListTools(ctx, "acme", "tracker"); err != nil || len(tools) != 1 {
				t.Errorf("ListTools inside the transaction = %v, %v; want the one tool written", tools, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("ReadWriteTx = %v, want fn's error", err)
		}
		_, err = s.GetServer(ctx, "acme", "tracker")
		wantErr(t, "server of a failed transaction", err, store.ErrNotFound)
		if n := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx)); n != pendingBefore {
			t.Errorf("a failed transaction left %d outbox entries, want %d", n, pendingBefore)
		}
		if g := must[int64](t, "generation")(s.ControlGeneration(ctx)); g != genBefore {
			t.Errorf("a failed transaction moved the generation from %d to %d", genBefore, g)
		}

		// A write's own error (here an invalid tool) comes back as the single-call method's.
		err = s.ReadWriteTx(ctx, func(tx store.Tx) error {
			if _, err := tx.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker"}); err != nil {
				return err
			}
			_, err := tx.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "list_items", Level: schema.Low, InputSchema: "not json"})
			return err
		})
		wantErr(t, "invalid tool in a transaction", err, store.ErrInvalid)
		_, err = s.GetServer(ctx, "acme", "tracker")
		wantErr(t, "server of a transaction whose tool was invalid", err, store.ErrNotFound)
	})
}

// A committed transaction is seen whole, with its outbox entries and one new generation; one
// that writes nothing leaves the generation alone.
func testReadWriteTxCommits(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		pendingBefore := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx))
		genBefore := must[int64](t, "generation")(s.ControlGeneration(ctx))
		names := []string{"create_item", "delete_item", "list_items"}

		// Readers running during the transaction see the server with all its tools or not at all.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tools, err := s.ListTools(context.Background(), "acme", "tracker")
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("list tools while a transaction runs: %v", err)
					return
				}
				if len(tools) != len(names) {
					t.Errorf("a reader saw the server with %d of its %d tools", len(tools), len(names))
					return
				}
			}
		}()
		err := s.ReadWriteTx(ctx, func(tx store.Tx) error {
			if _, err := tx.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker"}); err != nil {
				return err
			}
			for _, n := range names {
				if _, err := tx.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: n, Level: schema.Low, Enabled: true}); err != nil {
					return err
				}
			}
			return nil
		})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("ReadWriteTx: %v", err)
		}
		tools := must[[]store.Tool](t, "list tools")(s.ListTools(ctx, "acme", "tracker"))
		if len(tools) != len(names) {
			t.Fatalf("committed %d tools, want %d", len(tools), len(names))
		}
		// One outbox entry for the server, one per enabled tool.
		if n := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx)); n != pendingBefore+1+len(names) {
			t.Errorf("outbox holds %d entries, want %d", n, pendingBefore+1+len(names))
		}
		genAfter := must[int64](t, "generation")(s.ControlGeneration(ctx))
		if genAfter <= genBefore {
			t.Errorf("a committed transaction left the generation at %d (was %d)", genAfter, genBefore)
		}

		// Conditional writes that find their condition gone write nothing, and the transaction
		// goes on; with nothing written the generation stays.
		err = s.ReadWriteTx(ctx, func(tx store.Tx) error {
			added, err := tx.AddTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "list_items", Level: schema.Low})
			if err != nil || added {
				t.Errorf("AddTool of an existing tool = %v, %v; want false, nil", added, err)
			}
			flagged, err := tx.FlagTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "gone", Level: schema.Low}, "v2:aa")
			if err != nil || flagged {
				t.Errorf("FlagTool of a missing tool = %v, %v; want false, nil", flagged, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ReadWriteTx of no-op writes: %v", err)
		}
		if g := must[int64](t, "generation")(s.ControlGeneration(ctx)); g != genAfter {
			t.Errorf("a transaction that wrote nothing moved the generation from %d to %d", genAfter, g)
		}

		// Deleting in a transaction records the relationship's removal like DeleteTool.
		pending := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx))
		err = s.ReadWriteTx(ctx, func(tx store.Tx) error { return tx.DeleteTool(ctx, "acme", "tracker", "delete_item") })
		if err != nil {
			t.Fatalf("delete a tool in a transaction: %v", err)
		}
		_, err = s.GetTool(ctx, "acme", "tracker", "delete_item")
		wantErr(t, "deleted tool", err, store.ErrNotFound)
		if n := must[int](t, "pending changes")(s.PendingRelationshipChanges(ctx)); n != pending+1 {
			t.Errorf("deleting an enabled tool queued %d outbox entries, want 1", n-pending)
		}
		err = s.ReadWriteTx(ctx, func(tx store.Tx) error { return tx.DeleteTool(ctx, "acme", "tracker", "delete_item") })
		wantErr(t, "delete a missing tool in a transaction", err, store.ErrNotFound)
	})
}
