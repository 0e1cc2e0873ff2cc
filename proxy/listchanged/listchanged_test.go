package listchanged

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// fixture is a real control plane (SQLite store, embedded SpiceDB, relationship writer) with
// host acme, server tracker and its three tools, a human granted up to high, and two agents
// of hers consented at medium.
type fixture struct {
	t      *testing.T
	cp     *controlplane.ControlPlane
	userID string
	a, b   Key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	cp := controlplane.New(t)
	st := cp.Store
	if _, err := st.EnsureHost(ctx, store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: "ann@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker", URL: "http://127.0.0.1:1/mcp"}); err != nil {
		t.Fatal(err)
	}
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium, "delete_issue": schema.High} {
		if _, err := st.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: name, Level: level, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetGrant(ctx, store.Grant{Host: "acme", Server: "tracker", UserID: u.ID, Ceiling: schema.High}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cp: cp, userID: u.ID}
	for i, k := range []*Key{&f.a, &f.b} {
		ag, err := st.CreateAgent(ctx, store.Agent{Host: "acme", UserID: u.ID, ClientID: []string{"client-a", "client-b"}[i], Name: "agent"})
		if err != nil {
			t.Fatal(err)
		}
		*k = Key{Host: "acme", Agent: ag.ID, Server: "tracker"}
		f.setLevel(*k, schema.Medium)
	}
	cp.Sync(t)
	return f
}

// notifier watches the fixture's control plane; settle applies pending relationship changes
// first, as the proxy's notifier does.
func (f *fixture) notifier(settle bool) *Notifier {
	cfg := Config{
		Generation: f.cp.Store.ControlGeneration,
		Listed: func(ctx context.Context, k Key) ([]string, error) {
			return f.cp.Backend.CallableTools(ctx, k.Host, k.Server, k.Agent)
		},
	}
	if settle {
		cfg.Settle = func(ctx context.Context) error {
			_, err := f.cp.Writer.Sync(ctx)
			return err
		}
	}
	return New(cfg)
}

// setLevel changes the agent's consent in the store (not yet applied to SpiceDB).
func (f *fixture) setLevel(k Key, level schema.Level) {
	f.t.Helper()
	if _, err := f.cp.Store.SetConsent(context.Background(), store.Consent{Host: k.Host, AgentID: k.Agent, Server: k.Server, Level: level}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) setEnabled(tool string, level schema.Level, enabled bool) {
	f.t.Helper()
	if _, err := f.cp.Store.PutTool(context.Background(), store.Tool{Host: "acme", Server: "tracker", Name: tool, Level: level, Enabled: enabled}); err != nil {
		f.t.Fatal(err)
	}
}

// rounds drives the notifier by hand: each call is one round of its watcher.
type rounds struct {
	t *testing.T
	n *Notifier
}

func (r *rounds) run() error { return r.n.round(context.Background()) }

func (r *rounds) mustRun() {
	r.t.Helper()
	if err := r.run(); err != nil {
		r.t.Fatal(err)
	}
}

var ctx = context.Background()

func signalled(s *Subscription) bool {
	select {
	case <-s.C:
		return true
	default:
		return false
	}
}

// Only the streams of an agent whose tool set changed are signalled; a change that leaves
// every set as it was signals nothing.
func TestRoundSignalsOnlyTheAgentsWhoseToolsChanged(t *testing.T) {
	f := newFixture(t)
	n := f.notifier(true)
	r := &rounds{t: t, n: n}
	subA1, subA2, subB := n.Subscribe(ctx, f.a), n.Subscribe(ctx, f.a), n.Subscribe(ctx, f.b)
	r.mustRun() // the sets as they are: nothing to tell
	for name, s := range map[string]*Subscription{"a1": subA1, "a2": subA2, "b": subB} {
		if signalled(s) {
			t.Fatalf("%s signalled by its first set", name)
		}
	}

	// An unrelated change moves the generation but no set.
	if _, err := f.cp.Store.CreateUser(context.Background(), store.User{Host: "acme", Email: "bob@acme.test"}); err != nil {
		t.Fatal(err)
	}
	r.mustRun()
	if signalled(subA1) || signalled(subB) {
		t.Fatal("a change that leaves every tool set as it was signalled a stream")
	}

	// Agent a lowered to low: both of a's streams, not b's.
	f.setLevel(f.a, schema.Low)
	r.mustRun()
	if !signalled(subA1) || !signalled(subA2) {
		t.Fatal("a's streams were not signalled when a's level was lowered")
	}
	if signalled(subB) {
		t.Fatal("b's stream was signalled by a change to a")
	}

	// A tool both may call is disabled: both.
	f.setEnabled("list_issues", schema.Low, false)
	r.mustRun()
	if !signalled(subA1) || !signalled(subB) {
		t.Fatal("disabling a tool both agents may call did not signal both")
	}
	// Enabled again: both again (a tool that becomes callable counts as much as one that goes).
	f.setEnabled("list_issues", schema.Low, true)
	r.mustRun()
	if !signalled(subA1) || !signalled(subB) {
		t.Fatal("enabling a tool again did not signal")
	}
	// Several changes before one round are one signal, not a queue.
	f.setLevel(f.b, schema.High)
	f.setLevel(f.b, schema.Low)
	f.setLevel(f.b, schema.High)
	r.mustRun()
	if !signalled(subB) || signalled(subB) {
		t.Fatal("three changes before a round: want exactly one waiting signal")
	}
}

// The round applies the store's pending relationship changes before it computes: a change
// another process committed but has not applied to SpiceDB yet is seen. Without that step the
// same change is missed, which is why the proxy's notifier settles first.
func TestRoundSeesChangesNotYetApplied(t *testing.T) {
	for _, settle := range []bool{true, false} {
		f := newFixture(t)
		r := &rounds{t: t, n: f.notifier(settle)}
		sub := r.n.Subscribe(ctx, f.a)
		r.mustRun()
		f.setLevel(f.a, schema.High) // committed; the outbox is not drained
		r.mustRun()
		if got := signalled(sub); got != settle {
			t.Fatalf("settle=%v: signalled=%v", settle, got)
		}
	}
}

// A failing computation leaves the key stale: the next round computes it again and signals.
func TestFailedRoundIsRetried(t *testing.T) {
	f := newFixture(t)
	var fail atomic.Bool
	n := New(Config{
		Generation: f.cp.Store.ControlGeneration,
		Listed: func(ctx context.Context, k Key) ([]string, error) {
			if fail.Load() {
				return nil, errors.New("backend unavailable")
			}
			return f.cp.Backend.CallableTools(ctx, k.Host, k.Server, k.Agent)
		},
		Settle: func(ctx context.Context) error { _, err := f.cp.Writer.Sync(ctx); return err },
	})
	r := &rounds{t: t, n: n}
	sub := n.Subscribe(ctx, f.a)
	r.mustRun()
	f.setLevel(f.a, schema.Low)
	fail.Store(true)
	if err := r.run(); err == nil {
		t.Fatal("a round whose computation failed reported no error")
	}
	if signalled(sub) {
		t.Fatal("signalled without a computed set")
	}
	fail.Store(false)
	r.mustRun() // the generation has not moved since; the key is still stale
	if !signalled(sub) {
		t.Fatal("the change was lost with the failed round")
	}
}

func TestSubscriptionsAreForgottenWhenClosed(t *testing.T) {
	n := New(Config{
		Generation: func(context.Context) (int64, error) { return 1, nil },
		Listed:     func(context.Context, Key) ([]string, error) { return nil, nil },
	})
	k := Key{Host: "acme", Agent: "a_1", Server: "tracker"}
	s1, s2 := n.Subscribe(ctx, k), n.Subscribe(ctx, k)
	other := n.Subscribe(ctx, Key{Host: "acme", Agent: "a_2", Server: "tracker"})
	if got := n.Subscribed(); got != 2 {
		t.Fatalf("Subscribed() = %d, want 2 keys", got)
	}
	s1.Close()
	s1.Close() // harmless
	if got := n.Subscribed(); got != 2 {
		t.Fatalf("after closing one of two streams of a key: %d keys, want 2", got)
	}
	s2.Close()
	other.Close()
	if got := n.Subscribed(); got != 0 {
		t.Fatalf("after closing every stream: %d keys, want 0", got)
	}
}

// Run, the one watcher goroutine: a change reaches the subscribed stream, and once the streams
// are closed and the context ends nothing is left running.
func TestRunNotifiesAndLeavesNothingRunning(t *testing.T) {
	f := newFixture(t)
	before := runtime.NumGoroutine()
	n := f.notifier(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()

	sub := n.Subscribe(ctx, f.a) // computes the key's first set before it returns
	f.setLevel(f.a, schema.Low)
	started := time.Now()
	select {
	case <-sub.C:
		t.Logf("notified %v after the change was committed", time.Since(started).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s of the change")
	}
	sub.Close()
	cancel()
	<-done
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
