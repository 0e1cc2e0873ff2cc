package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The conformance suite: every test runs against SQLite and, when TRUSTGATE_TEST_POSTGRES is set,
// PostgreSQL.

var ctx = context.Background()

func testHosts(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		before := time.Now().Add(-time.Second)
		h := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme Inc."}))
		if h.CreatedAt.Before(before) || h.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt = %v, want now in UTC", h.CreatedAt)
		}
		got := must[store.Host](t, "get host")(s.GetHost(ctx, "acme"))
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("GetHost = %+v, want %+v", got, h)
		}
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "0-beta9"}))
		_, err := s.CreateHost(ctx, store.Host{Key: "acme", Name: "again"})
		wantErr(t, "duplicate host", err, store.ErrConflict)

		for _, key := range []string{"", "-acme", "acme-", "Acme", "ac_me", "ac.me", "ac me", strings.Repeat("a", 64), "é"} {
			_, err := s.CreateHost(ctx, store.Host{Key: key})
			wantErr(t, "host key "+key, err, store.ErrInvalid)
		}
		must[store.Host](t, "63-char host key")(s.CreateHost(ctx, store.Host{Key: strings.Repeat("a", 63)}))

		hosts := must[[]store.Host](t, "list hosts")(s.ListHosts(ctx))
		var keys []string
		for _, h := range hosts {
			keys = append(keys, h.Key)
		}
		if want := []string{"0-beta9", strings.Repeat("a", 63), "acme"}; !slices.Equal(keys, want) {
			t.Fatalf("ListHosts = %v, want %v", keys, want)
		}

		_, err = s.GetHost(ctx, "nope")
		wantErr(t, "get missing host", err, store.ErrNotFound)
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		_, err = s.GetHost(ctx, "acme")
		wantErr(t, "get deleted host", err, store.ErrNotFound)
		wantErr(t, "delete deleted host", s.DeleteHost(ctx, "acme"), store.ErrNotFound)
		// The key is free again.
		must[store.Host](t, "recreate host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
	})
}

var generatedUserID = regexp.MustCompile(`^u_[a-z2-7]{20}$`)
var generatedAgentID = regexp.MustCompile(`^a_[a-z2-7]{20}$`)

func testUsers(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		u := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "Alice@Example.COM", Name: "Alice"}))
		if !generatedUserID.MatchString(u.ID) {
			t.Fatalf("generated user id %q does not match %s", u.ID, generatedUserID)
		}
		if u.Email != "alice@example.com" {
			t.Fatalf("email stored as %q, want it lower-cased", u.Email)
		}
		if got := must[store.User](t, "get user")(s.GetUser(ctx, "acme", u.ID)); got != u {
			t.Fatalf("GetUser = %+v, want %+v", got, u)
		}
		if got := must[store.User](t, "get user by email")(s.GetUserByEmail(ctx, "acme", "ALICE@example.com")); got != u {
			t.Fatalf("GetUserByEmail = %+v, want %+v", got, u)
		}
		other := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@example.com"}))
		if other.ID == u.ID {
			t.Fatal("two generated user ids are equal")
		}
		bob2 := must[store.User](t, "create user with id")(s.CreateUser(ctx, store.User{Host: "acme", ID: "bob-2", Email: "bob2@example.com"}))
		if bob2.ID != "bob-2" {
			t.Fatalf("given id not kept: %q", bob2.ID)
		}

		_, err := s.CreateUser(ctx, store.User{Host: "acme", Email: "ALICE@example.com"})
		wantErr(t, "duplicate email (other case)", err, store.ErrConflict)
		_, err = s.CreateUser(ctx, store.User{Host: "acme", ID: "bob-2", Email: "carol@example.com"})
		wantErr(t, "duplicate id", err, store.ErrConflict)
		_, err = s.CreateUser(ctx, store.User{Host: "nope", Email: "carol@example.com"})
		wantErr(t, "user of unknown host", err, store.ErrNotFound)
		if err != nil && !strings.Contains(err.Error(), "nope") {
			t.Errorf("error %q does not name the missing host", err)
		}
		for _, email := range []string{"", "carol", "@example.com", "carol@", "a@b@c", "car ol@example.com", strings.Repeat("a", 250) + "@b.co"} {
			_, err := s.CreateUser(ctx, store.User{Host: "acme", Email: email})
			wantErr(t, "email "+email, err, store.ErrInvalid)
		}
		for _, id := range []string{"a/b", "a b", strings.Repeat("x", 65), "ü"} {
			_, err := s.CreateUser(ctx, store.User{Host: "acme", ID: id, Email: "x@example.com"})
			wantErr(t, "user id "+id, err, store.ErrInvalid)
		}
		// 254 characters is the limit, inclusive.
		long := strings.Repeat("a", 254-len("@example.com")) + "@example.com"
		must[store.User](t, "254-char email")(s.CreateUser(ctx, store.User{Host: "acme", Email: long}))

		users := must[[]store.User](t, "list users")(s.ListUsers(ctx, "acme"))
		var emails []string
		for _, u := range users {
			emails = append(emails, u.Email)
		}
		if want := []string{long, "alice@example.com", "bob2@example.com", "bob@example.com"}; !slices.Equal(emails, want) {
			t.Fatalf("ListUsers emails = %v, want %v", emails, want)
		}
		_, err = s.ListUsers(ctx, "nope")
		wantErr(t, "list users of unknown host", err, store.ErrNotFound)

		noErr(t, "delete user", s.DeleteUser(ctx, "acme", u.ID))
		_, err = s.GetUser(ctx, "acme", u.ID)
		wantErr(t, "get deleted user", err, store.ErrNotFound)
		_, err = s.GetUserByEmail(ctx, "acme", "alice@example.com")
		wantErr(t, "get deleted user by email", err, store.ErrNotFound)
		wantErr(t, "delete deleted user", s.DeleteUser(ctx, "acme", u.ID), store.ErrNotFound)
	})
}

func testServers(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		sv := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{
			Host: "acme", Key: "linear", Name: "Linear", Description: "Issues", URL: "https://mcp.linear.app/sse",
		}))
		if got := must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "linear")); !reflect.DeepEqual(got, sv) {
			t.Fatalf("GetServer = %+v, want %+v", got, sv)
		}
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "0_git-hub"}))
		_, err := s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear"})
		wantErr(t, "duplicate server", err, store.ErrConflict)
		_, err = s.CreateServer(ctx, store.Server{Host: "nope", Key: "linear"})
		wantErr(t, "server of unknown host", err, store.ErrNotFound)
		for _, key := range []string{"", "_x", "-x", "Linear", "a.b", "a b", strings.Repeat("a", 64)} {
			_, err := s.CreateServer(ctx, store.Server{Host: "acme", Key: key})
			wantErr(t, "server key "+key, err, store.ErrInvalid)
		}
		_, err = s.CreateServer(ctx, store.Server{Host: "acme", Key: "nul", Name: "a\x00b"})
		wantErr(t, "NUL in name", err, store.ErrInvalid)

		servers := must[[]store.Server](t, "list servers")(s.ListServers(ctx, "acme"))
		if len(servers) != 2 || servers[0].Key != "0_git-hub" || !reflect.DeepEqual(servers[1], sv) {
			t.Fatalf("ListServers = %+v", servers)
		}
		_, err = s.ListServers(ctx, "nope")
		wantErr(t, "list servers of unknown host", err, store.ErrNotFound)

		// Timeouts: stored in milliseconds, changed by UpdateServer, bounded.
		sv.ConnectTimeout, sv.FirstByteTimeout, sv.IdleTimeout = 1500*time.Millisecond, 2*time.Minute, time.Hour
		sv = must[store.Server](t, "update server timeouts")(s.UpdateServer(ctx, sv))
		if got := must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "linear")); !reflect.DeepEqual(got, sv) {
			t.Fatalf("after timeouts GetServer = %+v, want %+v", got, sv)
		}
		for _, d := range []time.Duration{-time.Second, 25 * time.Hour, 1500 * time.Microsecond} {
			bad := sv
			bad.IdleTimeout = d
			_, err := s.UpdateServer(ctx, bad)
			wantErr(t, fmt.Sprintf("idle timeout %s", d), err, store.ErrInvalid)
		}

		noErr(t, "delete server", s.DeleteServer(ctx, "acme", "linear"))
		_, err = s.GetServer(ctx, "acme", "linear")
		wantErr(t, "get deleted server", err, store.ErrNotFound)
		wantErr(t, "delete deleted server", s.DeleteServer(ctx, "acme", "linear"), store.ErrNotFound)
	})
}

func testTools(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear"}))
		schemaJSON := `{"type":"object","properties":{"title":{"type":"string"}}}`
		tool := must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{
			Host: "acme", Server: "linear", Name: "create_issue", Description: "Creates an issue",
			InputSchema: schemaJSON, OutputSchema: `{"type":"object","properties":{"id":{"type":"string"}}}`, Level: schema.Medium, Enabled: true,
		}))
		got := must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "linear", "create_issue"))
		if got != tool || got.OutputSchema == "" {
			t.Fatalf("GetTool = %+v, want %+v", got, tool)
		}
		// Replace: every field changes.
		time.Sleep(2 * time.Millisecond)
		tool2 := must[store.Tool](t, "replace tool")(s.PutTool(ctx, store.Tool{
			Host: "acme", Server: "linear", Name: "create_issue", Description: "v2", Level: schema.High, Enabled: false,
		}))
		got = must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "linear", "create_issue"))
		if got != tool2 || got.Enabled || got.Level != schema.High || got.InputSchema != "" || got.OutputSchema != "" || !got.UpdatedAt.After(tool.UpdatedAt) {
			t.Fatalf("after replace GetTool = %+v, want %+v", got, tool2)
		}
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "linear", Name: "list issues/ü", Level: schema.Low, Enabled: true}))

		_, err := s.PutTool(ctx, store.Tool{Host: "acme", Server: "nope", Name: "x", Level: schema.Low})
		wantErr(t, "tool of unknown server", err, store.ErrNotFound)
		_, err = s.PutTool(ctx, store.Tool{Host: "nope", Server: "linear", Name: "x", Level: schema.Low})
		wantErr(t, "tool of unknown host", err, store.ErrNotFound)
		invalid := []store.Tool{
			{Name: "", Level: schema.Low},
			{Name: strings.Repeat("x", 129), Level: schema.Low},
			{Name: "x", Level: 0},
			{Name: "x", Level: schema.High + 1},
			{Name: "x", Level: schema.Low, InputSchema: "{not json"},
			{Name: "x", Level: schema.Low, InputSchema: `{"d":"` + strings.Repeat("a", 64<<10) + `"}`},
			{Name: "x", Level: schema.Low, OutputSchema: "{not json"},
			{Name: "x", Level: schema.Low, OutputSchema: `{"d":"` + strings.Repeat("a", 64<<10) + `"}`},
		}
		for i, tl := range invalid {
			tl.Host, tl.Server = "acme", "linear"
			_, err := s.PutTool(ctx, tl)
			wantErr(t, "invalid tool "+string(rune('0'+i)), err, store.ErrInvalid)
		}
		must[store.Tool](t, "128-rune name")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "linear", Name: strings.Repeat("é", 128), Level: schema.Low}))

		tools := must[[]store.Tool](t, "list tools")(s.ListTools(ctx, "acme", "linear"))
		var names []string
		for _, tl := range tools {
			names = append(names, tl.Name)
		}
		if want := []string{"create_issue", "list issues/ü", strings.Repeat("é", 128)}; !slices.Equal(names, want) {
			t.Fatalf("ListTools = %q, want %q", names, want)
		}
		_, err = s.ListTools(ctx, "acme", "nope")
		wantErr(t, "list tools of unknown server", err, store.ErrNotFound)

		noErr(t, "delete tool", s.DeleteTool(ctx, "acme", "linear", "create_issue"))
		_, err = s.GetTool(ctx, "acme", "linear", "create_issue")
		wantErr(t, "get deleted tool", err, store.ErrNotFound)
		wantErr(t, "delete deleted tool", s.DeleteTool(ctx, "acme", "linear", "create_issue"), store.ErrNotFound)
	})
}

func testGrants(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "github"}))
		alice := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "alice@example.com"}))
		bob := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@example.com"}))

		g := must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.Medium}))
		if got := must[store.Grant](t, "get grant")(s.GetGrant(ctx, "acme", "linear", alice.ID)); got != g {
			t.Fatalf("GetGrant = %+v, want %+v", got, g)
		}
		must[store.Grant](t, "raise grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.High}))
		if got := must[store.Grant](t, "get grant")(s.GetGrant(ctx, "acme", "linear", alice.ID)); got.Ceiling != schema.High {
			t.Fatalf("ceiling after raise = %v", got.Ceiling)
		}
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "github", UserID: alice.ID, Ceiling: schema.Low}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: bob.ID, Ceiling: schema.Low}))

		_, err := s.SetGrant(ctx, store.Grant{Host: "acme", Server: "nope", UserID: alice.ID, Ceiling: schema.Low})
		wantErr(t, "grant on unknown server", err, store.ErrNotFound)
		_, err = s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: "u_nobody", Ceiling: schema.Low})
		wantErr(t, "grant for unknown user", err, store.ErrNotFound)
		if err != nil && !strings.Contains(err.Error(), "u_nobody") {
			t.Errorf("error %q does not name the missing user", err)
		}
		_, err = s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID})
		wantErr(t, "grant without level", err, store.ErrInvalid)

		all := must[[]store.Grant](t, "list grants")(s.ListGrants(ctx, "acme", ""))
		if len(all) != 3 {
			t.Fatalf("ListGrants(all) has %d grants, want 3: %+v", len(all), all)
		}
		mine := must[[]store.Grant](t, "list grants")(s.ListGrants(ctx, "acme", alice.ID))
		if len(mine) != 2 || mine[0].Server != "github" || mine[1].Server != "linear" {
			t.Fatalf("ListGrants(alice) = %+v", mine)
		}
		_, err = s.ListGrants(ctx, "acme", "u_nobody")
		wantErr(t, "list grants of unknown user", err, store.ErrNotFound)

		noErr(t, "delete grant", s.DeleteGrant(ctx, "acme", "linear", alice.ID))
		_, err = s.GetGrant(ctx, "acme", "linear", alice.ID)
		wantErr(t, "get deleted grant", err, store.ErrNotFound)
		wantErr(t, "delete deleted grant", s.DeleteGrant(ctx, "acme", "linear", alice.ID), store.ErrNotFound)
	})
}

func testAgents(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		alice := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "alice@example.com"}))
		bob := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@example.com"}))
		a := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: alice.ID, ClientID: "claude", Name: "Claude"}))
		if !generatedAgentID.MatchString(a.ID) {
			t.Fatalf("generated agent id %q does not match %s", a.ID, generatedAgentID)
		}
		if got := must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", a.ID)); !reflect.DeepEqual(got, a) {
			t.Fatalf("GetAgent = %+v, want %+v", got, a)
		}
		must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "cursor-1", UserID: bob.ID}))
		_, err := s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "cursor-1", UserID: alice.ID})
		wantErr(t, "duplicate agent", err, store.ErrConflict)
		_, err = s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: "u_nobody"})
		wantErr(t, "agent of unknown user", err, store.ErrNotFound)
		_, err = s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "a/b", UserID: alice.ID})
		wantErr(t, "agent id with slash", err, store.ErrInvalid)

		all := must[[]store.Agent](t, "list agents")(s.ListAgents(ctx, "acme", ""))
		if len(all) != 2 {
			t.Fatalf("ListAgents(all) = %+v", all)
		}
		bobs := must[[]store.Agent](t, "list agents")(s.ListAgents(ctx, "acme", bob.ID))
		if len(bobs) != 1 || bobs[0].ID != "cursor-1" {
			t.Fatalf("ListAgents(bob) = %+v", bobs)
		}
		_, err = s.ListAgents(ctx, "acme", "u_nobody")
		wantErr(t, "list agents of unknown user", err, store.ErrNotFound)

		noErr(t, "delete agent", s.DeleteAgent(ctx, "acme", a.ID))
		_, err = s.GetAgent(ctx, "acme", a.ID)
		wantErr(t, "get deleted agent", err, store.ErrNotFound)
		wantErr(t, "delete deleted agent", s.DeleteAgent(ctx, "acme", a.ID), store.ErrNotFound)
	})
}

func testConsents(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "github"}))
		alice := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "alice@example.com"}))
		agent := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: alice.ID}))

		_, err := s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.Low})
		wantErr(t, "consent without grant", err, store.ErrConflict)
		wantErr(t, "consent without grant", err, store.ErrNotGranted)
		if err != nil && !strings.Contains(err.Error(), "no grant") {
			t.Errorf("error %q does not say there is no grant", err)
		}

		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.Medium}))
		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.High})
		wantErr(t, "consent above ceiling", err, store.ErrConflict)
		wantErr(t, "consent above ceiling", err, store.ErrNotGranted)
		if err != nil && !strings.Contains(err.Error(), "ceiling") {
			t.Errorf("error %q does not mention the ceiling", err)
		}
		if _, err := s.GetConsent(ctx, "acme", agent.ID, "linear"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused consent was stored (err %v)", err)
		}
		c := must[store.Consent](t, "consent at ceiling")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.Medium}))
		if got := must[store.Consent](t, "get consent")(s.GetConsent(ctx, "acme", agent.ID, "linear")); got != c {
			t.Fatalf("GetConsent = %+v, want %+v", got, c)
		}
		must[store.Consent](t, "lower consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.Low}))

		// Lowering the ceiling below an existing consent leaves the consent alone.
		must[store.Consent](t, "consent at ceiling")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.Medium}))
		must[store.Grant](t, "lower grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.Low}))
		if got := must[store.Consent](t, "get consent")(s.GetConsent(ctx, "acme", agent.ID, "linear")); got.Level != schema.Medium {
			t.Fatalf("consent after lowering the ceiling = %v, want medium", got.Level)
		}

		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "a_nobody", Server: "linear", Level: schema.Low})
		wantErr(t, "consent of unknown agent", err, store.ErrNotFound)
		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "nope", Level: schema.Low})
		wantErr(t, "consent on unknown server", err, store.ErrNotFound)
		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear"})
		wantErr(t, "consent without level", err, store.ErrInvalid)

		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "github", UserID: alice.ID, Ceiling: schema.High}))
		must[store.Consent](t, "consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "github", Level: schema.High}))
		list := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", agent.ID))
		if len(list) != 2 || list[0].Server != "github" || list[1].Server != "linear" {
			t.Fatalf("ListConsents = %+v", list)
		}
		if all := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", "")); len(all) != 2 {
			t.Fatalf("ListConsents(all) = %+v", all)
		}
		_, err = s.ListConsents(ctx, "acme", "a_nobody")
		wantErr(t, "list consents of unknown agent", err, store.ErrNotFound)

		noErr(t, "delete consent", s.DeleteConsent(ctx, "acme", agent.ID, "github"))
		_, err = s.GetConsent(ctx, "acme", agent.ID, "github")
		wantErr(t, "get deleted consent", err, store.ErrNotFound)
		wantErr(t, "delete deleted consent", s.DeleteConsent(ctx, "acme", agent.ID, "github"), store.ErrNotFound)

		// Revoking a human's access to a server ends their agents' consents there, and only
		// there: granting again restores none of them.
		second := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: alice.ID}))
		bob := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "bob@example.com"}))
		bobs := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: bob.ID}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "github", UserID: alice.ID, Ceiling: schema.High}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: bob.ID, Ceiling: schema.High}))
		must[store.Consent](t, "consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: second.ID, Server: "linear", Level: schema.Low}))
		must[store.Consent](t, "consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "github", Level: schema.High}))
		must[store.Consent](t, "consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: bobs.ID, Server: "linear", Level: schema.High}))
		noErr(t, "revoke alice on linear", s.DeleteGrant(ctx, "acme", "linear", alice.ID))
		must[store.Grant](t, "grant again")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.High}))
		for _, a := range []store.Agent{agent, second} {
			if c, err := s.GetConsent(ctx, "acme", a.ID, "linear"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after revoke and grant again, agent %s still has consent %+v (err %v)", a.ID, c, err)
			}
		}
		if c := must[store.Consent](t, "other server's consent")(s.GetConsent(ctx, "acme", agent.ID, "github")); c.Level != schema.High {
			t.Errorf("revoking linear changed the consent on github: %+v", c)
		}
		if c := must[store.Consent](t, "other human's consent")(s.GetConsent(ctx, "acme", bobs.ID, "linear")); c.Level != schema.High {
			t.Errorf("revoking alice changed bob's agent's consent: %+v", c)
		}
	})
}

func testHostIsolation(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		for _, h := range []string{"a", "b"} {
			must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: h}))
		}
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "a", Key: "linear"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "b", Key: "github"}))
		alice := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "a", Email: "alice@example.com"}))
		agent := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "a", UserID: alice.ID}))
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "a", Server: "linear", Name: "t", Level: schema.Low, Enabled: true}))
		must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "a", Server: "linear", UserID: alice.ID, Ceiling: schema.High}))
		must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "a", AgentID: agent.ID, Server: "linear", Level: schema.Low}))
		// The same email is another human in another host.
		must[store.User](t, "same email in b")(s.CreateUser(ctx, store.User{Host: "b", Email: "alice@example.com"}))

		checks := map[string]error{}
		_, checks["GetUser"] = s.GetUser(ctx, "b", alice.ID)
		_, checks["GetAgent"] = s.GetAgent(ctx, "b", agent.ID)
		_, checks["GetServer"] = s.GetServer(ctx, "b", "linear")
		_, checks["GetTool"] = s.GetTool(ctx, "b", "linear", "t")
		_, checks["GetGrant"] = s.GetGrant(ctx, "b", "linear", alice.ID)
		_, checks["GetConsent"] = s.GetConsent(ctx, "b", agent.ID, "linear")
		_, checks["ListTools"] = s.ListTools(ctx, "b", "linear")
		_, checks["ListGrants"] = s.ListGrants(ctx, "b", alice.ID)
		_, checks["ListConsents"] = s.ListConsents(ctx, "b", agent.ID)
		_, checks["CreateAgent"] = s.CreateAgent(ctx, store.Agent{Host: "b", UserID: alice.ID})
		_, checks["SetGrant"] = s.SetGrant(ctx, store.Grant{Host: "b", Server: "github", UserID: alice.ID, Ceiling: schema.Low})
		_, checks["SetConsent"] = s.SetConsent(ctx, store.Consent{Host: "b", AgentID: agent.ID, Server: "github", Level: schema.Low})
		_, checks["PutTool"] = s.PutTool(ctx, store.Tool{Host: "b", Server: "linear", Name: "t", Level: schema.Low})
		checks["DeleteUser"] = s.DeleteUser(ctx, "b", alice.ID)
		checks["DeleteAgent"] = s.DeleteAgent(ctx, "b", agent.ID)
		checks["DeleteServer"] = s.DeleteServer(ctx, "b", "linear")
		checks["DeleteTool"] = s.DeleteTool(ctx, "b", "linear", "t")
		checks["DeleteGrant"] = s.DeleteGrant(ctx, "b", "linear", alice.ID)
		checks["DeleteConsent"] = s.DeleteConsent(ctx, "b", agent.ID, "linear")
		for what, err := range checks {
			wantErr(t, what+" across hosts", err, store.ErrNotFound)
		}
		if bs := must[[]store.User](t, "list users")(s.ListUsers(ctx, "b")); len(bs) != 1 || bs[0].ID == alice.ID {
			t.Fatalf("ListUsers(b) = %+v", bs)
		}
		if as := must[[]store.Agent](t, "list agents")(s.ListAgents(ctx, "b", "")); len(as) != 0 {
			t.Fatalf("ListAgents(b) = %+v", as)
		}
		// Nothing of host a was harmed.
		if got := must[store.Consent](t, "get consent")(s.GetConsent(ctx, "a", agent.ID, "linear")); got.Level != schema.Low {
			t.Fatalf("consent of a changed: %+v", got)
		}
		// Deleting host b leaves host a's tuples alone.
		before := relationshipSet(t, s)
		noErr(t, "delete host b", s.DeleteHost(ctx, "b"))
		after := relationshipSet(t, s)
		for k := range before {
			if !after[k] && !strings.Contains(k, ":b") {
				t.Errorf("deleting host b removed %s", k)
			}
		}
		for k := range after {
			if strings.Contains(k, "host:b") || strings.Contains(k, ":b/") {
				t.Errorf("tuple of host b survived its deletion: %s", k)
			}
		}
	})
}

// fixture builds a host with two humans, two servers with tools, grants, agents and consents.
type fixture struct {
	alice, bob   store.User
	aliceA, bobA store.Agent
	servers      []string
}

func buildFixture(t *testing.T, s store.Store, host string) fixture {
	t.Helper()
	var f fixture
	must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: host}))
	f.alice = must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: host, Email: "alice@example.com"}))
	f.bob = must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: host, Email: "bob@example.com"}))
	f.aliceA = must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: host, UserID: f.alice.ID}))
	f.bobA = must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: host, UserID: f.bob.ID}))
	for _, sv := range []string{"linear", "github"} {
		f.servers = append(f.servers, sv)
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: host, Key: sv}))
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: host, Server: sv, Name: "read", Level: schema.Low, Enabled: true}))
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: host, Server: sv, Name: "delete", Level: schema.High, Enabled: true}))
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: host, Server: sv, Name: "off", Level: schema.Low, Enabled: false}))
		for _, u := range []store.User{f.alice, f.bob} {
			must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: host, Server: sv, UserID: u.ID, Ceiling: schema.High}))
		}
		for _, a := range []store.Agent{f.aliceA, f.bobA} {
			must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: host, AgentID: a.ID, Server: sv, Level: schema.Medium}))
		}
	}
	return f
}

func testCascades(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		f := buildFixture(t, s, "acme")
		buildFixture(t, s, "other") // must survive everything below
		otherBefore := tuplesOf(relationshipSet(t, s), "other")

		t.Run("DeleteUser", func(t *testing.T) {
			noErr(t, "delete user", s.DeleteUser(ctx, "acme", f.alice.ID))
			if gs := must[[]store.Grant](t, "list grants")(s.ListGrants(ctx, "acme", "")); len(gs) != 2 || gs[0].UserID != f.bob.ID {
				t.Fatalf("grants after DeleteUser = %+v", gs)
			}
			if as := must[[]store.Agent](t, "list agents")(s.ListAgents(ctx, "acme", "")); len(as) != 1 || as[0].ID != f.bobA.ID {
				t.Fatalf("agents after DeleteUser = %+v", as)
			}
			if cs := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", "")); len(cs) != 2 || cs[0].AgentID != f.bobA.ID {
				t.Fatalf("consents after DeleteUser = %+v", cs)
			}
			for k := range relationshipSet(t, s) {
				if strings.Contains(k, f.alice.ID) || strings.Contains(k, f.aliceA.ID) {
					t.Errorf("tuple of the deleted user remains: %s", k)
				}
			}
		})
		t.Run("DeleteServer", func(t *testing.T) {
			noErr(t, "delete server", s.DeleteServer(ctx, "acme", "linear"))
			if _, err := s.ListTools(ctx, "acme", "linear"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ListTools of deleted server: %v", err)
			}
			if _, err := s.GetTool(ctx, "acme", "linear", "read"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("tool of deleted server: %v", err)
			}
			for _, g := range must[[]store.Grant](t, "list grants")(s.ListGrants(ctx, "acme", "")) {
				if g.Server == "linear" {
					t.Errorf("grant on deleted server remains: %+v", g)
				}
			}
			for _, c := range must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", "")) {
				if c.Server == "linear" {
					t.Errorf("consent on deleted server remains: %+v", c)
				}
			}
			for k := range relationshipSet(t, s) {
				if strings.Contains(k, "acme/linear") {
					t.Errorf("tuple of the deleted server remains: %s", k)
				}
			}
			// The key can be used again, with nothing left over.
			must[store.Server](t, "recreate server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear"}))
			if ts := must[[]store.Tool](t, "list tools")(s.ListTools(ctx, "acme", "linear")); len(ts) != 0 {
				t.Fatalf("recreated server has tools %+v", ts)
			}
		})
		t.Run("DeleteAgent", func(t *testing.T) {
			noErr(t, "delete agent", s.DeleteAgent(ctx, "acme", f.bobA.ID))
			if cs := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", "")); len(cs) != 0 {
				t.Fatalf("consents after DeleteAgent = %+v", cs)
			}
		})
		t.Run("DeleteHost", func(t *testing.T) {
			noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
			if got := tuplesOf(relationshipSet(t, s), "acme"); len(got) != 0 {
				t.Fatalf("tuples of the deleted host remain: %v", got)
			}
			if _, err := s.ListUsers(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ListUsers of deleted host: %v", err)
			}
			// The key can be used again, empty.
			must[store.Host](t, "recreate host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
			if us := must[[]store.User](t, "list users")(s.ListUsers(ctx, "acme")); len(us) != 0 {
				t.Fatalf("recreated host has users %+v", us)
			}
		})
		if got := tuplesOf(relationshipSet(t, s), "other"); !slices.Equal(got, otherBefore) {
			t.Fatalf("tuples of the other host changed:\n got %v\nwant %v", got, otherBefore)
		}
		// And the outbox says the same as the rows.
		assertOutboxReplayMatches(t, s, map[string]bool{})
	})
}

// tuplesOf lists the tuples that mention a host, sorted.
func tuplesOf(set map[string]bool, host string) []string {
	var out []string
	for _, k := range sortedKeys(set) {
		if strings.Contains(k, "host:"+host+"#") || strings.Contains(k, "host:"+host+"@") ||
			strings.HasSuffix(k, "host:"+host) || strings.Contains(k, ":"+host+"/") {
			out = append(out, k)
		}
	}
	return out
}
