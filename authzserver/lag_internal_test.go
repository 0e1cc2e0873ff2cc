package authzserver

import (
	"testing"
	"time"

	"github.com/trustgate/trustgate/store"
)

func TestLagCountsAPendingChangeAfterTheBound(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLag(5 * time.Second)
	l.now = func() time.Time { return now }
	if !l.Behind("acme") {
		t.Fatal("a host is current before the outbox was read")
	}
	l.update(l.begin(), []store.PendingHost{
		{Host: "acme", Pending: 1, Oldest: now.Add(-time.Second)},
		{Host: "old", Pending: 3, Oldest: now.Add(-6 * time.Second)},
		{Host: "set-aside", Quarantined: 1},
	}, true, false)
	for host, want := range map[string]bool{"acme": false, "old": true, "set-aside": true, "none": false} {
		if got := l.Behind(host); got != want {
			t.Errorf("Behind(%s) = %v, want %v", host, got, want)
		}
	}
	now = now.Add(5 * time.Second)
	if !l.Behind("acme") {
		t.Error("a change pending longer than the bound does not count")
	}
	if s := l.Status(); len(s.Behind) != 3 || s.OldestAge != 11*time.Second {
		t.Errorf("status %+v", s)
	}

	// A failed drain: every pending host at once; a read without a drain keeps the failure.
	l.update(l.begin(), []store.PendingHost{{Host: "fresh", Pending: 1, Oldest: now}}, true, true)
	if !l.Behind("fresh") || l.Behind("acme") {
		t.Error("after a failed drain: want the fresh change's host behind, acme (nothing pending) current")
	}
	l.update(l.begin(), []store.PendingHost{{Host: "fresh", Pending: 1, Oldest: now}}, false, false)
	if !l.Behind("fresh") {
		t.Error("a read without a drain forgot the failed drain")
	}

	// A read that began before the view held is dropped; its drain outcome is not.
	early := l.begin()
	l.update(l.begin(), nil, true, false)
	l.update(early, []store.PendingHost{{Host: "stale", Pending: 1, Oldest: now}}, false, false)
	if l.Behind("stale") || l.Behind("fresh") {
		t.Error("a slow read replaced a newer view")
	}
	l.unknown(l.begin())
	if !l.Behind("anything") {
		t.Error("a failed read leaves hosts current")
	}
}
