package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

func refHash(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(h[:])
}

func testAuthorizeRequests(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		for _, h := range []string{"acme", "other"} {
			must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: h}))
		}
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		exp := t0.Add(10 * time.Minute)
		r := must[store.AuthorizeRequest](t, "create")(s.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{
			Host: "acme", RefHash: refHash("one"), Data: `{"server":""}`, ExpiresAt: exp,
		}))
		if r.CreatedAt.IsZero() || !r.ExpiresAt.Equal(exp) {
			t.Fatalf("created %+v", r)
		}
		got := must[store.AuthorizeRequest](t, "get")(s.GetAuthorizeRequest(ctx, "acme", refHash("one"), t0))
		if got.Data != `{"server":""}` || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("got %+v", got)
		}
		// Another host does not see it, and an expired request is gone.
		_, err := s.GetAuthorizeRequest(ctx, "other", refHash("one"), t0)
		wantErr(t, "get from another host", err, store.ErrNotFound)
		_, err = s.GetAuthorizeRequest(ctx, "acme", refHash("one"), exp)
		wantErr(t, "get at expiry", err, store.ErrNotFound)
		wantErr(t, "update from another host", s.UpdateAuthorizeRequest(ctx, "other", refHash("one"), `{}`, t0), store.ErrNotFound)

		noErr(t, "update", s.UpdateAuthorizeRequest(ctx, "acme", refHash("one"), `{"server":"linear"}`, t0))
		if got := must[store.AuthorizeRequest](t, "get")(s.GetAuthorizeRequest(ctx, "acme", refHash("one"), t0)); got.Data != `{"server":"linear"}` {
			t.Fatalf("after update %q", got.Data)
		}
		_, err = s.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{Host: "acme", RefHash: refHash("one"), Data: `{}`, ExpiresAt: exp})
		wantErr(t, "duplicate", err, store.ErrConflict)

		// Bounded and validated input.
		for name, bad := range map[string]store.AuthorizeRequest{
			"raw reference": {Host: "acme", RefHash: "one", Data: `{}`, ExpiresAt: exp},
			"upper case":    {Host: "acme", RefHash: strings.ToUpper(refHash("x")), Data: `{}`, ExpiresAt: exp},
			"not JSON":      {Host: "acme", RefHash: refHash("x"), Data: `{`, ExpiresAt: exp},
			"too large":     {Host: "acme", RefHash: refHash("x"), Data: `"` + strings.Repeat("a", 40<<10) + `"`, ExpiresAt: exp},
			"no expiry":     {Host: "acme", RefHash: refHash("x"), Data: `{}`},
		} {
			_, err := s.CreateAuthorizeRequest(ctx, bad)
			wantErr(t, name, err, store.ErrInvalid)
		}
		_, err = s.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{Host: "nope", RefHash: refHash("x"), Data: `{}`, ExpiresAt: exp})
		wantErr(t, "unknown host", err, store.ErrNotFound)

		// Used once: the second delete finds nothing.
		wantErr(t, "delete from another host", s.DeleteAuthorizeRequest(ctx, "other", refHash("one")), store.ErrNotFound)
		noErr(t, "delete", s.DeleteAuthorizeRequest(ctx, "acme", refHash("one")))
		wantErr(t, "delete again", s.DeleteAuthorizeRequest(ctx, "acme", refHash("one")), store.ErrNotFound)

		// Expired rows are purged by the next creation, of any host.
		must[store.AuthorizeRequest](t, "create expired")(s.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{
			Host: "other", RefHash: refHash("old"), Data: `{}`, ExpiresAt: time.Now().Add(5 * time.Millisecond),
		}))
		time.Sleep(20 * time.Millisecond)
		must[store.AuthorizeRequest](t, "create")(s.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{
			Host: "acme", RefHash: refHash("two"), Data: `{}`, ExpiresAt: exp,
		}))
		// Asked with a time before its expiry, a purged row is still not found.
		_, err = s.GetAuthorizeRequest(ctx, "other", refHash("old"), time.Unix(0, 0))
		wantErr(t, "purged", err, store.ErrNotFound)

		// Deleting the host deletes its requests.
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		_, err = s.GetAuthorizeRequest(ctx, "acme", refHash("two"), t0)
		wantErr(t, "after host deletion", err, store.ErrNotFound)
	})
}
