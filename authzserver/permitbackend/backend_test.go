package permitbackend_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/authzserver/backendtest"
	"github.com/trustgate/trustgate/authzserver/permitbackend"
	"github.com/trustgate/trustgate/internal/testkit/permitstandin"
	"github.com/trustgate/trustgate/schema"
)

const apiKey = "permit_key_test"

// permitEnv is a Permit backend on a stand-in whose API and PDP listen apart.
type permitEnv struct {
	b        *permitbackend.Backend
	standin  *permitstandin.Server
	api, pdp *httptest.Server
}

func (e permitEnv) config() permitbackend.Config {
	return permitbackend.Config{APIKey: apiKey, APIURL: e.api.URL, PDPURL: e.pdp.URL}
}

func openPermit(t *testing.T) permitEnv {
	t.Helper()
	e := permitEnv{standin: permitstandin.New(apiKey)}
	e.api = httptest.NewServer(e.standin.API())
	t.Cleanup(e.api.Close)
	e.pdp = httptest.NewServer(e.standin.PDP())
	t.Cleanup(e.pdp.Close)
	b, err := permitbackend.Open(context.Background(), e.config())
	if err != nil {
		t.Fatalf("open Permit backend: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	e.b = b
	return e
}

func startSpiceDB(t *testing.T) *authzserver.SpiceDB {
	t.Helper()
	b, err := authzserver.StartEmbedded(context.Background(), authzserver.EmbeddedConfig{Datastore: authzserver.DatastoreMemory})
	if err != nil {
		t.Fatalf("start embedded SpiceDB: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteSchema(context.Background(), schema.Text); err != nil {
		t.Fatal(err)
	}
	return b
}

func touch(rels ...schema.Relationship) []authzserver.Update {
	var u []authzserver.Update
	for _, r := range rels {
		u = append(u, authzserver.Update{Op: authzserver.OpTouch, Relationship: r})
	}
	return u
}

func del(rels ...schema.Relationship) []authzserver.Update {
	var u []authzserver.Update
	for _, r := range rels {
		u = append(u, authzserver.Update{Op: authzserver.OpDelete, Relationship: r})
	}
	return u
}

func check(t *testing.T, b authzserver.Backend, host, server, tool, agent string) bool {
	t.Helper()
	ok, err := b.Check(context.Background(), authzserver.CheckRequest{
		Resource: schema.Tool(host, server, tool), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent(host, agent)},
	})
	if err != nil {
		t.Fatalf("check %s/%s/%s for %s: %v", host, server, tool, agent, err)
	}
	return ok
}

func TestPermitConsentCallAndRevocation(t *testing.T) {
	ctx := context.Background()
	e := openPermit(t)
	b, standin := e.b, e.standin
	base := []schema.Relationship{
		schema.HostMember("acme", "u_1"),
		schema.ServerHost("acme", "linear"),
		schema.ToolLevel("acme", "linear", "get.issue", schema.Low),
		schema.ToolLevel("acme", "linear", "create_issue", schema.Medium),
		schema.ToolLevel("acme", "linear", "delete_issue", schema.High),
		schema.Ceiling("acme", "linear", "a_1", schema.Medium),
	}
	base = append(base, schema.AgentTuples("acme", "a_1", "u_1")...)
	if _, err := b.WriteRelationships(ctx, touch(base...)); err != nil {
		t.Fatal(err)
	}
	if check(t, b, "acme", "linear", "get.issue", "a_1") {
		t.Fatal("an agent without consent may call")
	}
	// Consent at high, capped by the medium ceiling.
	if _, err := b.WriteRelationships(ctx, touch(schema.Grant("acme", "linear", "a_1", schema.High))); err != nil {
		t.Fatal(err)
	}
	if got := standin.Assignments(); len(got) != 1 || got[0] != (permitstandin.Assignment{User: "acme~a_1", Role: "medium", Tenant: "acme", ResourceInstance: "mcp_server:acme~linear"}) {
		t.Fatalf("role assignments after consent = %+v, want the agent at medium on the server", got)
	}
	for tool, allowed := range map[string]bool{"get.issue": true, "create_issue": true, "delete_issue": false} {
		if got := check(t, b, "acme", "linear", tool, "a_1"); got != allowed {
			t.Errorf("call %s = %v, want %v", tool, got, allowed)
		}
	}
	tools, err := b.CallableTools(ctx, "acme", "linear", "a_1")
	if err != nil || !slices.Equal(tools, []string{"create_issue", "get.issue"}) {
		t.Errorf("CallableTools = %v, %v; want create_issue, get.issue", tools, err)
	}
	// Lowering the ceiling is visible to the very next check.
	if _, err := b.WriteRelationships(ctx, append(del(schema.Ceiling("acme", "linear", "a_1", schema.Medium)), touch(schema.Ceiling("acme", "linear", "a_1", schema.Low))...)); err != nil {
		t.Fatal(err)
	}
	if check(t, b, "acme", "linear", "create_issue", "a_1") {
		t.Error("create_issue still allowed after the ceiling was lowered to low")
	}
	// Killing the agent ends everything.
	if _, err := b.DeleteRelationships(ctx, schema.AgentTuples("acme", "a_1", "u_1")); err != nil {
		t.Fatal(err)
	}
	if check(t, b, "acme", "linear", "get.issue", "a_1") {
		t.Error("a killed agent may still call")
	}
	if got := standin.Assignments(); len(got) != 0 {
		t.Errorf("role assignments after the kill = %+v, want none", got)
	}
	// Every fact was written through the PDP, asking it to wait until it holds the fact.
	facts := 0
	for _, r := range standin.Requests() {
		if strings.HasPrefix(r.Path, "/v2/facts/") && r.Method != http.MethodGet {
			facts++
			if r.Header.Get("X-Wait-Timeout") == "" || r.Header.Get("X-Timeout-Policy") != "fail" {
				t.Errorf("%s %s without X-Wait-Timeout and policy fail: %v", r.Method, r.Path, r.Header)
			}
		}
	}
	if facts == 0 {
		t.Fatal("no fact was written")
	}
	for _, r := range standin.Requests() {
		wantVia := "pdp"
		if strings.HasPrefix(r.Path, "/v2/schema/") || strings.HasPrefix(r.Path, "/v2/api-key/") {
			wantVia = "api"
		}
		if r.Via != wantVia {
			t.Errorf("%s %s went to the %s, want the %s", r.Method, r.Path, r.Via, wantVia)
		}
	}
}

// The Permit backend decides exactly as SpiceDB does: random histories of the relationships the
// store writes (consents, ceilings, tools, agents, hosts), compared after every step on every
// agent × tool and on CallableTools.
func TestPermitDecidesAsSpiceDB(t *testing.T) {
	ctx := context.Background()
	permit := openPermit(t).b
	spice := startSpiceDB(t)
	hosts := []string{"acme", "beta"}
	servers := []string{"linear", "github"}
	tools := []string{"read", "write.it", "wipe"}
	agents := []string{"a_1", "a_2", "a_3"}
	owner := map[string]string{"a_1": "u_1", "a_2": "u_1", "a_3": "u_2"}
	rng := rand.New(rand.NewPCG(15, 2026))
	level := func() schema.Level { return schema.Levels[rng.IntN(3)] }
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	random := func() schema.Relationship {
		h, s := pick(hosts), pick(servers)
		switch rng.IntN(6) {
		case 0:
			return schema.Grant(h, s, pick(agents), level())
		case 1:
			return schema.Ceiling(h, s, pick(agents), level())
		case 2:
			return schema.ToolLevel(h, s, pick(tools), level())
		case 3:
			a := pick(agents)
			return schema.AgentTuples(h, a, owner[a])[rng.IntN(3)]
		case 4:
			return schema.ServerHost(h, s)
		default:
			// Across hosts: an agent of one host granted on another's server.
			other := hosts[0]
			if h == other {
				other = hosts[1]
			}
			return schema.Relationship{Resource: schema.Server(h, s), Relation: "granted_" + level().String(),
				Subject: schema.SubjectRef{Object: schema.Agent(other, pick(agents))}}
		}
	}
	allowedSeen, deniedSeen := 0, 0
	// A connected start (servers in their hosts, agents of their humans, tools at levels), then
	// random changes, most of them additions.
	var start []schema.Relationship
	for _, h := range hosts {
		for _, s := range servers {
			start = append(start, schema.ServerHost(h, s))
			for _, tool := range tools {
				start = append(start, schema.ToolLevel(h, s, tool, level()))
			}
		}
		for _, a := range agents {
			start = append(start, schema.AgentTuples(h, a, owner[a])...)
		}
	}
	for step := 0; step < 40; step++ {
		seen := map[string]bool{}
		var batch []authzserver.Update
		if step == 0 {
			for _, r := range start {
				seen[r.String()] = true
				batch = append(batch, authzserver.Update{Op: authzserver.OpTouch, Relationship: r})
			}
		}
		for range 1 + rng.IntN(6) {
			r := random()
			if seen[r.String()] {
				continue
			}
			seen[r.String()] = true
			op := authzserver.OpTouch
			if rng.IntN(4) == 0 {
				op = authzserver.OpDelete
			}
			batch = append(batch, authzserver.Update{Op: op, Relationship: r})
		}
		if _, err := spice.WriteRelationships(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if _, err := permit.WriteRelationships(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			for _, s := range servers {
				for _, a := range agents {
					for _, tool := range tools {
						if p, sp := check(t, permit, h, s, tool, a), check(t, spice, h, s, tool, a); p != sp {
							t.Fatalf("step %d: %s/%s/%s for %s: Permit %v, SpiceDB %v", step, h, s, tool, a, p, sp)
						} else if p {
							allowedSeen++
						} else {
							deniedSeen++
						}
					}
					for _, l := range schema.Levels {
						req := authzserver.CheckRequest{Resource: schema.Server(h, s), Permission: "use_" + l.String(), Subject: schema.SubjectRef{Object: schema.Agent(h, a)}}
						p, err1 := permit.Check(ctx, req)
						sp, err2 := spice.Check(ctx, req)
						if err1 != nil || err2 != nil || p != sp {
							t.Fatalf("step %d: %s#use_%s for %s: Permit %v (%v), SpiceDB %v (%v)", step, s, l, a, p, err1, sp, err2)
						}
					}
					p, err1 := permit.CallableTools(ctx, h, s, a)
					sp, err2 := spice.CallableTools(ctx, h, s, a)
					slices.Sort(sp)
					if err1 != nil || err2 != nil || !slices.Equal(p, sp) {
						t.Fatalf("step %d: CallableTools(%s, %s, %s): Permit %v (%v), SpiceDB %v (%v)", step, h, s, a, p, err1, sp, err2)
					}
				}
			}
		}
	}
	if allowedSeen < 50 || deniedSeen < 50 {
		t.Fatalf("the histories allowed %d and denied %d calls: too few of one kind to compare", allowedSeen, deniedSeen)
	}
	t.Logf("compared %d allowed and %d denied calls", allowedSeen, deniedSeen)
	// ReadRelationships gives back exactly what was written, type by type.
	for _, typ := range schema.ObjectTypes {
		var p, sp []string
		if err := permit.ReadRelationships(ctx, typ, func(r schema.Relationship) error { p = append(p, r.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := spice.ReadRelationships(ctx, typ, func(r schema.Relationship) error { sp = append(sp, r.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(p)
		slices.Sort(sp)
		if !slices.Equal(p, sp) {
			t.Errorf("%s relationships: Permit %v, SpiceDB %v", typ, p, sp)
		}
	}
}

// Many relationships: the reads page through the API (100 per page).
func TestPermitReadsEveryPage(t *testing.T) {
	ctx := context.Background()
	e := openPermit(t)
	b, standin := e.b, e.standin
	var rels []schema.Relationship
	for i := range 250 {
		rels = append(rels, schema.ToolLevel("acme", "big", fmt.Sprintf("tool_%03d", i), schema.Low))
	}
	if _, err := b.WriteRelationships(ctx, touch(rels...)); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := b.ReadRelationships(ctx, schema.TypeTool, func(schema.Relationship) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 250 {
		t.Errorf("read %d tool relationships, want 250", n)
	}
	pages := 0
	for _, r := range standin.Requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/relationship_tuples") && strings.Contains(r.Query, "page=3") {
			pages++
		}
	}
	if pages == 0 {
		t.Error("the third page of tuples was never asked for")
	}
}

func TestPermitFailsClosed(t *testing.T) {
	ctx := context.Background()
	e := openPermit(t)
	b := e.b
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	e.pdp.Close() // the API still answers: facts and checks go to the PDP
	_, err := b.Check(ctx, authzserver.CheckRequest{Resource: schema.Tool("acme", "s", "t"), Permission: schema.PermToolCall, Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}})
	if !errors.Is(err, authzserver.ErrUnavailable) {
		t.Errorf("check with the PDP down: %v, want ErrUnavailable", err)
	}
	if _, err := b.CallableTools(ctx, "acme", "s", "a_1"); !errors.Is(err, authzserver.ErrUnavailable) {
		t.Errorf("CallableTools with the PDP down: %v, want ErrUnavailable", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, authzserver.ErrUnavailable) {
		t.Errorf("ready with the PDP down: %v, want ErrUnavailable", err)
	}
	if _, err := b.WriteRelationships(ctx, touch(schema.ServerHost("acme", "s"))); err == nil {
		t.Error("a write with Permit down succeeded")
	}
}

func TestPermitOpenRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	standin := permitstandin.New(apiKey)
	srv := httptest.NewServer(standin)
	defer srv.Close()
	cases := []struct {
		cfg  permitbackend.Config
		want string
	}{
		{permitbackend.Config{PDPURL: srv.URL, APIURL: srv.URL}, "--permit-api-key"},
		{permitbackend.Config{APIKey: apiKey, APIURL: srv.URL}, "--permit-pdp-url"},
		{permitbackend.Config{APIKey: apiKey, APIURL: srv.URL, PDPURL: "localhost:7766"}, "http(s) URL"},
		{permitbackend.Config{APIKey: "permit_key_wrong", APIURL: srv.URL, PDPURL: srv.URL}, "scope"},
	}
	for _, c := range cases {
		_, err := permitbackend.Open(ctx, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want an error naming %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "permit_key_wrong") {
			t.Errorf("the error shows the API key: %v", err)
		}
	}
	// A second start against the same environment finds the model in place.
	for range 2 {
		b, err := permitbackend.Open(ctx, permitbackend.Config{APIKey: apiKey, APIURL: srv.URL, PDPURL: srv.URL})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		_ = b.Close()
	}
}

// The conformance suite every backend runs, on Permit through the stand-in (one per case; a
// restart opens a new backend on the same environment, whose data Permit keeps).
func TestPermitConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Target {
		e := openPermit(t)
		b := e.b
		return backendtest.Target{
			Backend: b,
			// Permit unreachable: the PDP and the API stop.
			Stop: func(*testing.T) { e.pdp.Close(); e.api.Close() },
			Restart: func(t *testing.T) authzserver.Backend {
				_ = b.Close()
				again, err := permitbackend.Open(context.Background(), e.config())
				if err != nil {
					t.Fatalf("reopen the Permit backend: %v", err)
				}
				t.Cleanup(func() { _ = again.Close() })
				return again
			},
		}
	})
}

// A model someone widened in Permit (a low role that reaches high tools) stops the next start:
// the backend would otherwise allow more than the store implies.
func TestPermitOpenRefusesAWidenedModel(t *testing.T) {
	e := openPermit(t)
	body := `{"role":"low","on_resource":"mcp_server","linked_by_relation":"server_high"}`
	req, err := http.NewRequest(http.MethodPost, e.api.URL+"/v2/schema/"+permitstandin.ProjectID+"/"+permitstandin.EnvironmentID+"/resources/tool/roles/caller/implicit_grants", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("widen the model: %d", resp.StatusCode)
	}
	_, err = permitbackend.Open(context.Background(), e.config())
	if err == nil || !strings.Contains(err.Error(), "tool#caller") {
		t.Fatalf("open on a widened model = %v, want an error naming tool#caller", err)
	}
}
