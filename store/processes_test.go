package store_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

// Tests of several stores (processes) opened on one database, on every engine. The tests of
// one store are the conformance suite (package storetest, run by suite_test.go).

// TestEnsureHostConcurrently: processes starting together on one database all ensure the default
// host; every one gets the same host and none an error.
func TestEnsureHostConcurrently(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			stores := []store.Store{openStore(t, cfg), openStore(t, cfg)}
			const callers = 8
			start := make(chan struct{})
			var wg sync.WaitGroup
			got := make([]store.Host, callers)
			errs := make([]error, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					got[i], errs[i] = stores[i%2].EnsureHost(ctx, store.Host{Key: "default", Name: fmt.Sprintf("caller %d", i)})
				}()
			}
			close(start)
			wg.Wait()
			for i := range callers {
				if errs[i] != nil {
					t.Fatalf("EnsureHost %d: %v", i, errs[i])
				}
				if !reflect.DeepEqual(got[i], got[0]) {
					t.Fatalf("EnsureHost %d returned %+v, another %+v", i, got[i], got[0])
				}
			}
			stored := must[store.Host](t, "get host")(stores[1].GetHost(ctx, "default"))
			wantEqual(t, "the stored host", stored, got[0])
			if hs := must[[]store.Host](t, "list hosts")(stores[0].ListHosts(ctx)); len(hs) != 1 {
				t.Fatalf("ListHosts = %+v", hs)
			}
		})
	}
}

// TestAuditConcurrentProcesses: two stores on one database (two gateway processes) appending to
// the same host at once still make one unbroken chain.
func TestAuditConcurrentProcesses(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			a, b := openStore(t, cfg), openStore(t, cfg)
			ctx := context.Background()
			const perWriter, writers = 20, 4
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				s := a
				if w%2 == 1 {
					s = b
				}
				wg.Go(func() {
					for i := range perWriter {
						if err := s.AppendAudit(ctx, []audit.Entry{
							{Host: "acme", Decision: audit.Allowed, RequestID: fmt.Sprintf("w%d-%d", w, i)},
							{Host: "acme", Decision: audit.Result, RequestID: fmt.Sprintf("w%d-%d", w, i)},
						}); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("concurrent append: %v", err)
			}
			heads := must[[]audit.Head](t, "heads")(a.AuditHeads(ctx))
			sum, err := audit.Verify(ctx, a, "acme", &heads[0])
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if sum.Entries != 2*perWriter*writers {
				t.Fatalf("%d entries, want %d", sum.Entries, 2*perWriter*writers)
			}
		})
	}
}

// TestControlGenerationSeenByOtherProcesses: a process remembers the control-plane generation
// for a few milliseconds instead of reading it per request; a change committed through another
// process on the same database is still seen by the first read after the change returned (so a
// revocation through one replica holds at the next call through another), every time.
func TestControlGenerationSeenByOtherProcesses(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			a, b := openStore(t, cfg), openStore(t, cfg)
			for i := range 20 {
				before := must[int64](t, "generation")(a.ControlGeneration(ctx))
				// a's generation was just read: without the writer's wait it would be answered
				// from a's memory below.
				if _, err := b.CreateHost(ctx, store.Host{Key: fmt.Sprintf("gen%d", i), Name: "Generation"}); err != nil {
					t.Fatalf("create host through the other process: %v", err)
				}
				if after := must[int64](t, "generation")(a.ControlGeneration(ctx)); after <= before {
					t.Fatalf("change %d through the other process: generation %d before, %d after it returned", i, before, after)
				}
				// Its own change is seen at once, too.
				before = must[int64](t, "generation")(a.ControlGeneration(ctx))
				if _, err := a.CreateHost(ctx, store.Host{Key: fmt.Sprintf("own%d", i), Name: "Generation"}); err != nil {
					t.Fatalf("create host: %v", err)
				}
				if after := must[int64](t, "generation")(b.ControlGeneration(ctx)); after <= before {
					t.Fatalf("change %d: the other process read generation %d before, %d after it returned", i, before, after)
				}
			}
		})
	}
}
