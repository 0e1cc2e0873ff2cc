package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

// Held calls: decided once, never approved once their wait ended or their holder went away,
// expired in bulk, a standing approval stored with the approval that asked for one; gone with
// their host.
func testApprovals(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		now := time.Now()
		held := func(id string, standing int) store.HeldCall {
			return store.HeldCall{ID: id, Host: "acme", AgentID: "a1", AgentName: "Cursor", UserID: "u1", Server: "tracker", Tool: "delete_issue",
				Arguments: `{"id":7}`, Approvers: []string{"bob@acme.test"}, StandingHours: standing, CreatedAt: now, ExpiresAt: now.Add(2 * time.Minute)}
		}
		_, err := s.CreateHeldCall(ctx, store.HeldCall{ID: "x", Host: "nope", AgentID: "a", UserID: "u", Server: "s", Tool: "t", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
		wantErr(t, "held call of an unknown host", err, store.ErrNotFound)
		bad := held("bad", 0)
		bad.Arguments = "{"
		_, err = s.CreateHeldCall(ctx, bad)
		wantErr(t, "arguments not JSON", err, store.ErrInvalid)

		c := must[store.HeldCall](t, "hold")(s.CreateHeldCall(ctx, held("h1", 0)))
		if c.Status != store.HeldPending || !c.SeenAt.Equal(c.CreatedAt) {
			t.Fatalf("held call %+v", c)
		}
		_, err = s.CreateHeldCall(ctx, held("h1", 0))
		wantErr(t, "same id twice", err, store.ErrConflict)
		list := must[[]store.HeldCall](t, "list")(s.ListHeldCalls(ctx, "acme", now))
		if len(list) != 1 || list[0].Arguments != `{"id":7}` || len(list[0].Approvers) != 1 || list[0].Approvers[0] != "bob@acme.test" {
			t.Fatalf("pending calls %+v", list)
		}

		d := must[store.HeldCall](t, "deny")(s.DecideHeldCall(ctx, "acme", "h1", store.HeldDenied, "bob@acme.test", "email", now))
		if d.Status != store.HeldDenied || d.DecidedBy != "bob@acme.test" || d.Arguments != "" {
			t.Fatalf("denied call %+v", d)
		}
		_, err = s.DecideHeldCall(ctx, "acme", "h1", store.HeldApproved, "bob@acme.test", "email", now)
		wantErr(t, "approve after deny", err, store.ErrConflict)
		if got := must[store.HeldCall](t, "get")(s.GetHeldCall(ctx, "acme", "h1")); got.Status != store.HeldDenied {
			t.Fatalf("after a second decision: %+v", got)
		}

		// A holder that stopped renewing its heartbeat: the call cannot be approved.
		must[store.HeldCall](t, "hold h2")(s.CreateHeldCall(ctx, held("h2", 0)))
		later := now.Add(store.HeldHeartbeatStale + time.Second)
		if list := must[[]store.HeldCall](t, "list later")(s.ListHeldCalls(ctx, "acme", later)); len(list) != 0 {
			t.Fatalf("an abandoned call is listed: %+v", list)
		}
		got, err := s.DecideHeldCall(ctx, "acme", "h2", store.HeldApproved, "bob@acme.test", "email", later)
		wantErr(t, "approve an abandoned call", err, store.ErrConflict)
		if got.Status != store.HeldExpired {
			t.Fatalf("abandoned call after an approval: %+v", got)
		}

		// A heartbeat keeps it waiting; the approval with standing hours stands.
		must[store.HeldCall](t, "hold h3")(s.CreateHeldCall(ctx, held("h3", 4)))
		must[store.HeldCall](t, "heartbeat")(s.HeartbeatHeldCall(ctx, "acme", "h3", now.Add(10*time.Second)))
		a := must[store.HeldCall](t, "approve")(s.DecideHeldCall(ctx, "acme", "h3", store.HeldApproved, "bob@acme.test", "dashboard", later))
		if a.Status != store.HeldApproved || a.Channel != "dashboard" {
			t.Fatalf("approved call %+v", a)
		}
		st := must[store.StandingApproval](t, "standing")(s.StandingApprovalFor(ctx, "acme", "a1", "tracker", "delete_issue", later))
		if st.ApprovedBy != "bob@acme.test" || st.ExpiresAt.Sub(later) < 3*time.Hour {
			t.Fatalf("standing approval %+v", st)
		}
		_, err = s.StandingApprovalFor(ctx, "acme", "a1", "tracker", "delete_issue", later.Add(5*time.Hour))
		wantErr(t, "standing approval after it ends", err, store.ErrNotFound)
		if l := must[[]store.StandingApproval](t, "list standing")(s.ListStandingApprovals(ctx, "acme", later)); len(l) != 1 {
			t.Fatalf("standing approvals %+v", l)
		}
		if err := s.DeleteStandingApproval(ctx, "acme", "a1", "tracker", "delete_issue"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "revoke twice", s.DeleteStandingApproval(ctx, "acme", "a1", "tracker", "delete_issue"), store.ErrNotFound)

		// Expiry in bulk: the waits that ended.
		must[store.HeldCall](t, "hold h4")(s.CreateHeldCall(ctx, held("h4", 0)))
		expired := must[[]store.HeldCall](t, "expire")(s.ExpireHeldCalls(ctx, now.Add(3*time.Minute)))
		if len(expired) != 1 || expired[0].ID != "h4" || expired[0].Status != store.HeldExpired {
			t.Fatalf("expired %+v", expired)
		}
		_, err = s.DecideHeldCall(ctx, "acme", "h4", store.HeldApproved, "bob@acme.test", "email", now)
		wantErr(t, "approve an expired call", err, store.ErrConflict)

		must[store.HeldCall](t, "hold h5")(s.CreateHeldCall(ctx, held("h5", 0)))
		if err := s.DeleteHost(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetHeldCall(ctx, "acme", "h5"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("held call after its host was deleted: %v", err)
		}
	})
}
