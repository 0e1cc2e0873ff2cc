package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

func testBrowserSessions(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create beta")(s.CreateHost(ctx, store.Host{Key: "beta"}))
		ada := must[store.User](t, "ada")(s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"}))
		now := time.Now()
		h := func(c string) string { return strings.Repeat(c, 64) }
		for _, c := range []string{"a", "b", "c"} {
			noErr(t, "create "+c, s.CreateBrowserSession(ctx, store.BrowserSession{Host: "acme", UserID: ada.ID, IDHash: h(c), Method: "password", ExpiresAt: now.Add(time.Hour)}))
		}
		got := must[store.BrowserSession](t, "get")(s.GetBrowserSession(ctx, "acme", h("a"), now))
		if got.UserID != ada.ID || got.Method != "password" {
			t.Fatalf("session = %+v", got)
		}
		_, err := s.GetBrowserSession(ctx, "beta", h("a"), now)
		wantErr(t, "other host", err, store.ErrNotFound)
		_, err = s.GetBrowserSession(ctx, "acme", h("a"), now.Add(2*time.Hour))
		wantErr(t, "expired", err, store.ErrNotFound)
		wantErr(t, "unknown human", s.CreateBrowserSession(ctx, store.BrowserSession{Host: "acme", UserID: "u_nobody", IDHash: h("d"), ExpiresAt: now.Add(time.Hour)}), store.ErrNotFound)
		wantErr(t, "bad hash", s.CreateBrowserSession(ctx, store.BrowserSession{Host: "acme", UserID: ada.ID, IDHash: "xyz", ExpiresAt: now.Add(time.Hour)}), store.ErrInvalid)

		noErr(t, "delete a", s.DeleteBrowserSession(ctx, "acme", h("a")))
		_, err = s.GetBrowserSession(ctx, "acme", h("a"), now)
		wantErr(t, "deleted", err, store.ErrNotFound)
		if n := must[int](t, "delete others")(s.DeleteUserBrowserSessions(ctx, "acme", ada.ID, h("b"))); n != 1 {
			t.Fatalf("deleted %d others, want 1", n)
		}
		must[store.BrowserSession](t, "kept b")(s.GetBrowserSession(ctx, "acme", h("b"), now))
		if n := must[int](t, "prune")(s.PruneBrowserSessions(ctx, now.Add(2*time.Hour))); n != 1 {
			t.Fatalf("pruned %d, want 1", n)
		}
		noErr(t, "create e", s.CreateBrowserSession(ctx, store.BrowserSession{Host: "acme", UserID: ada.ID, IDHash: h("e"), ExpiresAt: now.Add(time.Hour)}))
		noErr(t, "delete ada", s.DeleteUser(ctx, "acme", ada.ID))
		_, err = s.GetBrowserSession(ctx, "acme", h("e"), now)
		wantErr(t, "session of a deleted human", err, store.ErrNotFound)
	})
}
