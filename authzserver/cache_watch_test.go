package authzserver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"

	"github.com/trustgate/trustgate/schema"
)

// countingPermissions counts the questions that reach SpiceDB.
type countingPermissions struct {
	v1.PermissionsServiceClient
	checks, lookups atomic.Int64
}

func (p *countingPermissions) CheckPermission(ctx context.Context, in *v1.CheckPermissionRequest, opts ...grpc.CallOption) (*v1.CheckPermissionResponse, error) {
	p.checks.Add(1)
	return p.PermissionsServiceClient.CheckPermission(ctx, in, opts...)
}

func (p *countingPermissions) LookupResources(ctx context.Context, in *v1.LookupResourcesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[v1.LookupResourcesResponse], error) {
	p.lookups.Add(1)
	return p.PermissionsServiceClient.LookupResources(ctx, in, opts...)
}

// hostGrants is a complete, allowed path for agent a_1 of user u_1 of host to call srv/tool.
func hostGrants(host string) []Update {
	rels := append([]schema.Relationship{
		schema.HostMember(host, "u_1"), schema.ServerHost(host, "srv"),
		schema.ToolLevel(host, "srv", "tool", schema.Low), schema.Ceiling(host, "srv", "a_1", schema.High),
		schema.Grant(host, "srv", "a_1", schema.Low),
	}, schema.AgentTuples(host, "a_1", "u_1")...)
	updates := make([]Update, len(rels))
	for i, r := range rels {
		updates[i] = Update{Op: OpTouch, Relationship: r}
	}
	return updates
}

func callOf(host string) CheckRequest {
	return CheckRequest{Resource: schema.Tool(host, "srv", "tool"), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent(host, "a_1")}}
}

// watchedCache starts an embedded SpiceDB holding the grants of hosts, wraps it in a decision
// cache whose SpiceDB questions are counted, and waits until its watch is live.
func watchedCache(t *testing.T, hosts ...string) (*SpiceDB, *DecisionCache, *countingPermissions) {
	t.Helper()
	ctx := context.Background()
	b, err := StartEmbedded(ctx, EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		write(t, b, hostGrants(h)...)
	}
	counting := &countingPermissions{PermissionsServiceClient: b.permissions}
	b.permissions = counting
	c, err := NewDecisionCache(ctx, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, c)
	return b, c, counting
}

func write(t *testing.T, b Backend, updates ...Update) {
	t.Helper()
	if _, err := b.WriteRelationships(context.Background(), updates); err != nil {
		t.Fatal(err)
	}
}

// waitDelivered waits until the cache's watch is live and has delivered the head revision.
func waitDelivered(t *testing.T, c *DecisionCache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		head, err := c.ds.HeadRevision(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.index.mu.RLock()
		done := c.index.live && atLeast(c.index.checkpoint, head.Revision)
		c.index.mu.RUnlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the decision cache's watch did not deliver the head revision within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func expectCheck(t *testing.T, c Backend, req CheckRequest, want bool, what string) {
	t.Helper()
	got, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: allowed = %v, want %v", what, got, want)
	}
}

// A write for host beta leaves host acme's cached answers in place: once the watch has
// delivered it, acme's repeated questions do not reach SpiceDB.
func TestCacheKeepsAnswersOfHostsAWriteDoesNotTouch(t *testing.T) {
	b, c, counting := watchedCache(t, "acme", "beta")
	ctx := context.Background()
	expectCheck(t, c, callOf("acme"), true, "first check")
	if names, err := c.CallableTools(ctx, "acme", "srv", "a_1"); err != nil || !slices.Equal(names, []string{"tool"}) {
		t.Fatalf("callable tools = %v, %v", names, err)
	}
	checks, lookups := counting.checks.Load(), counting.lookups.Load()
	for i := range 20 {
		op := OpDelete
		if i%2 == 1 {
			op = OpTouch
		}
		write(t, b, Update{Op: op, Relationship: schema.Grant("beta", "srv", "a_1", schema.Low)})
		waitDelivered(t, c)
		expectCheck(t, c, callOf("acme"), true, "acme's check after a write for beta")
		expectCheck(t, c, callOf("beta"), i%2 == 1, "beta's check after a write for beta")
		if names, err := c.CallableTools(ctx, "acme", "srv", "a_1"); err != nil || !slices.Equal(names, []string{"tool"}) {
			t.Fatalf("acme's callable tools after a write for beta = %v, %v", names, err)
		}
	}
	if n := counting.checks.Load() - checks; n != 20 {
		t.Errorf("%d checks reached SpiceDB; want 20 (beta's only: acme's answer stays cached)", n)
	}
	if n := counting.lookups.Load() - lookups; n != 0 {
		t.Errorf("%d tool lookups reached SpiceDB after writes for another host; want 0", n)
	}
}

// A write for host acme evicts acme's answers: the very next check asks SpiceDB and reflects
// it, whether the watch has delivered the write yet or not.
func TestCacheEvictsAnswersOfTheHostAWriteTouches(t *testing.T) {
	b, c, counting := watchedCache(t, "acme", "beta")
	grant := schema.Grant("acme", "srv", "a_1", schema.Low)
	for i := range 20 {
		expectCheck(t, c, callOf("acme"), true, "granted check")
		expectCheck(t, c, callOf("acme"), true, "repeated granted check")
		before := counting.checks.Load()
		var writer Backend = c
		if i%2 == 1 {
			writer = b // beside the cache, as the relationship writer does
		}
		write(t, writer, Update{Op: OpDelete, Relationship: grant})
		expectCheck(t, c, callOf("acme"), false, "the check right after the revocation")
		if counting.checks.Load() == before {
			t.Fatal("the check after a write for its host was answered from the cache")
		}
		if i%4 < 2 {
			waitDelivered(t, c)
		}
		expectCheck(t, c, callOf("acme"), false, "the repeated check after the revocation")
		if ok, err := c.CallableTools(context.Background(), "acme", "srv", "a_1"); err != nil || len(ok) != 0 {
			t.Fatalf("callable tools after the revocation = %v, %v", ok, err)
		}
		write(t, writer, Update{Op: OpTouch, Relationship: grant})
	}
}

// With the watch stopped, a write for another host makes the next check ask SpiceDB again (the
// exact-revision rule), and revocations are still enforced at once.
func TestCacheWithoutWatchFallsBackToTheExactRevision(t *testing.T) {
	b, c, counting := watchedCache(t, "acme", "beta")
	expectCheck(t, c, callOf("acme"), true, "first check")
	c.StopWatch()
	c.StopWatch() // harmless
	before := counting.checks.Load()
	write(t, b, Update{Op: OpDelete, Relationship: schema.Grant("beta", "srv", "a_1", schema.Low)})
	expectCheck(t, c, callOf("acme"), true, "acme's check after a write for beta")
	if counting.checks.Load() == before {
		t.Fatal("without a watch, a cached answer was reused at a newer revision")
	}
	expectCheck(t, c, callOf("acme"), true, "the same check at the same revision")
	if n := counting.checks.Load() - before; n != 1 {
		t.Fatalf("%d checks reached SpiceDB; want 1 (the second at the same revision is cached)", n)
	}
	write(t, b, Update{Op: OpDelete, Relationship: schema.Grant("acme", "srv", "a_1", schema.Low)})
	expectCheck(t, c, callOf("acme"), false, "the check right after the revocation")
}

// A relationship that leads from one host into another (possible through SpiceDB's API only)
// makes the first host's answers depend on the second's relationships: the cache notices,
// whether the relationship existed before the watch started or is written later, and then
// reuses that host's answers only at their exact revision.
func TestCacheFallsBackForHostsWithRelationshipsIntoOtherHosts(t *testing.T) {
	// acme's tool x belongs to beta's server; acme's agent is an agent of beta too, and carries
	// a ceiling there. Removing beta's server from beta (a change of beta's
	// relationships only) revokes acme's call.
	cross := []Update{
		{Op: OpTouch, Relationship: schema.Relationship{Resource: schema.Tool("acme", "srv", "x"), Relation: "server_low",
			Subject: schema.SubjectRef{Object: schema.Server("beta", "srv")}}},
		{Op: OpTouch, Relationship: schema.Relationship{Resource: schema.Host("beta"), Relation: schema.RelHostAgent,
			Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}},
		{Op: OpTouch, Relationship: schema.Relationship{Resource: schema.Server("beta", "srv"), Relation: "granted_low",
			Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}},
		{Op: OpTouch, Relationship: schema.Relationship{Resource: schema.Server("beta", "srv"), Relation: "ceiling_low",
			Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}},
	}
	callX := CheckRequest{Resource: schema.Tool("acme", "srv", "x"), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}
	t.Run("written while watched", func(t *testing.T) {
		b, c, _ := watchedCache(t, "acme", "beta")
		write(t, b, cross...)
		waitDelivered(t, c)
		crossHostRevocation(t, b, c, callX)
	})
	t.Run("written before the watch started", func(t *testing.T) {
		b, _, _ := watchedCache(t, "acme", "beta")
		write(t, b, cross...)
		c, err := NewDecisionCache(context.Background(), b, 0) // its scan finds them
		if err != nil {
			t.Fatal(err)
		}
		waitDelivered(t, c)
		crossHostRevocation(t, b, c, callX)
	})
}

func crossHostRevocation(t *testing.T, b *SpiceDB, c *DecisionCache, callX CheckRequest) {
	t.Helper()
	expectCheck(t, c, callX, true, "acme's call of a tool of beta's server")
	expectCheck(t, c, callX, true, "the repeated call")
	write(t, b, Update{Op: OpDelete, Relationship: schema.ServerHost("beta", "srv")})
	waitDelivered(t, c)
	expectCheck(t, c, callX, false, "acme's call after beta's server left beta")
}

// Writers and checkers on two hosts at once: no check may contradict a write that completed
// before it started and was not followed by another write of its host before it ended.
func TestCacheNeverContradictsACompletedWrite(t *testing.T) {
	b, c, _ := watchedCache(t, "acme", "beta")
	type hostState struct {
		seq     atomic.Int64 // odd while a write is in flight
		granted atomic.Bool
	}
	hosts := map[string]*hostState{"acme": {}, "beta": {}}
	for _, s := range hosts {
		s.granted.Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var hits, contradictions atomic.Int64
	for name, s := range hosts {
		wg.Go(func() { // the writer of this host, through the cache and beside it in turn
			grant := schema.Grant(name, "srv", "a_1", schema.Low)
			for i := 0; ctx.Err() == nil; i++ {
				var w Backend = c
				if i%3 == 0 {
					w = b
				}
				op := OpDelete
				if !s.granted.Load() {
					op = OpTouch
				}
				s.seq.Add(1)
				if _, err := w.WriteRelationships(context.Background(), []Update{{Op: op, Relationship: grant}}); err != nil {
					t.Error(err)
					return
				}
				s.granted.Store(op == OpTouch)
				s.seq.Add(1)
				time.Sleep(time.Duration(i%5) * time.Millisecond)
			}
		})
		for range 2 {
			wg.Go(func() { // checkers of this host
				for ctx.Err() == nil {
					before := s.seq.Load()
					want := s.granted.Load()
					got, err := c.Check(context.Background(), callOf(name))
					if err != nil {
						t.Error(err)
						return
					}
					if before%2 == 0 && s.seq.Load() == before {
						hits.Add(1)
						if got != want {
							contradictions.Add(1)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if n := contradictions.Load(); n > 0 {
		t.Fatalf("%d of %d checks contradicted the last completed write of their host", n, hits.Load())
	}
	if hits.Load() < 100 {
		t.Fatalf("only %d checks ran between writes; the test proved little", hits.Load())
	}
}

// A schema change moves no relationship but may change every answer: no answer computed before
// it is reused after it.
func TestCacheDropsAnswersAcrossASchemaChange(t *testing.T) {
	b, c, _ := watchedCache(t, "acme", "beta")
	expectCheck(t, c, callOf("acme"), true, "a low tool's call")
	const all = "permission call = server_low->use_low + server_medium->use_medium + server_high->use_high"
	if !strings.Contains(schema.Text, all) {
		t.Fatal("the schema's call permission changed; update this test")
	}
	if err := b.WriteSchema(context.Background(), strings.Replace(schema.Text, all, "permission call = server_high->use_high", 1)); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, c)
	expectCheck(t, c, callOf("acme"), false, "a low tool's call once only high tools are callable")
}
