package dashboard_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/controlplane"
)

// TestSetAsideChangesOnHostPage: with a relationship change SpiceDB refused for good, the host
// page says that calls on the host are refused until it is retried or discarded, lists it, and
// the hosts page marks the host; another host's page says nothing. Retry (refused again: the
// page says so and lists the change queued instead) and Discard (only once confirmed) act as
// the signed-in person, audited; another host's admin and a form without its CSRF token change
// nothing. Once discarded the notice is gone.
func TestSetAsideChangesOnHostPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.human("acme", "boss@acme.test", true)
	e.human("beta", "boss@beta.test", true)
	const page = "/dashboard/hosts/acme"
	boss := e.signIn("boss@acme.test", "acme")
	refused := controlplane.Refused("acme").String()

	if _, body, _ := boss.get(page); strings.Contains(body, "Calls on this host are refused") {
		t.Fatalf("the notice shows with nothing set aside:\n%s", body)
	}
	e.cp.SetAside(t, "acme")
	aside, err := e.store.ListQuarantinedChanges(ctx, "acme")
	if err != nil || len(aside) != 1 {
		t.Fatalf("set aside: %+v, %v", aside, err)
	}
	id := aside[0].ID
	retry, discard := fmt.Sprintf("%s/set-aside-changes/%d/retry", page, id), fmt.Sprintf("%s/set-aside-changes/%d/discard", page, id)

	status, body, _ := boss.get(page)
	for _, want := range []string{"Calls on this host are refused", "reason pending_change", "until the 1 relationship change(s) below are retried or discarded",
		html.EscapeString(refused), "no_such_relation", `action="` + retry + `"`, `action="` + discard + `"`, `name="confirm" type="checkbox" value="yes" required`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("host page (%d) lacks %q", status, want)
		}
	}
	if _, body, _ := boss.get("/dashboard/hosts"); !strings.Contains(body, "calls refused: 1 change(s) set aside") {
		t.Errorf("the hosts page does not mark acme:\n%s", body)
	}
	other := e.signIn("boss@beta.test", "beta")
	if _, body, _ := other.get("/dashboard/hosts/beta"); strings.Contains(body, "Calls on this host are refused") || strings.Contains(body, "no_such_relation") {
		t.Errorf("beta's page shows acme's change:\n%s", body)
	}

	// Refused: no CSRF token, another host's admin, acme's id under beta, a discard unconfirmed.
	csrf := boss.csrf()
	if status, _, _ := boss.post(retry, url.Values{}); status != http.StatusForbidden {
		t.Errorf("retry without CSRF = %d; want 403", status)
	}
	if status, _, _ := other.post(discard, url.Values{"csrf_token": {other.csrf()}, "confirm": {"yes"}}); status != http.StatusForbidden {
		t.Errorf("discard by beta's admin = %d; want 403", status)
	}
	if status, body, _ := other.post(fmt.Sprintf("/dashboard/hosts/beta/set-aside-changes/%d/discard", id), url.Values{"csrf_token": {other.csrf()}, "confirm": {"yes"}}); status != http.StatusNotFound {
		t.Errorf("acme's change discarded under beta = %d; want 404\n%s", status, body)
	}
	if status, body, _ := boss.post(discard, url.Values{"csrf_token": {csrf}}); status != http.StatusBadRequest || !strings.Contains(body, "nothing was discarded") {
		t.Errorf("discard without the confirmation = %d; want 400\n%s", status, body)
	}
	if now, _ := e.store.ListQuarantinedChanges(ctx, "acme"); len(now) != 1 || now[0].ID != id {
		t.Fatalf("after the refused requests: %+v", now)
	}

	// Retry: SpiceDB refuses the delete queued instead, which is set aside in its place.
	status, body, h := boss.post(retry, url.Values{"csrf_token": {csrf}})
	if status != http.StatusSeeOther || h.Get("Location") != page+"?done=change-refused-again#set-aside" {
		t.Fatalf("retry = %d %q\n%s", status, h.Get("Location"), body)
	}
	again, err := e.store.ListQuarantinedChanges(ctx, "acme")
	if err != nil || len(again) != 1 || again[0].ID == id {
		t.Fatalf("after the retry: %+v, %v", again, err)
	}
	if _, body, _ := boss.get(page + "?done=change-refused-again"); !strings.Contains(body, "refused again") || !strings.Contains(body, fmt.Sprintf("/set-aside-changes/%d/discard", again[0].ID)) {
		t.Errorf("after the retry, the page does not say it was refused again or lacks the new change:\n%s", body)
	}

	// Discard, confirmed: the notice is gone.
	discard = fmt.Sprintf("%s/set-aside-changes/%d/discard", page, again[0].ID)
	if status, _, h := boss.post(discard, url.Values{"csrf_token": {csrf}, "confirm": {"yes"}}); status != http.StatusSeeOther || h.Get("Location") != page+"?done=change-discarded#set-aside" {
		t.Fatalf("discard = %d %q", status, h.Get("Location"))
	}
	if now, _ := e.store.ListQuarantinedChanges(ctx, "acme"); len(now) != 0 {
		t.Fatalf("after the discard: %+v", now)
	}
	if _, body, _ := boss.get(page + "?done=change-discarded"); strings.Contains(body, "Calls on this host are refused") || !strings.Contains(body, "Discarded: the change was not applied.") {
		t.Errorf("after the discard:\n%s", body)
	}

	// Audited as the person.
	entries, err := e.store.ListAudit(ctx, auditFilter("acme"), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, en := range entries {
		if en.Actor == "dashboard:boss@acme.test" && en.Object == controlplane.Refused("acme").Key() {
			actions[en.Action]++
		}
	}
	if actions["relationship.retry"] != 1 || actions["relationship.discard"] != 1 {
		t.Errorf("audit entries by the dashboard's person = %v; want 1 retry, 1 discard", actions)
	}
}
