package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// A sign-in at an identity provider in progress is taken at most once, never after it
// expired, and goes with its host.
func testSSOStates(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		now := time.Now()
		st := store.SSOState{StateHash: "aa", Host: "acme", Method: "oidc", PendingRef: "ref", Sealed: []byte("v"), ExpiresAt: now.Add(time.Minute)}
		wantErr(t, "state of an unknown host", s.CreateSSOState(ctx, store.SSOState{StateHash: "cc", Host: "nope", Method: "oidc", Sealed: []byte("v"), ExpiresAt: now.Add(time.Minute)}), store.ErrNotFound)
		noErr(t, "create state", s.CreateSSOState(ctx, st))
		wantErr(t, "duplicate state", s.CreateSSOState(ctx, st), store.ErrConflict)
		taken := must[store.SSOState](t, "take state")(s.TakeSSOState(ctx, "aa", now))
		if taken.Host != "acme" || taken.Method != "oidc" || taken.PendingRef != "ref" || string(taken.Sealed) != "v" {
			t.Errorf("state = %+v", taken)
		}
		_, err := s.TakeSSOState(ctx, "aa", now)
		wantErr(t, "state taken twice", err, store.ErrNotFound)
		st.StateHash = "bb"
		noErr(t, "create state", s.CreateSSOState(ctx, st))
		_, err = s.TakeSSOState(ctx, "bb", now.Add(2*time.Minute))
		wantErr(t, "expired state", err, store.ErrNotFound)

		st.StateHash = "dd"
		noErr(t, "create state", s.CreateSSOState(ctx, st))
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		if _, err := s.TakeSSOState(ctx, "dd", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("state after host deletion: %v", err)
		}
	})
}
