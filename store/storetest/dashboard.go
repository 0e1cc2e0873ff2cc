package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

func testDashboard(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)

		// The setup link: one at a time, used once.
		if ok, err := s.DashboardSetupIssued(ctx); err != nil || ok {
			t.Fatalf("setup issued on a new store = %v, %v", ok, err)
		}
		if err := s.PutDashboardSetup(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.PutDashboardSetup(ctx, b); err != nil { // replaces a
			t.Fatal(err)
		}
		if ok, err := s.DashboardSetupIssued(ctx); err != nil || !ok {
			t.Fatalf("setup issued = %v, %v; want true", ok, err)
		}
		wantErr(t, "use replaced link", s.UseDashboardSetup(ctx, a), store.ErrNotFound)
		wantErr(t, "use malformed link", s.UseDashboardSetup(ctx, "x"), store.ErrNotFound)
		if err := s.UseDashboardSetup(ctx, b); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "use link twice", s.UseDashboardSetup(ctx, b), store.ErrNotFound)
		wantErr(t, "put malformed link", s.PutDashboardSetup(ctx, "x"), store.ErrInvalid)

		// Sessions: found until they expire, are ended, or their human is deleted.
		if _, err := s.CreateHost(ctx, store.Host{Key: "acme"}); err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, store.User{Host: "acme", Email: "ada@example.com", Admin: true})
		if err != nil {
			t.Fatal(err)
		}
		nowT := time.Now()
		if err := s.CreateDashboardSession(ctx, store.DashboardSession{IDHash: a, Host: "acme", UserID: u.ID, ExpiresAt: nowT.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetDashboardSession(ctx, a, nowT)
		if err != nil || got.Host != "acme" || got.UserID != u.ID {
			t.Fatalf("session = %+v, %v", got, err)
		}
		_, err = s.GetDashboardSession(ctx, a, nowT.Add(2*time.Hour))
		wantErr(t, "expired session", err, store.ErrNotFound)
		wantErr(t, "session of an unknown human", s.CreateDashboardSession(ctx, store.DashboardSession{IDHash: b, Host: "acme", UserID: "u_nobody", ExpiresAt: nowT.Add(time.Hour)}), store.ErrNotFound)
		if err := s.DeleteDashboardSession(ctx, a); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetDashboardSession(ctx, a, nowT)
		wantErr(t, "ended session", err, store.ErrNotFound)

		if err := s.CreateDashboardSession(ctx, store.DashboardSession{IDHash: b, Host: "acme", UserID: u.ID, ExpiresAt: nowT.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "acme", u.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetDashboardSession(ctx, b, nowT)
		wantErr(t, "session of a deleted human", err, store.ErrNotFound)
	})
}
