package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/sdk"
)

// TestSetAsideChanges: a relationship change SpiceDB refuses for good is set aside and its host
// fails closed. The host's admin sees it (the host's count, the list, paged), retries it — the
// store does not imply the relationship, so its delete is queued, which SpiceDB refuses too and
// which is set aside again — and discards it, after which the host is no longer behind. Each is
// audited like the CLI's, with the token as the actor. Another host's token sees nothing of it,
// and an id of another host's change is not found on this host's paths, even with a global
// token.
func TestSetAsideChanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	refused := controlplane.Refused("acme").String()
	e.cp.SetAside(t, "acme")
	e.cp.SetAside(t, "beta")
	if !e.cp.Writer.Lag().Behind("acme") {
		t.Fatal("acme is not behind with a change set aside")
	}

	// The host resource counts them; each host its own.
	var h admin.Host
	e.must(200, "GET", "/api/v1/hosts/acme", e.acme, nil, &h)
	if h.SetAsideChanges != 1 || !h.RelationshipsBehind {
		t.Fatalf("acme's set_aside_changes = %d, relationships_behind %v; want 1, true", h.SetAsideChanges, h.RelationshipsBehind)
	}
	var hosts admin.Page[admin.Host]
	e.must(200, "GET", "/api/v1/hosts", e.global, nil, &hosts)
	counts, behind := map[string]int{}, map[string]bool{}
	for _, h := range hosts.Items {
		counts[h.Key], behind[h.Key] = h.SetAsideChanges, h.RelationshipsBehind
	}
	if counts["acme"] != 1 || counts["beta"] != 1 || counts["default"] != 0 {
		t.Fatalf("hosts' set_aside_changes: %v", counts)
	}
	if !behind["acme"] || !behind["beta"] || behind["default"] {
		t.Fatalf("hosts' relationships_behind: %v", behind)
	}

	c, err := sdk.NewClient(e.api.URL, e.acme)
	if err != nil {
		t.Fatal(err)
	}
	list, err := sdk.Collect(c.SetAsideChanges(ctx, "acme"))
	if err != nil || len(list) != 1 {
		t.Fatalf("acme's set-aside changes: %+v, %v", list, err)
	}
	first := list[0]
	if first.Op != "touch" || first.Relationship != refused || !strings.Contains(first.Reason, "no_such_relation") ||
		first.CreatedAt.IsZero() || first.SetAsideAt.Before(first.CreatedAt) {
		t.Fatalf("set-aside change: %+v", first)
	}
	var betaList admin.Page[admin.SetAsideChange]
	e.must(200, "GET", "/api/v1/hosts/beta/set-aside-changes", e.beta, nil, &betaList)
	if len(betaList.Items) != 1 || betaList.Items[0].ID == first.ID || strings.Contains(fmt.Sprint(betaList), "acme") {
		t.Fatalf("beta's list: %+v", betaList)
	}
	betaID := betaList.Items[0].ID

	// Scoped: beta's token reaches nothing of acme's; beta's change is not found under acme,
	// with acme's token or a global one, and stays set aside.
	e.problem(403, "GET", "/api/v1/hosts/acme/set-aside-changes", e.beta, nil, `scoped to host "beta"`)
	e.problem(403, "POST", fmt.Sprintf("/api/v1/hosts/acme/set-aside-changes/%d/retry", first.ID), e.beta, nil)
	for _, tok := range []string{e.acme, e.global} {
		e.problem(404, "POST", fmt.Sprintf("/api/v1/hosts/acme/set-aside-changes/%d/retry", betaID), tok, nil, "no relationship change", "set aside on host acme")
		e.problem(404, "DELETE", fmt.Sprintf("/api/v1/hosts/acme/set-aside-changes/%d", betaID), tok, nil, "no relationship change")
	}
	e.must(200, "GET", "/api/v1/hosts/beta/set-aside-changes", e.beta, nil, &betaList)
	if len(betaList.Items) != 1 {
		t.Fatalf("beta's change after acme's requests: %+v", betaList)
	}
	// Ids that are not ids.
	for _, bad := range []string{"abc", "0", "-3", "99999999999999999999"} {
		e.problem(400, "DELETE", "/api/v1/hosts/acme/set-aside-changes/"+bad, e.acme, nil, "not a positive number")
	}
	e.problem(404, "POST", "/api/v1/hosts/acme/set-aside-changes/987654/retry", e.acme, nil, "no relationship change 987654")
	e.problem(404, "GET", "/api/v1/hosts/nope/set-aside-changes", e.global, nil, "host not found")

	// Retried: the store does not imply the relationship, so its delete is queued and applied;
	// SpiceDB refuses that too, and it is set aside again.
	retried, err := c.RetrySetAsideChange(ctx, "acme", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retried.Change.ID != first.ID || retried.Queued != "delete" || retried.SetAsideAgain == nil ||
		retried.SetAsideAgain.Op != "delete" || retried.SetAsideAgain.ID == first.ID || retried.SetAsideAgain.Relationship != refused {
		t.Fatalf("retry: %+v (again %+v)", retried, retried.SetAsideAgain)
	}
	var se *sdk.Error
	if _, err := c.RetrySetAsideChange(ctx, "acme", first.ID); !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("a second retry of the same change: %v, want a 404", err)
	}

	// Paged, oldest first: a second change set aside.
	e.cp.SetAside(t, "acme")
	var p1, p2 admin.Page[admin.SetAsideChange]
	e.must(200, "GET", "/api/v1/hosts/acme/set-aside-changes?limit=1", e.acme, nil, &p1)
	if len(p1.Items) != 1 || p1.NextCursor == "" || p1.Items[0].ID != retried.SetAsideAgain.ID {
		t.Fatalf("first page: %+v", p1)
	}
	e.must(200, "GET", "/api/v1/hosts/acme/set-aside-changes?limit=1&cursor="+p1.NextCursor, e.acme, nil, &p2)
	if len(p2.Items) != 1 || p2.NextCursor != "" || p2.Items[0].ID <= p1.Items[0].ID || p2.Items[0].Op != "touch" {
		t.Fatalf("second page: %+v", p2)
	}

	// Discarded, both: nothing is applied, and the host is no longer behind.
	for _, id := range []int64{p1.Items[0].ID, p2.Items[0].ID} {
		if err := c.DiscardSetAsideChange(ctx, "acme", id); err != nil {
			t.Fatal(err)
		}
	}
	if e.cp.Writer.Lag().Behind("acme") || !e.cp.Writer.Lag().Behind("beta") {
		t.Fatalf("after the discards: acme behind %v, beta behind %v; want false, true", e.cp.Writer.Lag().Behind("acme"), e.cp.Writer.Lag().Behind("beta"))
	}
	e.must(200, "GET", "/api/v1/hosts/acme", e.acme, nil, &h)
	if h.SetAsideChanges != 0 || h.RelationshipsBehind {
		t.Fatalf("acme after the discards: set_aside_changes %d, relationships_behind %v", h.SetAsideChanges, h.RelationshipsBehind)
	}
	if list, err := sdk.Collect(c.SetAsideChanges(ctx, "acme")); err != nil || len(list) != 0 {
		t.Fatalf("acme's list after the discards: %+v, %v", list, err)
	}

	// Audited as the CLI's entries are, with the token as the actor; the refused requests
	// wrote nothing.
	var log admin.Page[admin.AuditEntry]
	e.must(200, "GET", "/api/v1/hosts/acme/audit?decision=admin", e.acme, nil, &log)
	var got []string
	for _, en := range log.Items {
		if !strings.HasPrefix(en.Actor, "token:") {
			t.Errorf("entry %s actor %q", en.Action, en.Actor)
		}
		got = append(got, en.Action+" "+en.Object+" "+en.OldValue+" -> "+en.NewValue)
	}
	key := controlplane.Refused("acme").Key()
	want := []string{
		"relationship.retry " + key + " touch (set aside: " + first.Reason + ") -> delete",
		"relationship.discard " + key + " delete (set aside: " + retried.SetAsideAgain.Reason + ") -> ",
		"relationship.discard " + key + " touch (set aside: " + p2.Items[0].Reason + ") -> ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("acme's admin entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	e.must(200, "GET", "/api/v1/hosts/beta/audit?decision=admin", e.beta, nil, &log)
	for _, en := range log.Items {
		if strings.HasPrefix(en.Action, "relationship.") {
			t.Errorf("beta's log has %s", en.Action)
		}
	}
}
