package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// An identifier is used once per host and kind until it expires; concurrent uses have one
// winner; bad input and unknown hosts are refused; deleting the host forgets its identifiers.
func testUseOnce(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		for _, h := range []string{"acme", "other"} {
			must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: h}))
		}
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		exp := t0.Add(5 * time.Minute)
		noErr(t, "first use", s.UseOnce(ctx, "acme", "saml-assertion", "_a1", exp, t0))
		wantErr(t, "second use", s.UseOnce(ctx, "acme", "saml-assertion", "_a1", exp, t0.Add(time.Minute)), store.ErrConflict)
		// Another kind, another host: separate.
		noErr(t, "other kind", s.UseOnce(ctx, "acme", "saml-request", "_a1", exp, t0))
		noErr(t, "other host", s.UseOnce(ctx, "other", "saml-assertion", "_a1", exp, t0))
		// Once expired, the record is gone.
		noErr(t, "after expiry", s.UseOnce(ctx, "acme", "saml-assertion", "_a1", exp.Add(time.Hour), exp))

		for name, c := range map[string]struct{ host, kind, id string }{
			"no id":      {"acme", "k", ""},
			"no kind":    {"acme", "", "x"},
			"long id":    {"acme", "k", strings.Repeat("x", 257)},
			"space":      {"acme", "k", "a b"},
			"bad host":   {"Acme", "k", "x"},
			"control ch": {"acme", "k", "a\nb"},
		} {
			wantErr(t, name, s.UseOnce(ctx, c.host, c.kind, c.id, exp, t0), store.ErrInvalid)
		}
		wantErr(t, "expiry not after now", s.UseOnce(ctx, "acme", "k", "x", t0, t0), store.ErrInvalid)
		wantErr(t, "unknown host", s.UseOnce(ctx, "nope", "k", "x", exp, t0), store.ErrNotFound)

		// Concurrent uses of one identifier: exactly one succeeds.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.UseOnce(ctx, "acme", "saml-assertion", "_race", exp, t0); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d concurrent uses succeeded, want 1", wins)
		}

		noErr(t, "delete host", s.DeleteHost(ctx, "other"))
		must[store.Host](t, "create host again")(s.CreateHost(ctx, store.Host{Key: "other"}))
		noErr(t, "use after host re-created", s.UseOnce(ctx, "other", "saml-assertion", "_a1", exp, t0))
	})
}
