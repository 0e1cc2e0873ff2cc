package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// replay applies changes in order to a tuple set: touch adds, delete removes.
func replay(set map[string]bool, changes []store.RelationshipChange) {
	for _, c := range changes {
		switch c.Op {
		case store.Touch:
			set[c.Relationship.String()] = true
		case store.Delete:
			delete(set, c.Relationship.String())
		}
	}
}

// assertOutboxReplayMatches drains the outbox into replayed and checks that the result is exactly
// what Relationships derives from the rows.
func assertOutboxReplayMatches(t *testing.T, s store.Store, replayed map[string]bool) {
	t.Helper()
	replay(replayed, drainAll(t, s))
	want := relationshipSet(t, s)
	var missing, extra []string
	for k := range want {
		if !replayed[k] {
			missing = append(missing, k)
		}
	}
	for k := range replayed {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("outbox replay disagrees with Relationships:\n missing from replay: %v\n only in replay: %v", missing, extra)
	}
	if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
		t.Fatalf("%d changes pending after a full drain", n)
	}
}

// testOutboxAgreesWithRelationships applies a long random sequence of mutations, replays the
// outbox in order (in random-sized drains) and compares with Relationships at checkpoints.
func testOutboxAgreesWithRelationships(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		const steps = 800
		rng := rand.New(rand.NewPCG(20240601, uint64(len(t.Name()))))
		m := &mutator{t: t, s: s, rng: rng}
		replayed := map[string]bool{}
		counts := map[string]int{}
		for i := 0; i < steps; i++ {
			op := m.step()
			counts[op]++
			if rng.IntN(7) == 0 { // a partial drain, in order
				limit := 1 + rng.IntN(6)
				_, err := s.DrainRelationshipChanges(ctx, limit, func(_ context.Context, cs []store.RelationshipChange) error {
					if len(cs) > limit {
						t.Fatalf("drain of limit %d handed out %d changes", limit, len(cs))
					}
					replay(replayed, cs)
					return nil
				})
				noErr(t, "partial drain", err)
			}
			if i%100 == 99 {
				assertOutboxReplayMatches(t, s, replayed)
			}
		}
		assertOutboxReplayMatches(t, s, replayed)
		// The sequence must really have exercised the cascades.
		for _, op := range []string{"DeleteHost", "DeleteUser", "DeleteServer", "DeleteAgent", "SetConsent", "PutTool", "SetGrant", "DeleteTool", "DeleteGrant", "DeleteConsent",
			"UpdateUser", "KillAgent", "SetConsent (agent disabled)"} {
			if counts[op] == 0 {
				t.Errorf("the random sequence never ran %s successfully: %v", op, counts)
			}
		}
		t.Logf("successful operations: %v; final tuples: %d", counts, len(replayed))
	})
}

// mutator makes random, mostly valid mutations over a small key space, so that objects collide,
// cascade and change level often.
type mutator struct {
	t   *testing.T
	s   store.Store
	rng *rand.Rand
}

var (
	mutHosts   = []string{"h1", "h2"}
	mutServers = []string{"s1", "s2", "s3"}
	mutTools   = []string{"read", "write", "drop table"}
	mutUsers   = []string{"u1", "u2", "u3", "u4"}
	mutAgents  = []string{"a1", "a2", "a3", "a4", "a5"}
)

func (m *mutator) pick(xs []string) string { return xs[m.rng.IntN(len(xs))] }
func (m *mutator) level() schema.Level     { return schema.Levels[m.rng.IntN(len(schema.Levels))] }

// choose picks, most of the time, one of the keys that exist, else any key of the space, so
// that both successes and refusals happen.
func (m *mutator) choose(existing, space []string) string {
	if len(existing) > 0 && m.rng.IntN(10) < 9 {
		return m.pick(existing)
	}
	return m.pick(space)
}

func (m *mutator) user(h string) string {
	var ids []string
	us, _ := m.s.ListUsers(ctx, h)
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return m.choose(ids, mutUsers)
}

func (m *mutator) server(h string) string {
	var keys []string
	ss, _ := m.s.ListServers(ctx, h)
	for _, sv := range ss {
		keys = append(keys, sv.Key)
	}
	return m.choose(keys, mutServers)
}

func (m *mutator) agent(h string) string {
	var ids []string
	as, _ := m.s.ListAgents(ctx, h, "")
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return m.choose(ids, mutAgents)
}

func (m *mutator) tool(h, server string) string {
	var names []string
	ts, _ := m.s.ListTools(ctx, h, server)
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return m.choose(names, mutTools)
}

// grantKey picks, most of the time, an existing grant's server and human.
func (m *mutator) grantKey(h string) (server, userID string) {
	gs, _ := m.s.ListGrants(ctx, h, "")
	if len(gs) > 0 && m.rng.IntN(10) < 8 {
		g := gs[m.rng.IntN(len(gs))]
		return g.Server, g.UserID
	}
	return m.server(h), m.user(h)
}

// consentKey picks, most of the time, an existing consent's agent and server.
func (m *mutator) consentKey(h string) (agentID, server string) {
	cs, _ := m.s.ListConsents(ctx, h, "")
	if len(cs) > 0 && m.rng.IntN(10) < 8 {
		c := cs[m.rng.IntN(len(cs))]
		return c.AgentID, c.Server
	}
	return m.agent(h), m.server(h)
}

// consentTarget picks, most of the time, an agent and a server its human has a grant on.
func (m *mutator) consentTarget(h string) (agentID, server string) {
	agentID, server = m.agent(h), m.server(h)
	a, err := m.s.GetAgent(ctx, h, agentID)
	if err != nil || m.rng.IntN(10) < 2 {
		return agentID, server
	}
	if gs, _ := m.s.ListGrants(ctx, h, a.UserID); len(gs) > 0 {
		server = gs[m.rng.IntN(len(gs))].Server
	}
	return agentID, server
}

// consentLevel is usually within the human's ceiling, when there is one.
func (m *mutator) consentLevel(h, agentID, server string) schema.Level {
	a, err := m.s.GetAgent(ctx, h, agentID)
	if err != nil || m.rng.IntN(4) == 0 {
		return m.level()
	}
	g, err := m.s.GetGrant(ctx, h, server, a.UserID)
	if err != nil {
		return m.level()
	}
	return schema.Levels[m.rng.IntN(int(g.Ceiling))]
}

// step runs one random mutation and returns its name, marked when it was refused. Expected
// refusals (missing parent, duplicate, consent above ceiling) are fine; any other error fails the
// test.
func (m *mutator) step() string {
	h := m.pick(mutHosts)
	var name string
	var err error
	switch r := m.rng.IntN(1000); {
	case r < 3:
		name, err = "DeleteHost", m.s.DeleteHost(ctx, h)
	case r < 30:
		name = "CreateHost"
		_, err = m.s.CreateHost(ctx, store.Host{Key: h})
	case r < 110:
		u := m.pick(mutUsers)
		name = "CreateUser"
		_, err = m.s.CreateUser(ctx, store.User{Host: h, ID: u, Email: u + "@example.com", Admin: m.rng.IntN(3) == 0})
	case r < 135:
		name, err = "DeleteUser", m.s.DeleteUser(ctx, h, m.user(h))
	case r < 195:
		name = "CreateServer"
		_, err = m.s.CreateServer(ctx, store.Server{Host: h, Key: m.pick(mutServers)})
	case r < 215:
		name, err = "DeleteServer", m.s.DeleteServer(ctx, h, m.server(h))
	case r < 335:
		name = "PutTool"
		_, err = m.s.PutTool(ctx, store.Tool{Host: h, Server: m.server(h), Name: m.pick(mutTools), Level: m.level(), Enabled: m.rng.IntN(3) > 0})
	case r < 365:
		sv := m.server(h)
		name, err = "DeleteTool", m.s.DeleteTool(ctx, h, sv, m.tool(h, sv))
	case r < 495:
		name = "SetGrant"
		_, err = m.s.SetGrant(ctx, store.Grant{Host: h, Server: m.server(h), UserID: m.user(h), Ceiling: m.level()})
	case r < 525:
		sv, u := m.grantKey(h)
		name, err = "DeleteGrant", m.s.DeleteGrant(ctx, h, sv, u)
	case r < 645:
		name = "CreateAgent"
		_, err = m.s.CreateAgent(ctx, store.Agent{Host: h, ID: m.pick(mutAgents), UserID: m.user(h), Disabled: m.rng.IntN(8) == 0})
	case r < 670:
		name, err = "DeleteAgent", m.s.DeleteAgent(ctx, h, m.agent(h))
	case r < 705:
		name = "UpdateUser"
		_, err = m.s.UpdateUser(ctx, store.User{Host: h, ID: m.user(h), Admin: m.rng.IntN(2) == 0})
	case r < 725:
		name = "KillAgent"
		_, err = m.s.KillAgent(ctx, h, m.agent(h))
	case r < 735:
		// Writes that must leave the outbox alone.
		switch m.rng.IntN(4) {
		case 0:
			name = "UpdateAgent"
			_, err = m.s.UpdateAgent(ctx, store.Agent{Host: h, ID: m.agent(h), Name: "renamed", Type: "chat"})
		case 1:
			name, err = "TouchAgent", m.s.TouchAgent(ctx, h, m.agent(h), time.Now())
		case 2:
			name, err = "TouchUser", m.s.TouchUser(ctx, h, m.user(h), time.Now())
		default:
			name = "UpdateServer"
			_, err = m.s.UpdateServer(ctx, store.Server{Host: h, Key: m.server(h), Name: "renamed"})
		}
	case r < 940:
		a, sv := m.consentTarget(h)
		name = "SetConsent"
		_, err = m.s.SetConsent(ctx, store.Consent{Host: h, AgentID: a, Server: sv, Level: m.consentLevel(h, a, sv)})
	default:
		a, sv := m.consentKey(h)
		name, err = "DeleteConsent", m.s.DeleteConsent(ctx, h, a, sv)
	}
	switch {
	case err == nil:
		return name
	case errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "is disabled"):
		return name + " (agent disabled)"
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		return name + " (refused)"
	default:
		m.t.Fatalf("%s: unexpected error %v", name, err)
		return ""
	}
}

// testOutboxEntries checks the exact changes of each kind of mutation.
func testOutboxEntries(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		expect := func(what string, want ...schema.Relationship) func(ops ...store.ChangeOp) {
			return func(ops ...store.ChangeOp) {
				t.Helper()
				got := changeStrings(drainAll(t, s))
				var w []string
				for i, r := range want {
					w = append(w, string(ops[i])+" "+r.String())
				}
				slices.Sort(got)
				slices.Sort(w)
				if !slices.Equal(got, w) {
					t.Fatalf("%s: outbox\n got %q\nwant %q", what, got, w)
				}
			}
		}
		T, D := store.Touch, store.Delete

		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		expect("CreateHost")()
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
		expect("CreateUser", schema.HostMember("acme", "alice"))(T)
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "gh"}))
		expect("CreateServer", schema.ServerHost("acme", "gh"))(T)

		put := func(level schema.Level, enabled bool) {
			must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "merge pr", Level: level, Enabled: enabled}))
		}
		put(schema.Medium, true)
		expect("PutTool new", schema.ToolLevel("acme", "gh", "merge pr", schema.Medium))(T)
		put(schema.Medium, true)
		expect("PutTool same level", schema.ToolLevel("acme", "gh", "merge pr", schema.Medium))(T)
		put(schema.High, true)
		expect("PutTool level change", schema.ToolLevel("acme", "gh", "merge pr", schema.Medium), schema.ToolLevel("acme", "gh", "merge pr", schema.High))(D, T)
		put(schema.High, false)
		expect("PutTool disable", schema.ToolLevel("acme", "gh", "merge pr", schema.High))(D)
		put(schema.Low, false)
		expect("PutTool disabled stays disabled")()
		put(schema.Low, true)
		expect("PutTool enable", schema.ToolLevel("acme", "gh", "merge pr", schema.Low))(T)

		// A grant has no relationship of its own: each consenting agent carries its ceiling.
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.High}))
		expect("SetGrant new")()
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.Medium}))
		expect("SetGrant change without consents")()

		must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "claude", UserID: "alice"}))
		at := schema.AgentTuples("acme", "claude", "alice")
		expect("CreateAgent", at...)(T, T, T)

		ceiling := func(l schema.Level) schema.Relationship { return schema.Ceiling("acme", "gh", "claude", l) }
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Low}))
		expect("SetConsent new", schema.Grant("acme", "gh", "claude", schema.Low), ceiling(schema.Medium))(T, T)
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Medium}))
		expect("SetConsent change", schema.Grant("acme", "gh", "claude", schema.Low), schema.Grant("acme", "gh", "claude", schema.Medium), ceiling(schema.Medium))(D, T, T)
		_, err := s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.High})
		wantErr(t, "consent above ceiling", err, store.ErrConflict)
		expect("refused SetConsent")()

		noErr(t, "delete consent", s.DeleteConsent(ctx, "acme", "claude", "gh"))
		expect("DeleteConsent", schema.Grant("acme", "gh", "claude", schema.Medium), ceiling(schema.Medium))(D, D)
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Low}))
		expect("SetConsent again", schema.Grant("acme", "gh", "claude", schema.Low), ceiling(schema.Medium))(T, T)
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.High}))
		expect("SetGrant change with a consent", ceiling(schema.Medium), ceiling(schema.High))(D, T)
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.High}))
		expect("SetGrant unchanged")()
		noErr(t, "delete grant", s.DeleteGrant(ctx, "acme", "gh", "alice"))
		expect("DeleteGrant", ceiling(schema.High), schema.Grant("acme", "gh", "claude", schema.Low))(D, D)
		noErr(t, "delete tool", s.DeleteTool(ctx, "acme", "gh", "merge pr"))
		expect("DeleteTool", schema.ToolLevel("acme", "gh", "merge pr", schema.Low))(D)
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "off", Level: schema.Low}))
		expect("PutTool disabled new")()
		noErr(t, "delete tool", s.DeleteTool(ctx, "acme", "gh", "off"))
		expect("DeleteTool disabled")()

		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Low})
		wantErr(t, "consent without grant", err, store.ErrConflict)
		expect("refused SetConsent without grant")()

		// Cascades: everything hanging off the deleted object goes, tuple by tuple.
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "read", Level: schema.Low, Enabled: true}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.High}))
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.High}))
		drainAll(t, s)
		noErr(t, "delete agent", s.DeleteAgent(ctx, "acme", "claude"))
		expect("DeleteAgent", append(at, schema.Grant("acme", "gh", "claude", schema.High), ceiling(schema.High))...)(D, D, D, D, D)

		must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "claude", UserID: "alice"}))
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Medium}))
		drainAll(t, s)
		noErr(t, "delete server", s.DeleteServer(ctx, "acme", "gh"))
		expect("DeleteServer",
			schema.ServerHost("acme", "gh"),
			schema.ToolLevel("acme", "gh", "read", schema.Low),
			ceiling(schema.High),
			schema.Grant("acme", "gh", "claude", schema.Medium))(D, D, D, D)

		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "gh"}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "gh", UserID: "alice", Ceiling: schema.Low}))
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: "gh", Level: schema.Low}))
		drainAll(t, s)
		noErr(t, "delete user", s.DeleteUser(ctx, "acme", "alice"))
		expect("DeleteUser", append(at,
			schema.HostMember("acme", "alice"),
			ceiling(schema.Low),
			schema.Grant("acme", "gh", "claude", schema.Low))...)(D, D, D, D, D, D)

		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		expect("DeleteHost", schema.ServerHost("acme", "gh"))(D)
	})
}

func testDrain(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		calls := 0
		n, err := s.DrainRelationshipChanges(ctx, 10, func(context.Context, []store.RelationshipChange) error {
			calls++
			return nil
		})
		if err != nil || n != 0 || calls != 0 {
			t.Fatalf("drain of an empty outbox: n=%d err=%v apply calls=%d; want 0, nil, 0", n, err, calls)
		}

		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		for i := range 5 {
			must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: fmt.Sprintf("u%d", i), Email: fmt.Sprintf("u%d@x.io", i)}))
		}
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 5 {
			t.Fatalf("pending = %d, want 5", n)
		}

		boom := errors.New("spicedb is down")
		var seen []store.RelationshipChange
		n, err = s.DrainRelationshipChanges(ctx, 3, func(_ context.Context, cs []store.RelationshipChange) error {
			seen = cs
			return boom
		})
		if !errors.Is(err, boom) || n != 0 {
			t.Fatalf("drain with failing apply: n=%d err=%v; want 0 and the apply error", n, err)
		}
		if len(seen) != 3 {
			t.Fatalf("apply got %d changes, want the limit 3", len(seen))
		}
		if p := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); p != 5 {
			t.Fatalf("pending after failed apply = %d, want 5 (nothing removed)", p)
		}

		var first []store.RelationshipChange
		n, err = s.DrainRelationshipChanges(ctx, 3, func(_ context.Context, cs []store.RelationshipChange) error {
			first = cs
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("drain: n=%d err=%v, want 3", n, err)
		}
		if !slices.Equal(changeStrings(first), changeStrings(seen)) {
			t.Fatalf("the retried drain handed out other changes:\n%v\n%v", changeStrings(first), changeStrings(seen))
		}
		for i, c := range first {
			want := schema.HostMember("acme", fmt.Sprintf("u%d", i))
			if c.Op != store.Touch || c.Relationship != want {
				t.Fatalf("change %d = %s %s, want touch %s (oldest first)", i, c.Op, c.Relationship, want)
			}
			if i > 0 && c.ID <= first[i-1].ID {
				t.Fatalf("ids not increasing: %d after %d", c.ID, first[i-1].ID)
			}
		}
		if p := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); p != 2 {
			t.Fatalf("pending after draining 3 = %d, want 2", p)
		}

		// A later write lands behind the remaining ones; limit <= 0 drains everything.
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u5", Email: "u5@x.io"}))
		rest := drainAll(t, s)
		var ids []string
		for _, c := range rest {
			ids = append(ids, strings.TrimPrefix(c.Relationship.Subject.Object.ID, "acme/"))
			if c.ID <= first[len(first)-1].ID {
				t.Fatalf("change id %d was already drained", c.ID)
			}
		}
		if want := []string{"u3", "u4", "u5"}; !slices.Equal(ids, want) {
			t.Fatalf("rest of the outbox = %v, want %v", ids, want)
		}
		if p := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); p != 0 {
			t.Fatalf("pending after a full drain = %d", p)
		}
		n, err = s.DrainRelationshipChanges(ctx, -1, func(context.Context, []store.RelationshipChange) error {
			t.Fatal("apply called for an empty outbox")
			return nil
		})
		if err != nil || n != 0 {
			t.Fatalf("drain of the emptied outbox: n=%d err=%v", n, err)
		}
	})
}

// testDrainAllowsReadsMeanwhile: apply may read the store (on another connection) while the drain
// transaction is open.
func testDrainAllowsReadsMeanwhile(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := s.DrainRelationshipChanges(actx, 0, func(ctx context.Context, cs []store.RelationshipChange) error {
			if _, err := s.GetUser(ctx, "acme", "alice"); err != nil {
				return err
			}
			if p, err := s.PendingRelationshipChanges(ctx); err != nil || p != 1 {
				return fmt.Errorf("pending during drain = %d, %v; want 1 (not yet committed)", p, err)
			}
			return relationshipsErr(s.Relationships(ctx, func(schema.Relationship) error { return nil }))
		})
		if err != nil || n != 1 {
			t.Fatalf("drain with reads in apply: n=%d err=%v", n, err)
		}
	})
}

func relationshipsErr(err error) error {
	if err != nil {
		return fmt.Errorf("read the relationships: %w", err)
	}
	return nil
}

// testConcurrentDrains: drains from several goroutines never run apply at the same time, never
// hand out a change twice, lose none, and hand them out in order.
func testConcurrentDrains(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		const users = 60
		for i := range users {
			must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: fmt.Sprintf("u%02d", i), Email: fmt.Sprintf("u%d@x.io", i)}))
		}
		type batch struct {
			worker, attempt int
			ids             []int64
		}
		var mu sync.Mutex
		var log []batch                // every apply call, in the order they ran
		committed := map[[2]int]bool{} // (worker, attempt) of the apply calls whose drain committed
		var running atomic.Int32       // apply calls in progress
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				attempt := 0
				for {
					var last int
					n, err := s.DrainRelationshipChanges(ctx, 7, func(_ context.Context, cs []store.RelationshipChange) error {
						if running.Add(1) != 1 {
							t.Errorf("worker %d: two drains apply at the same time", w)
						}
						defer running.Add(-1)
						mu.Lock()
						attempt++
						last = attempt
						b := batch{worker: w, attempt: attempt}
						for _, c := range cs {
							b.ids = append(b.ids, c.ID)
						}
						log = append(log, b)
						mu.Unlock()
						time.Sleep(time.Millisecond) // widen the window for overlap
						return nil
					})
					if err != nil {
						t.Errorf("worker %d: drain: %v", w, err)
						return
					}
					if n == 0 {
						return
					}
					mu.Lock()
					committed[[2]int{w, last}] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		var all []int64
		for _, b := range log {
			if committed[[2]int{b.worker, b.attempt}] {
				all = append(all, b.ids...)
			}
		}
		if len(all) != users {
			t.Fatalf("drained %d changes in total, want %d (duplicates or losses)", len(all), users)
		}
		for i := 1; i < len(all); i++ {
			if all[i] <= all[i-1] {
				t.Fatalf("change %d handed out after %d: out of order or twice (sequence %v)", all[i], all[i-1], all)
			}
		}
		if p := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); p != 0 {
			t.Fatalf("pending after concurrent drains = %d", p)
		}
	})
}

// testConcurrentWriters: mutations racing on the same rows all land, each with the right outbox
// rows. Every round starts the writers together on rows that do not exist yet, so that upserts
// race to insert them.
func testConcurrentWriters(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
		must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "claude", UserID: "alice"}))
		const writers, rounds = 4, 6
		for round := range rounds {
			server := fmt.Sprintf("s%d", round)
			must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: server}))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					level := schema.Levels[(w+round)%3]
					if _, err := s.SetGrant(ctx, store.Grant{Host: "acme", Server: server, UserID: "alice", Ceiling: level}); err != nil {
						t.Errorf("SetGrant: %v", err)
					}
					if _, err := s.PutTool(ctx, store.Tool{Host: "acme", Server: server, Name: "t", Level: level, Enabled: w%2 == 0}); err != nil {
						t.Errorf("PutTool: %v", err)
					}
					_, err := s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "claude", Server: server, Level: schema.Low})
					if err != nil {
						t.Errorf("SetConsent: %v", err)
					}
					if _, err := s.CreateUser(ctx, store.User{Host: "acme", ID: fmt.Sprintf("u%d", round), Email: fmt.Sprintf("u%d@x.io", round)}); err != nil && !errors.Is(err, store.ErrConflict) {
						t.Errorf("CreateUser racing on one id: %v, want success or ErrConflict", err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
		}
		assertOutboxReplayMatches(t, s, map[string]bool{})
	})
}

// testPendingHosts: the hosts with changes not yet drained, each with its count and the time of
// its oldest change, and none once drained.
func testPendingHosts(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		if hosts := must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx)); len(hosts) != 0 {
			t.Fatalf("pending hosts of an empty outbox: %+v", hosts)
		}
		before := time.Now().Add(-time.Second)
		for _, host := range []string{"globex", "acme"} {
			must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: host}))
		}
		for i := range 3 {
			must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: fmt.Sprintf("u%d", i), Email: fmt.Sprintf("u%d@x.io", i)}))
		}
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "globex", ID: "g0", Email: "g0@x.io"}))
		hosts := must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx))
		if len(hosts) != 2 || hosts[0].Host != "acme" || hosts[1].Host != "globex" {
			t.Fatalf("pending hosts %+v, want acme and globex, sorted", hosts)
		}
		total := must[int](t, "pending")(s.PendingRelationshipChanges(ctx))
		if hosts[0].Pending < 3 || hosts[1].Pending < 1 || hosts[0].Pending+hosts[1].Pending != total {
			t.Fatalf("pending hosts %+v: want at least acme's 3 and globex's 1 changes, %d in all", hosts, total)
		}
		for _, h := range hosts {
			if h.Oldest.Before(before) || h.Oldest.After(time.Now().Add(time.Second)) || h.Quarantined != 0 {
				t.Fatalf("pending host %+v: want its oldest change made during the test, nothing set aside", h)
			}
		}
		drainAll(t, s)
		if hosts := must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx)); len(hosts) != 0 {
			t.Fatalf("pending hosts after a full drain: %+v", hosts)
		}
	})
}

// setAsideAll drains the outbox, setting every change aside with reason, and returns them.
func setAsideAll(t *testing.T, s store.Store, reason string) []store.RelationshipChange {
	t.Helper()
	var all []store.RelationshipChange
	_, err := s.DrainRelationshipChanges(ctx, 0, func(_ context.Context, cs []store.RelationshipChange) error {
		all = cs
		refused := map[int64]string{}
		for _, c := range cs {
			refused[c.ID] = reason
		}
		return &store.SetAside{Refused: refused}
	})
	if err != nil {
		t.Fatalf("drain setting changes aside: %v", err)
	}
	return all
}

// testQuarantine: changes a drain sets aside leave the outbox for the quarantine, where their
// host still counts as pending; a retry queues what the store implies now, a discard removes
// the change, and an unknown id is ErrNotFound.
func testQuarantine(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u0", Email: "u0@x.io"}))
		drainAll(t, s)
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u1", Email: "u1@x.io"}))
		aside := setAsideAll(t, s, "refused: no such relation")
		if len(aside) != 1 || aside[0].Relationship != schema.HostMember("acme", "u1") {
			t.Fatalf("set aside %v, want u1's membership", changeStrings(aside))
		}
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("%d changes in the outbox after setting them aside", n)
		}
		hosts := must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx))
		if len(hosts) != 1 || hosts[0].Host != "acme" || hosts[0].Quarantined != 1 || hosts[0].Pending != 0 {
			t.Fatalf("pending hosts %+v, want acme with one change set aside", hosts)
		}
		list := must[[]store.QuarantinedChange](t, "list quarantine")(s.ListQuarantinedChanges(ctx, ""))
		if len(list) != 1 || list[0].ID != aside[0].ID || list[0].Op != store.Touch || list[0].Relationship != aside[0].Relationship ||
			list[0].Host != "acme" || list[0].Reason != "refused: no such relation" || list[0].CreatedAt.IsZero() || list[0].QuarantinedAt.Before(list[0].CreatedAt) {
			t.Fatalf("quarantine %+v", list)
		}
		if other := must[[]store.QuarantinedChange](t, "list quarantine")(s.ListQuarantinedChanges(ctx, "globex")); len(other) != 0 {
			t.Fatalf("another host's quarantine: %+v", other)
		}

		// Retried: u1 exists, so the touch is queued again; the quarantine is empty.
		_, op, err := s.RetryQuarantinedChange(ctx, list[0].ID)
		if err != nil || op != store.Touch {
			t.Fatalf("retry: %v %v, want a touch", op, err)
		}
		requeued := drainAll(t, s)
		if len(requeued) != 1 || requeued[0].Op != store.Touch || requeued[0].Relationship != schema.HostMember("acme", "u1") {
			t.Fatalf("queued by the retry: %v", changeStrings(requeued))
		}
		if _, _, err := s.RetryQuarantinedChange(ctx, list[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retry of a change no longer set aside: %v, want ErrNotFound", err)
		}

		// A change of a row deleted since: the retry queues a delete. A discard queues nothing.
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u2", Email: "u2@x.io"}))
		aside = setAsideAll(t, s, "refused")
		if err := s.DeleteUser(ctx, "acme", "u2"); err != nil {
			t.Fatal(err)
		}
		drainAll(t, s)
		if _, op, err := s.RetryQuarantinedChange(ctx, aside[0].ID); err != nil || op != store.Delete {
			t.Fatalf("retry of a change whose row is gone: %v %v, want a delete", op, err)
		}
		aside = setAsideAll(t, s, "refused again")
		if _, err := s.DiscardQuarantinedChange(ctx, aside[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DiscardQuarantinedChange(ctx, aside[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("discard twice: %v, want ErrNotFound", err)
		}
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("a discard queued %d changes", n)
		}
		if hosts := must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx)); len(hosts) != 0 {
			t.Fatalf("pending hosts after everything was resolved: %+v", hosts)
		}
	})
}

// testDeleteHostReleasesQuarantine: deleting a host takes its set-aside changes with it — a
// refused touch is dropped (it was never applied), a refused delete is queued again (the
// relationship may still be in the backend) — so a host made again with the same key does not
// inherit them and fail closed; another host's stay.
func testDeleteHostReleasesQuarantine(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		for _, host := range []string{"acme", "globex"} {
			must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: host}))
		}
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u0", Email: "u0@x.io"}))
		drainAll(t, s)
		// A refused delete (u0 removed) and a refused touch (u1 added) on acme; one on globex.
		noErr(t, "delete user", s.DeleteUser(ctx, "acme", "u0"))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "u1", Email: "u1@x.io"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "globex", ID: "g0", Email: "g0@x.io"}))
		setAsideAll(t, s, "refused")
		if list := must[[]store.QuarantinedChange](t, "list quarantine")(s.ListQuarantinedChanges(ctx, "acme")); len(list) != 2 {
			t.Fatalf("acme's set-aside changes: %+v, want 2", list)
		}

		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		if list := must[[]store.QuarantinedChange](t, "list quarantine")(s.ListQuarantinedChanges(ctx, "acme")); len(list) != 0 {
			t.Fatalf("set-aside changes of a deleted host: %+v", list)
		}
		if list := must[[]store.QuarantinedChange](t, "list quarantine")(s.ListQuarantinedChanges(ctx, "globex")); len(list) != 1 {
			t.Fatalf("globex's set-aside changes after acme was deleted: %+v, want its one", list)
		}
		queued := drainAll(t, s)
		var deletes []string
		for _, c := range queued {
			if c.Op != store.Delete {
				t.Errorf("deleting a host queued %s %s", c.Op, c.Relationship)
			}
			if c.Relationship == schema.HostMember("acme", "u0") {
				deletes = append(deletes, c.Relationship.String())
			}
			if c.Relationship == schema.HostMember("acme", "u1") && c.Op == store.Touch {
				t.Errorf("the refused touch was queued again: %s", c.Relationship)
			}
		}
		if len(deletes) != 1 {
			t.Errorf("the refused delete of u0's membership was queued %d times, want once: %v", len(deletes), changeStrings(queued))
		}

		// The same key again: nothing is pending for it.
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		drainAll(t, s)
		for _, h := range must[[]store.PendingHost](t, "pending hosts")(s.PendingRelationshipHosts(ctx)) {
			if h.Host == "acme" {
				t.Fatalf("the new host acme inherits %+v", h)
			}
		}
	})
}
