// Package backendtest is the conformance suite of authorization backends: every implementation
// of authzserver.Backend (the embedded SpiceDB on each datastore, a remote SpiceDB, the
// decorators over them, other engines) runs the same cases (Run), so that they agree on every
// decision trustgate relies on. It is imported only by tests.
//
// # What the suite writes
//
// Each case opens its own SQLite store, creates hosts, humans, servers, tools, ceilings, agents
// and consents in it, and applies the store's relationship outbox to the backend with
// authzserver.Writer.Sync, exactly as trustgate does after a change: the backend receives the
// relationships production writes (built by package schema), in production's batches. A few
// cases also call WriteRelationships and DeleteRelationships directly with relationships built
// by package schema. The cases then ask Check (at the revision the write returned, and at the
// backend's default consistency) and CallableTools, and compare with what a user would expect.
//
// Every host key a case uses is "bt-<run>-<case>-<letter>", where <run> is random per call of
// Run: the relationships of one case never touch another's, so one backend (one datastore, one
// remote engine) may be shared by every case and by several Runs at once. The suite never
// reconciles a backend that holds data, and it reads back only its own hosts' relationships.
// Its cases run one after another.
//
// # What a backend must do
//
// Decide as schema.zed says (a tool is callable when it is enabled and its level is at most the
// lower of the agent's consent and its human's ceiling, within one host), deny without an
// error what it never heard of, make a write visible to a Check at the revision the write
// returned and to every later CallableTools, list in CallableTools exactly the tool names
// (decoded, in any order) that Check allows, read back exactly what was written (across pages),
// apply batches larger than one engine request holds, refuse an Update without an operation,
// refuse for good, with an error wrapping authzserver.ErrRefused, a write of a relation the
// schema does not have (so that the writer sets that change aside and applies the others), and,
// when the engine cannot be reached, fail every call with an error wrapping
// authzserver.ErrUnavailable (never an allowed answer or a tool name).
//
// The suite also runs each backend inside authzserver.NewFailClosed with its writer's Lag, as
// the gateway does: a host with a change set aside gets no allow and no tool, another host's
// answers are the backend's.
//
// # What the factory returns
//
// NewTarget is called once per case. The Target's Backend must hold trustgate's schema (Ready
// answers nil) and must stay usable until t ends; the factory closes what it started with
// t.Cleanup, and skips t (with the reason) when its engine is not available. Restart is called
// only by the ConsistencyAfterRestart case, at most once: it closes the Backend and returns
// another over the same data, as a restart of trustgate would (a new engine in process on the
// same datastore, or a new connection to the same remote engine), also closed by the factory
// when t ends. A backend whose data does not survive a restart (the embedded memory datastore)
// sets Volatile: its restarted backend must then hold nothing but the schema, and the suite
// rebuilds it with the writer's start-up reconciliation, as trustgate does at every start.
// Stop is called only by the FailsClosedWhenUnavailable case: it makes the engine unreachable
// for the Backend, so that the case can see every call fail with an error wrapping
// authzserver.ErrUnavailable and deny. Since these two hooks end the case's backend, a
// factory that returns one backend to several cases must implement them without ending it
// for the others, or leave them nil.
package backendtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to put into the outbox what trustgate never writes
)

// Target is the backend under test, as the factory gives it to one case.
type Target struct {
	// Backend holds trustgate's schema and answers the case's writes, reads and checks.
	Backend authzserver.Backend
	// Restart closes Backend and returns a backend over the same data. Nil: the backend cannot
	// be restarted, and the ConsistencyAfterRestart case is skipped.
	Restart func(t *testing.T) authzserver.Backend
	// Volatile: the data does not survive Restart; the restarted backend is empty but for the
	// schema, and the suite reconciles it from the store.
	Volatile bool
	// Stop makes the engine unreachable for Backend: a remote engine's server stops; an engine
	// in process, which Backend owns, stops when Backend is closed. Nil: the
	// FailsClosedWhenUnavailable case is skipped.
	Stop func(t *testing.T)
}

// NewTarget returns the backend for one case (see the package doc for the contract).
type NewTarget func(t *testing.T) Target

// caseTimeout bounds one case: a backend that hangs fails the case instead of the test binary.
const caseTimeout = 2 * time.Minute

// Run runs every case of the suite, each in its own subtest, with a backend newTarget returns.
func Run(t *testing.T, newTarget NewTarget) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := hex.EncodeToString(b[:])
	for i, tc := range []struct {
		name string
		test func(e *env)
	}{
		{"Ready", testReady},
		{"DenyByDefault", testDenyByDefault},
		{"ConsentAtEachLevel", testConsentAtEachLevel},
		{"CeilingsLoweredAndRaised", testCeilingsLoweredAndRaised},
		{"AgentKill", testAgentKill},
		{"RevocationVisibleToTheNextCheck", testRevocationVisibleToTheNextCheck},
		{"ToolEnableDisable", testToolEnableDisable},
		{"TenantIsolation", testTenantIsolation},
		{"CallableToolsEqualsChecks", testCallableToolsEqualsChecks},
		{"ReadRelationshipsReturnsWhatWasWritten", testReadRelationships},
		{"DirectWritesAndDeletes", testDirectWritesAndDeletes},
		{"ManyRelationships", testManyRelationships},
		{"ChecksRacingARevocation", testChecksRacingARevocation},
		{"ConsistencyAfterRestart", testConsistencyAfterRestart},
		{"FailsClosedWhenUnavailable", testFailsClosedWhenUnavailable},
		{"RefusedChangeSetAsideAndItsHostFailsClosed", testRefusedChangeSetAside},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			target := newTarget(t)
			if target.Backend == nil {
				t.Fatal("the factory returned no backend")
			}
			dir := t.TempDir()
			st, err := store.Open(ctx, store.Config{DataDir: dir})
			if err != nil {
				t.Fatalf("open the case's store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			tc.test(&env{
				t: t, ctx: ctx, target: target, b: target.Backend, st: st, dataDir: dir,
				w:      authzserver.NewWriter(st, target.Backend, nil),
				prefix: fmt.Sprintf("bt-%s-%02d", run, i),
				tools:  map[string][]string{},
			})
		})
	}
}

// env is one case's world: its store, the writer from it to the backend, and the tools it made.
type env struct {
	t      *testing.T
	ctx    context.Context
	target Target
	b      authzserver.Backend
	st     store.Store
	// dataDir holds the store's SQLite file.
	dataDir string
	w       *authzserver.Writer
	prefix  string
	// rev is the revision of the last write applied (empty before any).
	rev authzserver.Revision
	// tools lists, per host/server, every tool name the case put, enabled or not.
	tools map[string][]string
}

// host is the key of the case's host with the given letter.
func (e *env) host(letter string) string { return e.prefix + "-" + letter }

func (e *env) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// sync applies the store's pending relationship changes to the backend, as trustgate does after
// every change, and remembers the revision of that write.
func (e *env) sync() authzserver.Revision {
	e.t.Helper()
	rev, err := e.w.Sync(e.ctx)
	e.must("apply the store's relationship changes", err)
	if rev != "" {
		e.rev = rev
	}
	return rev
}

// Store changes: each is one transaction of the store, with its outbox entries.

func (e *env) createHost(host string) {
	e.t.Helper()
	_, err := e.st.CreateHost(e.ctx, store.Host{Key: host, Name: "Host " + host})
	e.must("create host "+host, err)
}

func (e *env) createUser(host, id string) {
	e.t.Helper()
	_, err := e.st.CreateUser(e.ctx, store.User{Host: host, ID: id, Email: id + "@" + host + ".test"})
	e.must("create user "+host+"/"+id, err)
}

func (e *env) createServer(host, server string) {
	e.t.Helper()
	_, err := e.st.CreateServer(e.ctx, store.Server{Host: host, Key: server, Name: server, URL: "https://" + server + ".example.test/mcp"})
	e.must("create server "+host+"/"+server, err)
}

func (e *env) putTool(host, server, name string, level schema.Level, enabled bool) {
	e.t.Helper()
	_, err := e.st.PutTool(e.ctx, store.Tool{Host: host, Server: server, Name: name, Level: level, LevelOverridden: true, Enabled: enabled})
	e.must(fmt.Sprintf("put tool %s/%s/%q", host, server, name), err)
	k := host + "/" + server
	if !slices.Contains(e.tools[k], name) {
		e.tools[k] = append(e.tools[k], name)
	}
}

func (e *env) setCeiling(host, server, user string, level schema.Level) {
	e.t.Helper()
	_, err := e.st.SetGrant(e.ctx, store.Grant{Host: host, Server: server, UserID: user, Ceiling: level})
	e.must(fmt.Sprintf("set ceiling %s of %s on %s/%s", level, user, host, server), err)
}

func (e *env) createAgent(host, id, user string) {
	e.t.Helper()
	_, err := e.st.CreateAgent(e.ctx, store.Agent{Host: host, ID: id, UserID: user, ClientID: "client-" + id, Name: "Agent " + id})
	e.must("create agent "+host+"/"+id, err)
}

func (e *env) consent(host, agent, server string, level schema.Level) {
	e.t.Helper()
	_, err := e.st.SetConsent(e.ctx, store.Consent{Host: host, AgentID: agent, Server: server, Level: level})
	e.must(fmt.Sprintf("consent %s for %s on %s/%s", level, agent, host, server), err)
}

// The standard host: human u_1 with ceiling high on server srv, agent a_1 of u_1 without a
// consent, and the standard tools (names that need escaping included).
const (
	srv   = "srv"
	user1 = "u_1"
	agent = "a_1"
)

var standardTools = []struct {
	name  string
	level schema.Level
}{
	{"issues.search", schema.Low},
	{"list projects", schema.Low},
	{"create_issue", schema.Medium},
	{"delete-repo/now", schema.High},
}

func (e *env) standardHost(host string) {
	e.t.Helper()
	e.createHost(host)
	e.createUser(host, user1)
	e.createServer(host, srv)
	for _, tl := range standardTools {
		e.putTool(host, srv, tl.name, tl.level, true)
	}
	e.setCeiling(host, srv, user1, schema.High)
	e.createAgent(host, agent, user1)
}

// upTo lists the standard tools at or below level (none for level 0).
func upTo(level schema.Level) []string {
	var names []string
	for _, tl := range standardTools {
		if tl.level <= level {
			names = append(names, tl.name)
		}
	}
	return names
}

func callRequest(host, server, tool, agentID string, rev authzserver.Revision) authzserver.CheckRequest {
	return authzserver.CheckRequest{
		Resource:       schema.Tool(host, server, tool),
		Permission:     schema.PermToolCall,
		Subject:        schema.SubjectRef{Object: schema.Agent(host, agentID)},
		AtLeastAsFresh: rev,
	}
}

// check asks one question (the request says at which revision).
func (e *env) check(req authzserver.CheckRequest) bool {
	e.t.Helper()
	return e.checkVia(e.b, req)
}

// checkVia asks b (the backend under test, or a decorator over it).
func (e *env) checkVia(b authzserver.Backend, req authzserver.CheckRequest) bool {
	e.t.Helper()
	ok, err := b.Check(e.ctx, req)
	e.must("check "+req.Resource.String()+" for "+req.Subject.String(), err)
	return ok
}

func (e *env) callable(host, server, agentID string) []string {
	e.t.Helper()
	return e.callableVia(e.b, host, server, agentID)
}

func (e *env) callableVia(b authzserver.Backend, host, server, agentID string) []string {
	e.t.Helper()
	names, err := b.CallableTools(e.ctx, host, server, agentID)
	e.must(fmt.Sprintf("callable tools of %s/%s on %s", host, agentID, server), err)
	return sorted(names)
}

// want asserts what the agent may call on the server: a Check at the revision of the last write
// comes first (the very next question after a write), then CallableTools lists exactly want,
// and a Check of every tool the case put on the server (at the revision and at the backend's
// default consistency) agrees.
func (e *env) want(what, host, server, agentID string, want ...string) {
	e.t.Helper()
	e.wantVia(e.b, what, host, server, agentID, want...)
}

// wantVia is want asked of b (the backend under test, or a decorator over it).
func (e *env) wantVia(b authzserver.Backend, what, host, server, agentID string, want ...string) {
	e.t.Helper()
	want = sorted(want)
	names := e.tools[host+"/"+server]
	for _, name := range names {
		allowed := slices.Contains(want, name)
		if got := e.checkVia(b, callRequest(host, server, name, agentID, e.rev)); got != allowed {
			e.t.Fatalf("%s: Check(%s may call %q on %s/%s) at the last write's revision = %v, want %v", what, agentID, name, host, server, got, allowed)
		}
	}
	if got := e.callableVia(b, host, server, agentID); !slices.Equal(got, want) {
		e.t.Fatalf("%s: CallableTools(%s/%s, %s) = %q, want %q", what, host, server, agentID, got, want)
	}
	for _, name := range names {
		allowed := slices.Contains(want, name)
		if got := e.checkVia(b, callRequest(host, server, name, agentID, "")); got != allowed {
			e.t.Fatalf("%s: Check(%s may call %q on %s/%s) = %v, want %v", what, agentID, name, host, server, got, allowed)
		}
	}
}

// backendSet reads back, for every object type of the schema, the relationships of the given
// hosts that the backend holds.
func (e *env) backendSet(hosts ...string) []string {
	e.t.Helper()
	var all []string
	for _, typ := range schema.ObjectTypes {
		err := e.b.ReadRelationships(e.ctx, typ, func(r schema.Relationship) error {
			if r.Resource.Type != typ {
				return fmt.Errorf("asked for %s relationships, got %s", typ, r)
			}
			if ofHosts(r, hosts) {
				all = append(all, r.String())
			}
			return nil
		})
		e.must("read "+typ+" relationships", err)
	}
	return sorted(all)
}

// storeSet is what the store implies for the given hosts.
func (e *env) storeSet(hosts ...string) []string {
	e.t.Helper()
	var all []string
	err := e.st.Relationships(e.ctx, func(r schema.Relationship) error {
		if ofHosts(r, hosts) {
			all = append(all, r.String())
		}
		return nil
	})
	e.must("derive the store's relationships", err)
	return sorted(all)
}

// wantStoreSet asserts that the backend holds exactly what the store implies for the hosts.
func (e *env) wantStoreSet(what string, hosts ...string) {
	e.t.Helper()
	got, want := e.backendSet(hosts...), e.storeSet(hosts...)
	if !slices.Equal(got, want) {
		e.t.Fatalf("%s: the backend holds\n  %s\nthe store implies\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// ofHosts reports whether the relationship's resource belongs to one of the hosts (ids carry
// their host: the host's own id is its key, every other starts with the key and a slash).
func ofHosts(r schema.Relationship, hosts []string) bool {
	for _, h := range hosts {
		if r.Resource.ID == h || strings.HasPrefix(r.Resource.ID, h+"/") {
			return true
		}
	}
	return false
}

// sorted returns a sorted copy, empty as nil.
func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// putRefused appends to the store's outbox, through SQL (trustgate never writes it), a touch
// of a relationship of host whose relation the schema does not have: every engine refuses it
// for good. It returns the relationship.
func (e *env) putRefused(host string) schema.Relationship {
	e.t.Helper()
	r := schema.Relationship{Resource: schema.Server(host, srv), Relation: "no_such_relation",
		Subject: schema.SubjectRef{Object: schema.Agent(host, "a_refused")}}
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, "trustgate.db")+"?_pragma=busy_timeout(10000)")
	e.must("open the store's file", err)
	defer db.Close()
	_, err = db.ExecContext(e.ctx, "INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES ('touch', ?, ?, ?)",
		r.String(), time.Now().UnixMilli(), host)
	e.must("put a refused change into the outbox", err)
	return r
}
