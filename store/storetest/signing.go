package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// The signing-key part of the conformance suite.

func signingKey(kid string, created time.Time) store.SigningKey {
	return store.SigningKey{
		KID:        kid,
		Alg:        "ES256",
		PrivateKey: []byte("sealed\x00\xff" + kid), // opaque bytes, not text
		PublicJWK:  `{"kty":"EC","crv":"P-256","kid":"` + kid + `","x":"x","y":"y"}`,
		CreatedAt:  created,
	}
}

func kids(keys []store.SigningKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KID
	}
	return out
}

func testSigningKeysCreateAndList(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		empty := must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx))
		if empty == nil || len(empty) != 0 {
			t.Fatalf("ListSigningKeys on an empty store = %#v, want an empty non-nil slice", empty)
		}

		// CreatedAt is normalised to UTC milliseconds; PrivateKey round-trips byte for byte.
		local := time.Date(2031, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
		a := must[store.SigningKey](t, "create a")(s.CreateSigningKey(ctx, signingKey("key-a", local)))
		wantEqual(t, "created a", a, store.SigningKey{
			KID: "key-a", Alg: "ES256", PrivateKey: []byte("sealed\x00\xffkey-a"),
			PublicJWK: signingKey("key-a", time.Time{}).PublicJWK,
			CreatedAt: time.UnixMilli(local.UnixMilli()).UTC(),
		})
		b := must[store.SigningKey](t, "create b")(s.CreateSigningKey(ctx, signingKey("key-b", ms(1_900_000_000, 1))))
		// Zero CreatedAt: the store's clock.
		before := time.Now().Add(-time.Second)
		c := must[store.SigningKey](t, "create c")(s.CreateSigningKey(ctx, signingKey("key-c", time.Time{})))
		if c.CreatedAt.Before(before) || c.CreatedAt.After(time.Now().Add(time.Second)) || c.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt of a key created without one = %v, want now in UTC", c.CreatedAt)
		}
		// Same created_at: ties are broken by kid, descending.
		d := must[store.SigningKey](t, "create d")(s.CreateSigningKey(ctx, signingKey("key-d", b.CreatedAt)))

		got := must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx))
		wantEqual(t, "ListSigningKeys", got, []store.SigningKey{a, d, b, c})

		_, err := s.CreateSigningKey(ctx, signingKey("key-a", time.Time{}))
		wantErr(t, "duplicate kid", err, store.ErrConflict)
	})
}

func testSigningKeysValidation(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		for name, mutate := range map[string]func(*store.SigningKey){
			"empty kid":            func(k *store.SigningKey) { k.KID = "" },
			"kid with a slash":     func(k *store.SigningKey) { k.KID = "a/b" },
			"kid too long":         func(k *store.SigningKey) { k.KID = string(bytes.Repeat([]byte("k"), 65)) },
			"empty alg":            func(k *store.SigningKey) { k.Alg = "" },
			"alg with a space":     func(k *store.SigningKey) { k.Alg = "ES 256" },
			"no private key":       func(k *store.SigningKey) { k.PrivateKey = nil },
			"JWK not JSON":         func(k *store.SigningKey) { k.PublicJWK = "{" },
			"JWK not an object":    func(k *store.SigningKey) { k.PublicJWK = `["kty"]` },
			"JWK null":             func(k *store.SigningKey) { k.PublicJWK = `null` },
			"retired without end":  func(k *store.SigningKey) { k.RetiredAt = ms(1_900_000_000, 0) },
			"end without retiring": func(k *store.SigningKey) { k.PublishedUntil = ms(1_900_000_000, 0) },
			"end before retiring": func(k *store.SigningKey) {
				k.RetiredAt, k.PublishedUntil = ms(1_900_000_001, 0), ms(1_900_000_000, 0)
			},
		} {
			k := signingKey("key", time.Time{})
			mutate(&k)
			_, err := s.CreateSigningKey(ctx, k)
			wantErr(t, name, err, store.ErrInvalid)
		}
		wantEqual(t, "keys after invalid input", len(must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx))), 0)

		at := ms(1_900_000_000, 0)
		wantErr(t, "retire with zero time", s.RetireSigningKeys(ctx, "key", time.Time{}, at), store.ErrInvalid)
		wantErr(t, "retire with publication ending first", s.RetireSigningKeys(ctx, "key", at, at.Add(-time.Millisecond)), store.ErrInvalid)
		_, err := s.PruneSigningKeys(ctx, time.Time{})
		wantErr(t, "prune with zero time", err, store.ErrInvalid)
	})
}

func testSigningKeysRetireAndPrune(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		t0 := ms(1_900_000_000, 0)
		old := must[store.SigningKey](t, "create old")(s.CreateSigningKey(ctx, signingKey("old", t0)))
		mid := must[store.SigningKey](t, "create mid")(s.CreateSigningKey(ctx, signingKey("mid", t0.Add(time.Hour))))

		// Rotation 1: keep mid.
		r1, u1 := t0.Add(2*time.Hour), t0.Add(26*time.Hour)
		noErr(t, "retire 1", s.RetireSigningKeys(ctx, "mid", r1, u1))
		old.RetiredAt, old.PublishedUntil = r1, u1
		wantEqual(t, "after retire 1", must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx)), []store.SigningKey{mid, old})

		// Rotation 2: keep new; old keeps its first retirement, mid is retired now.
		nw := must[store.SigningKey](t, "create new")(s.CreateSigningKey(ctx, signingKey("new", t0.Add(3*time.Hour))))
		r2, u2 := t0.Add(3*time.Hour), t0.Add(27*time.Hour)
		noErr(t, "retire 2", s.RetireSigningKeys(ctx, "new", r2, u2))
		mid.RetiredAt, mid.PublishedUntil = r2, u2
		wantEqual(t, "after retire 2", must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx)), []store.SigningKey{nw, mid, old})

		// keep must exist and not be retired.
		wantErr(t, "retire keeping an unknown key", s.RetireSigningKeys(ctx, "nope", r2, u2), store.ErrNotFound)
		wantErr(t, "retire keeping a retired key", s.RetireSigningKeys(ctx, "mid", r2, u2), store.ErrConflict)
		wantEqual(t, "after refused retirements", must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx)), []store.SigningKey{nw, mid, old})

		// Prune: only retired keys whose publication ended strictly before now.
		wantEqual(t, "prune at old's end", must[int](t, "prune")(s.PruneSigningKeys(ctx, u1)), 0)
		wantEqual(t, "prune just after old's end", must[int](t, "prune")(s.PruneSigningKeys(ctx, u1.Add(time.Millisecond))), 1)
		wantEqual(t, "after prune 1", kids(must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx))), []string{"new", "mid"})
		wantEqual(t, "prune far later", must[int](t, "prune")(s.PruneSigningKeys(ctx, t0.Add(1000*time.Hour))), 1)
		wantEqual(t, "after prune 2", must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx)), []store.SigningKey{nw})
	})
}

// Two rotations racing each other never retire every key.
func testSigningKeysConcurrentRotations(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		t0 := ms(1_900_000_000, 0)
		must[store.SigningKey](t, "create first")(s.CreateSigningKey(ctx, signingKey("first", t0)))
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				kid := fmt.Sprintf("rot-%d", i)
				if _, err := s.CreateSigningKey(ctx, signingKey(kid, t0.Add(time.Duration(i+1)*time.Minute))); err != nil {
					errs[i] = err
					return
				}
				errs[i] = s.RetireSigningKeys(ctx, kid, t0.Add(time.Hour), t0.Add(25*time.Hour))
			})
		}
		wg.Wait()
		var active []string
		for _, k := range must[[]store.SigningKey](t, "list")(s.ListSigningKeys(ctx)) {
			if k.RetiredAt.IsZero() {
				active = append(active, k.KID)
			}
		}
		if len(active) != 1 {
			t.Fatalf("after %d concurrent rotations, %d keys are not retired (%v), want exactly 1 (errors: %v)", n, len(active), active, errs)
		}
		for i, err := range errs {
			if err != nil {
				wantErr(t, fmt.Sprintf("rotation %d", i), err, store.ErrConflict)
			}
		}
	})
}
