package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

func testUpstreamTokens(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		u := must[store.User](t, "user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"}))
		must[store.Server](t, "server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear", URL: "https://mcp.linear.app/mcp"}))
		must[store.Server](t, "server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "notion", URL: "https://mcp.notion.com/mcp"}))

		exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
		tok := store.UpstreamToken{Host: "acme", UserID: u.ID, Server: "linear", Sealed: []byte("sealed-1"), ExpiresAt: exp,
			Scopes: "read", TokenEndpoint: "https://auth.linear.app/token", ClientID: "c1"}
		must[store.UpstreamToken](t, "put token")(s.PutUpstreamToken(ctx, tok))
		got := must[store.UpstreamToken](t, "get token")(s.GetUpstreamToken(ctx, "acme", u.ID, "linear"))
		if string(got.Sealed) != "sealed-1" || !got.ExpiresAt.Equal(exp) || got.Scopes != "read" || got.ClientID != "c1" || got.TokenEndpoint != tok.TokenEndpoint {
			t.Errorf("token = %+v", got)
		}
		tok.Sealed = []byte("sealed-2")
		must[store.UpstreamToken](t, "replace token")(s.PutUpstreamToken(ctx, tok))
		if got := must[store.UpstreamToken](t, "get token")(s.GetUpstreamToken(ctx, "acme", u.ID, "linear")); string(got.Sealed) != "sealed-2" {
			t.Errorf("replaced token = %q", got.Sealed)
		}
		_, err := s.PutUpstreamToken(ctx, store.UpstreamToken{Host: "acme", UserID: u.ID, Server: "nope", Sealed: []byte("x")})
		wantErr(t, "token of an unknown server", err, store.ErrNotFound)
		_, err = s.PutUpstreamToken(ctx, store.UpstreamToken{Host: "acme", UserID: u.ID, Server: "linear"})
		wantErr(t, "empty token", err, store.ErrInvalid)
		_, err = s.GetUpstreamToken(ctx, "other", u.ID, "linear")
		wantErr(t, "token of another host", err, store.ErrNotFound)

		// Deleting the server deletes its tokens; deleting the human, theirs.
		tok.Server = "notion"
		must[store.UpstreamToken](t, "put token")(s.PutUpstreamToken(ctx, tok))
		noErr(t, "delete server", s.DeleteServer(ctx, "acme", "linear"))
		_, err = s.GetUpstreamToken(ctx, "acme", u.ID, "linear")
		wantErr(t, "token after server deletion", err, store.ErrNotFound)
		noErr(t, "delete user", s.DeleteUser(ctx, "acme", u.ID))
		_, err = s.GetUpstreamToken(ctx, "acme", u.ID, "notion")
		wantErr(t, "token after human deletion", err, store.ErrNotFound)
		wantErr(t, "delete missing token", s.DeleteUpstreamToken(ctx, "acme", u.ID, "notion"), store.ErrNotFound)
	})
}

func testUpstreamClientsAndStates(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		u := must[store.User](t, "user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com"}))
		must[store.Server](t, "server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear", URL: "https://mcp.linear.app/mcp"}))

		c := store.UpstreamClient{Host: "acme", Issuer: "https://auth.linear.app", ID: "dcr-1", SealedSecret: []byte("s"), RedirectURI: "https://gw/cb"}
		must[store.UpstreamClient](t, "put client")(s.PutUpstreamClient(ctx, c))
		c.ID = "dcr-2"
		must[store.UpstreamClient](t, "replace client")(s.PutUpstreamClient(ctx, c))
		got := must[store.UpstreamClient](t, "get client")(s.GetUpstreamClient(ctx, "acme", c.Issuer))
		if got.ID != "dcr-2" || string(got.SealedSecret) != "s" || got.RedirectURI != c.RedirectURI {
			t.Errorf("client = %+v", got)
		}

		now := time.Now()
		st := store.UpstreamAuthState{StateHash: "aa", Host: "acme", UserID: u.ID, Server: "linear", PendingRef: "ref", Sealed: []byte("v"), ExpiresAt: now.Add(time.Minute)}
		noErr(t, "create state", s.CreateUpstreamAuthState(ctx, st))
		wantErr(t, "duplicate state", s.CreateUpstreamAuthState(ctx, st), store.ErrConflict)
		taken := must[store.UpstreamAuthState](t, "take state")(s.TakeUpstreamAuthState(ctx, "aa", now))
		if taken.UserID != u.ID || taken.PendingRef != "ref" || string(taken.Sealed) != "v" {
			t.Errorf("state = %+v", taken)
		}
		_, err := s.TakeUpstreamAuthState(ctx, "aa", now)
		wantErr(t, "state taken twice", err, store.ErrNotFound)
		st.StateHash = "bb"
		noErr(t, "create state", s.CreateUpstreamAuthState(ctx, st))
		_, err = s.TakeUpstreamAuthState(ctx, "bb", now.Add(2*time.Minute))
		wantErr(t, "expired state", err, store.ErrNotFound)

		// Deleting the host deletes its clients.
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		_, err = s.GetUpstreamClient(ctx, "acme", c.Issuer)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("client after host deletion: %v", err)
		}
	})
}
