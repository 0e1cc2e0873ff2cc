package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// Email codes: single use, never after they expire or are replaced, a limited number of wrong
// tries per code and per address, a limited number of sends per address, and gone with their
// host.
func testEmailCodes(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create beta")(s.CreateHost(ctx, store.Host{Key: "beta"}))
		now := time.Now()
		hash := func(c string) string { return strings.Repeat(c, 64) }
		code := func(id, email, purpose, h string) store.EmailCode {
			return store.EmailCode{ID: id, Host: "acme", Email: email, Purpose: purpose, CodeHash: h, PendingRef: "ref", ExpiresAt: now.Add(5 * time.Minute)}
		}

		_, err := s.CreateEmailCode(ctx, store.EmailCode{ID: "x", Host: "nope", Email: "ada@example.com", Purpose: "signin", CodeHash: hash("a"), ExpiresAt: now.Add(time.Minute)}, now)
		wantErr(t, "code of an unknown host", err, store.ErrNotFound)
		_, err = s.CreateEmailCode(ctx, store.EmailCode{ID: "x", Host: "acme", Email: "not an address", Purpose: "signin", CodeHash: hash("a"), ExpiresAt: now.Add(time.Minute)}, now)
		wantErr(t, "bad address", err, store.ErrInvalid)
		_, err = s.CreateEmailCode(ctx, store.EmailCode{ID: "x", Host: "acme", Email: "ada@example.com", Purpose: "signin", CodeHash: "123456", ExpiresAt: now.Add(time.Minute)}, now)
		wantErr(t, "code not hashed", err, store.ErrInvalid)

		c := must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("c1", "Ada@Example.com", "signin", hash("a")), now))
		if c.Email != "ada@example.com" {
			t.Errorf("email = %q, want it lower-cased", c.Email)
		}
		_, err = s.CreateEmailCode(ctx, code("c1", "bob@example.com", "signin", hash("a")), now)
		wantErr(t, "duplicate id", err, store.ErrConflict)
		_, err = s.UseEmailCode(ctx, "beta", "c1", hash("a"), now)
		wantErr(t, "code of another host", err, store.ErrNotFound)
		wrong, err := s.UseEmailCode(ctx, "acme", "c1", hash("b"), now)
		wantErr(t, "wrong code", err, store.ErrWrongCode)
		if wrong.Email != "ada@example.com" || wrong.Purpose != "signin" || wrong.CodeHash != "" {
			t.Errorf("code of a wrong try = %+v, want its address and purpose without its hash", wrong)
		}
		got := must[store.EmailCode](t, "right code")(s.UseEmailCode(ctx, "acme", "c1", hash("a"), now))
		if got.Email != "ada@example.com" || got.Purpose != "signin" || got.PendingRef != "ref" || got.Failures != 1 || got.CodeHash != "" {
			t.Errorf("used code = %+v", got)
		}
		_, err = s.UseEmailCode(ctx, "acme", "c1", hash("a"), now)
		wantErr(t, "code used twice", err, store.ErrNotFound)

		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("c2", "ada@example.com", "signin", hash("a")), now))
		_, err = s.UseEmailCode(ctx, "acme", "c2", hash("a"), now.Add(5*time.Minute))
		wantErr(t, "expired code", err, store.ErrNotFound)

		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("c3", "ada@example.com", "password", hash("a")), now))
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("c4", "ada@example.com", "signin", hash("b")), now))
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("c5", "ada@example.com", "password", hash("c")), now))
		_, err = s.UseEmailCode(ctx, "acme", "c3", hash("a"), now)
		wantErr(t, "code replaced by a newer one", err, store.ErrNotFound)
		_, err = s.CreateEmailCode(ctx, code("c6", "ada@example.com", "signin", hash("a")), now)
		wantErr(t, "a sixth code within the window", err, store.ErrLimited)
		must[store.EmailCode](t, "other address")(s.CreateEmailCode(ctx, code("b1", "bob@example.com", "signin", hash("a")), now))
		later := code("c7", "ada@example.com", "signin", hash("d"))
		later.ExpiresAt = now.Add(store.EmailCodeWindow + time.Hour)
		must[store.EmailCode](t, "after the window")(s.CreateEmailCode(ctx, later, now.Add(store.EmailCodeWindow+time.Second)))

		// Per code: after EmailCodeMaxFailures wrong tries even the right code is refused.
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("e1", "eve@example.com", "signin", hash("a")), now))
		for i := 0; i < store.EmailCodeMaxFailures; i++ {
			_, err = s.UseEmailCode(ctx, "acme", "e1", hash("b"), now)
			wantErr(t, fmt.Sprintf("wrong code %d", i+1), err, store.ErrWrongCode)
		}
		_, err = s.UseEmailCode(ctx, "acme", "e1", hash("a"), now)
		wantErr(t, "right code after too many wrong ones", err, store.ErrLimited)

		// Per address: wrong tries add up across codes; then no code works or is sent.
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("e2", "eve@example.com", "password", hash("a")), now))
		for i := 0; i < store.EmailCodeMaxAddressFailures-store.EmailCodeMaxFailures; i++ {
			_, err = s.UseEmailCode(ctx, "acme", "e2", hash("b"), now)
			wantErr(t, fmt.Sprintf("wrong code %d of the second code", i+1), err, store.ErrWrongCode)
		}
		_, err = s.CreateEmailCode(ctx, code("e3", "eve@example.com", "signin", hash("a")), now)
		wantErr(t, "code for an address with too many wrong tries", err, store.ErrLimited)

		// Concurrent uses of the right code: exactly one succeeds.
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("r1", "rita@example.com", "signin", hash("a")), now))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UseEmailCode(ctx, "acme", "r1", hash("a"), now)
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("concurrent use: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d concurrent uses of one code succeeded, want 1", wins)
		}

		// A code that could not be sent counts against nothing.
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("d1", "dan@example.com", "signin", hash("a")), now))
		noErr(t, "delete", s.DeleteEmailCode(ctx, "acme", "d1"))
		_, err = s.UseEmailCode(ctx, "acme", "d1", hash("a"), now)
		wantErr(t, "deleted code", err, store.ErrNotFound)

		if n := must[int](t, "prune now")(s.PruneEmailCodes(ctx, now)); n != 0 {
			t.Errorf("pruned %d codes that still count, want 0", n)
		}
		if n := must[int](t, "prune later")(s.PruneEmailCodes(ctx, now.Add(store.EmailCodeWindow+time.Minute))); n == 0 {
			t.Error("pruned no code an hour later")
		}
		must[store.EmailCode](t, "create")(s.CreateEmailCode(ctx, code("h1", "hal@example.com", "signin", hash("a")), now))
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		_, err = s.UseEmailCode(ctx, "acme", "h1", hash("a"), now)
		wantErr(t, "code after its host was deleted", err, store.ErrNotFound)
	})
}
