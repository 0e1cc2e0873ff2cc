package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/store"
)

func testUserPasswords(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if _, err := s.CreateHost(ctx, store.Host{Key: "acme"}); err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if h, err := s.GetUserPasswordHash(ctx, "acme", u.ID); err != nil || h != "" {
			t.Fatalf("new user's hash = %q, %v; want empty", h, err)
		}
		const phc = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$a2V5"
		if err := s.SetUserPassword(ctx, "acme", u.ID, phc); err != nil {
			t.Fatal(err)
		}
		if h, err := s.GetUserPasswordHash(ctx, "acme", u.ID); err != nil || h != phc {
			t.Fatalf("hash = %q, %v; want %q", h, err, phc)
		}
		// Setting the same hash again is not "not found".
		if err := s.SetUserPassword(ctx, "acme", u.ID, phc); err != nil {
			t.Fatal(err)
		}
		// The hash never shows in a User, and other updates keep it.
		got, err := s.GetUser(ctx, "acme", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprintf("%+v", got), "argon2id") {
			t.Fatalf("user %+v shows the hash", got)
		}
		got.Name = "Ada"
		if _, err := s.UpdateUser(ctx, got); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.GetUserPasswordHash(ctx, "acme", u.ID); h != phc {
			t.Fatalf("hash after UpdateUser = %q", h)
		}
		// Unknown users and other hosts.
		wantErr(t, "set unknown", s.SetUserPassword(ctx, "acme", "u_nobody", phc), store.ErrNotFound)
		_, err = s.GetUserPasswordHash(ctx, "acme", "u_nobody")
		wantErr(t, "get unknown", err, store.ErrNotFound)
		if _, err := s.CreateHost(ctx, store.Host{Key: "beta"}); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetUserPasswordHash(ctx, "beta", u.ID)
		wantErr(t, "get in other host", err, store.ErrNotFound)
		wantErr(t, "too long", s.SetUserPassword(ctx, "acme", u.ID, strings.Repeat("x", 2000)), store.ErrInvalid)
		// Clearing.
		if err := s.SetUserPassword(ctx, "acme", u.ID, ""); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.GetUserPasswordHash(ctx, "acme", u.ID); h != "" {
			t.Fatalf("hash after clearing = %q", h)
		}
	})
}
