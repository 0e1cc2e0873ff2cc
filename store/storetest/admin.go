package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The admin part of the conformance suite: the fields and methods added for the admin API.

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

var regexpTokenID = regexp.MustCompile(`^t_[a-z2-7]{20}$`)

// ms is a fixed instant at millisecond precision, in UTC.
func ms(sec int64, milli int64) time.Time { return time.UnixMilli(sec*1000 + milli).UTC() }

func testHostSettingsRoundTrip(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		settings := store.HostSettings{
			AllowedEmailDomains:   []string{"example.com", "sub.example.org", "xn--bcher-kva.de"},
			DynamicMCPs:           true,
			AutoEnableNewTools:    true,
			AccessTokenTTLSeconds: 900,
			SessionIdleTTLSeconds: 3600,
			SessionMaxTTLSeconds:  86400 * 90,
			ToolVisibility:        "all",
			AuditArguments:        true,
			DenialFormat:          store.DenialJSONRPCError,
			ArgumentValidation:    store.ArgumentValidationOff,
			RateLimits: []store.RateLimit{
				{Scope: store.RateScopeAgent, PerMinute: 60},
				{Scope: store.RateScopeAgentTool, Server: "tracker", Tool: "delete_issue", PerMinute: 2, Burst: 1},
				{Scope: store.RateScopeHost, PerMinute: 6000, Burst: 100},
			},
			EmergencyStop: &store.EmergencyStop{Since: ms(1700000000, 123), Reason: "prompt injection in tracker", By: "token:t1 (ops)"},
		}
		h := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme", Settings: settings}))
		wantEqual(t, "created settings", h.Settings, settings)
		wantEqual(t, "GetHost", must[store.Host](t, "get host")(s.GetHost(ctx, "acme")), h)
		hosts := must[[]store.Host](t, "list hosts")(s.ListHosts(ctx))
		wantEqual(t, "ListHosts", hosts, []store.Host{h})

		// Defaults round-trip as the zero value, with no empty-but-non-nil slice.
		plain := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "plain", Settings: store.HostSettings{AllowedEmailDomains: []string{}}}))
		wantEqual(t, "empty settings", plain.Settings, store.HostSettings{})
		wantEqual(t, "GetHost plain", must[store.Host](t, "get host")(s.GetHost(ctx, "plain")), plain)

		// Domains are lower-cased.
		mixed := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "mixed", Settings: store.HostSettings{AllowedEmailDomains: []string{"Example.COM"}}}))
		wantEqual(t, "lower-cased domains", mixed.Settings.AllowedEmailDomains, []string{"example.com"})
		wantEqual(t, "GetHost mixed", must[store.Host](t, "get host")(s.GetHost(ctx, "mixed")), mixed)

		_, err := s.CreateHost(ctx, store.Host{Key: "bad", Settings: store.HostSettings{ToolVisibility: "some"}})
		wantErr(t, "CreateHost with invalid settings", err, store.ErrInvalid)
	})
}

func testUpdateHost(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		h := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}))
		upd := must[store.Host](t, "update host")(s.UpdateHost(ctx, store.Host{Key: "acme", Name: "Acme Corp", Settings: store.HostSettings{
			AllowedEmailDomains: []string{"acme.com"}, ToolVisibility: "callable", AccessTokenTTLSeconds: 86400,
		}}))
		want := store.Host{Key: "acme", Name: "Acme Corp", CreatedAt: h.CreatedAt, Settings: store.HostSettings{
			AllowedEmailDomains: []string{"acme.com"}, ToolVisibility: "callable", AccessTokenTTLSeconds: 86400,
		}}
		wantEqual(t, "UpdateHost", upd, want)
		wantEqual(t, "GetHost after update", must[store.Host](t, "get host")(s.GetHost(ctx, "acme")), want)
		// Settings are replaced whole.
		upd = must[store.Host](t, "update host")(s.UpdateHost(ctx, store.Host{Key: "acme", Name: "Acme Corp"}))
		wantEqual(t, "settings after clearing", must[store.Host](t, "get host")(s.GetHost(ctx, "acme")).Settings, store.HostSettings{})
		wantEqual(t, "UpdateHost returns the stored host", upd, must[store.Host](t, "get host")(s.GetHost(ctx, "acme")))

		_, err := s.UpdateHost(ctx, store.Host{Key: "nope", Name: "x"})
		wantErr(t, "update missing host", err, store.ErrNotFound)

		tooMany := make([]string, 101)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("d%d.example.com", i)
		}
		invalid := map[string]store.HostSettings{
			"domain with @":         {AllowedEmailDomains: []string{"@example.com"}},
			"email as domain":       {AllowedEmailDomains: []string{"bob@example.com"}},
			"empty domain":          {AllowedEmailDomains: []string{""}},
			"domain with space":     {AllowedEmailDomains: []string{"exa mple.com"}},
			"domain empty label":    {AllowedEmailDomains: []string{"example..com"}},
			"domain leading dash":   {AllowedEmailDomains: []string{"-example.com"}},
			"domain underscore":     {AllowedEmailDomains: []string{"ex_ample.com"}},
			"domain label too long": {AllowedEmailDomains: []string{strings.Repeat("a", 64) + ".com"}},
			"101 domains":           {AllowedEmailDomains: tooMany},
			"negative access TTL":   {AccessTokenTTLSeconds: -1},
			"access TTL over a day": {AccessTokenTTLSeconds: 86401},
			"negative idle TTL":     {SessionIdleTTLSeconds: -1},
			"negative max TTL":      {SessionMaxTTLSeconds: -5},
			"unknown visibility":    {ToolVisibility: "none"},
			"unknown denial format": {DenialFormat: "exception"},
			"unknown validation":    {ArgumentValidation: "maybe"},
			"unknown rate scope":    {RateLimits: []store.RateLimit{{Scope: "world", PerMinute: 1}}},
			"zero rate":             {RateLimits: []store.RateLimit{{Scope: "agent"}}},
			"negative burst":        {RateLimits: []store.RateLimit{{Scope: "agent", PerMinute: 1, Burst: -1}}},
			"tool without server":   {RateLimits: []store.RateLimit{{Scope: "agent", Tool: "x", PerMinute: 1}}},
			"duplicate rate rule":   {RateLimits: []store.RateLimit{{Scope: "agent", PerMinute: 1}, {Scope: "agent", PerMinute: 2}}},
			"long stop reason":      {EmergencyStop: &store.EmergencyStop{Reason: strings.Repeat("x", 1025)}},
		}
		for what, hs := range invalid {
			_, err := s.UpdateHost(ctx, store.Host{Key: "acme", Settings: hs})
			wantErr(t, what, err, store.ErrInvalid)
		}
		must[store.Host](t, "100 domains")(s.UpdateHost(ctx, store.Host{Key: "acme", Settings: store.HostSettings{AllowedEmailDomains: tooMany[:100]}}))
		_, err = s.UpdateHost(ctx, store.Host{Key: "acme", Name: "a\x00b"})
		wantErr(t, "NUL in host name", err, store.ErrInvalid)
		if got := must[store.Host](t, "get host")(s.GetHost(ctx, "acme")); got.Name != "" || len(got.Settings.AllowedEmailDomains) != 100 {
			t.Fatalf("a refused update changed the host: %+v", got)
		}
	})
}

func testEnsureHost(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		h := must[store.Host](t, "ensure new host")(s.EnsureHost(ctx, store.Host{Key: "default", Name: "Default", Settings: store.HostSettings{DynamicMCPs: true}}))
		if h.Name != "Default" || !h.Settings.DynamicMCPs || h.CreatedAt.IsZero() {
			t.Fatalf("EnsureHost created %+v", h)
		}
		wantEqual(t, "GetHost", must[store.Host](t, "get host")(s.GetHost(ctx, "default")), h)
		// A second call returns the existing host unchanged, whatever it is given.
		again := must[store.Host](t, "ensure existing host")(s.EnsureHost(ctx, store.Host{Key: "default", Name: "Other"}))
		wantEqual(t, "EnsureHost on an existing host", again, h)
		wantEqual(t, "GetHost after second EnsureHost", must[store.Host](t, "get host")(s.GetHost(ctx, "default")), h)

		_, err := s.EnsureHost(ctx, store.Host{Key: "Not-A-Label"})
		wantErr(t, "EnsureHost with an invalid key", err, store.ErrInvalid)
		_, err = s.EnsureHost(ctx, store.Host{Key: "x", Settings: store.HostSettings{AccessTokenTTLSeconds: -1}})
		wantErr(t, "EnsureHost with invalid settings", err, store.ErrInvalid)
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("EnsureHost wrote %d outbox rows", n)
		}
	})
}

func testUserAdminAndActivity(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		active := ms(1700000000, 123)
		u := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io", Name: "Alice", Admin: true, LastActiveAt: active.Add(456 * time.Microsecond).In(time.FixedZone("X", 3600))}))
		if !u.Admin || !u.LastActiveAt.Equal(active) || u.LastActiveAt.Location() != time.UTC {
			t.Fatalf("CreateUser = %+v", u)
		}
		wantEqual(t, "GetUser", must[store.User](t, "get user")(s.GetUser(ctx, "acme", "alice")), u)
		bob := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "bob", Email: "b@x.io"}))
		if bob.Admin || !bob.LastActiveAt.IsZero() {
			t.Fatalf("CreateUser(bob) = %+v", bob)
		}
		wantEqual(t, "GetUser(bob)", must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")), bob)
		wantEqual(t, "ListUsers", must[[]store.User](t, "list users")(s.ListUsers(ctx, "acme")), []store.User{u, bob})

		// UpdateUser changes the name and the admin flag only.
		upd := must[store.User](t, "update user")(s.UpdateUser(ctx, store.User{Host: "acme", ID: "bob", Email: "ignored@x.io", Name: "Bob", Admin: true, LastActiveAt: active}))
		want := bob
		want.Name, want.Admin = "Bob", true
		wantEqual(t, "UpdateUser", upd, want)
		wantEqual(t, "GetUser after update", must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")), want)
		_, err := s.UpdateUser(ctx, store.User{Host: "acme", ID: "nobody", Name: "x"})
		wantErr(t, "update missing user", err, store.ErrNotFound)
		_, err = s.UpdateUser(ctx, store.User{Host: "other", ID: "bob", Name: "x"})
		wantErr(t, "update user of another host", err, store.ErrNotFound)
		_, err = s.UpdateUser(ctx, store.User{Host: "acme", ID: "bob", Name: "a\x00b"})
		wantErr(t, "update user with NUL name", err, store.ErrInvalid)

		// TouchUser writes at most once a minute, and never moves back.
		drainAll(t, s)
		t0 := ms(1800000000, 0)
		noErr(t, "touch", s.TouchUser(ctx, "acme", "bob", t0))
		if got := must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")).LastActiveAt; !got.Equal(t0) {
			t.Fatalf("LastActiveAt after first touch = %v, want %v", got, t0)
		}
		noErr(t, "touch", s.TouchUser(ctx, "acme", "bob", t0.Add(59*time.Second)))
		if got := must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")).LastActiveAt; !got.Equal(t0) {
			t.Fatalf("a touch within the minute wrote: LastActiveAt = %v, want %v", got, t0)
		}
		noErr(t, "touch", s.TouchUser(ctx, "acme", "bob", t0.Add(-time.Hour)))
		if got := must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")).LastActiveAt; !got.Equal(t0) {
			t.Fatalf("an older touch moved LastActiveAt back to %v", got)
		}
		t1 := t0.Add(61 * time.Second)
		noErr(t, "touch", s.TouchUser(ctx, "acme", "bob", t1))
		if got := must[store.User](t, "get user")(s.GetUser(ctx, "acme", "bob")).LastActiveAt; !got.Equal(t1) {
			t.Fatalf("LastActiveAt after a touch past the minute = %v, want %v", got, t1)
		}
		wantErr(t, "touch missing user", s.TouchUser(ctx, "acme", "nobody", t1), store.ErrNotFound)
		wantErr(t, "touch user of another host", s.TouchUser(ctx, "other", "bob", t1), store.ErrNotFound)
		wantErr(t, "touch at the zero time", s.TouchUser(ctx, "acme", "bob", time.Time{}), store.ErrInvalid)
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("TouchUser wrote %d outbox rows", n)
		}
	})
}

// testHostAdminTuple: the host#admin relation follows User.Admin through the outbox and
// Relationships.
func testHostAdminTuple(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		admin := schema.HostAdmin("acme", "alice")
		member := schema.HostMember("acme", "alice")
		expect := func(what string, want ...string) {
			t.Helper()
			got := changeStrings(drainAll(t, s))
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: outbox\n got %q\nwant %q", what, got, want)
			}
		}
		hasAdmin := func() bool { return relationshipSet(t, s)[admin.String()] }
		T := func(r schema.Relationship) string { return "touch " + r.String() }
		D := func(r schema.Relationship) string { return "delete " + r.String() }

		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create admin")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io", Admin: true}))
		expect("CreateUser admin", T(member), T(admin))
		if !hasAdmin() {
			t.Fatal("Relationships lacks the admin tuple of an admin")
		}
		must[store.User](t, "update user")(s.UpdateUser(ctx, store.User{Host: "acme", ID: "alice", Name: "Alice", Admin: true}))
		expect("UpdateUser still admin", T(admin))
		must[store.User](t, "demote")(s.UpdateUser(ctx, store.User{Host: "acme", ID: "alice", Admin: false}))
		expect("UpdateUser demote", D(admin))
		if hasAdmin() {
			t.Fatal("Relationships keeps the admin tuple of a demoted human")
		}
		must[store.User](t, "update user")(s.UpdateUser(ctx, store.User{Host: "acme", ID: "alice", Name: "A"}))
		expect("UpdateUser not admin, no change")
		must[store.User](t, "promote")(s.UpdateUser(ctx, store.User{Host: "acme", ID: "alice", Admin: true}))
		expect("UpdateUser promote", T(admin))
		if !hasAdmin() {
			t.Fatal("Relationships lacks the admin tuple of a promoted human")
		}
		noErr(t, "delete user", s.DeleteUser(ctx, "acme", "alice"))
		expect("DeleteUser admin", D(member), D(admin))
		if hasAdmin() {
			t.Fatal("Relationships keeps the admin tuple of a deleted human")
		}
		must[store.User](t, "create admin")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io", Admin: true}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "bob", Email: "b@x.io"}))
		expect("CreateUser admin and not", T(member), T(admin), T(schema.HostMember("acme", "bob")))
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		expect("DeleteHost", D(member), D(admin), D(schema.HostMember("acme", "bob")))
		assertOutboxReplayMatches(t, s, map[string]bool{})
	})
}

func testServerCredentials(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		sealed := []byte{0, 1, 2, 0xff, 0xfe, 'x', 0}
		sv := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{
			Host: "acme", Key: "linear", Name: "Linear", URL: "https://mcp.linear.app/mcp", CredentialKind: "header", Credentials: sealed,
		}))
		if !sv.UpdatedAt.Equal(sv.CreatedAt) || sv.CredentialKind != "header" || !slices.Equal(sv.Credentials, sealed) {
			t.Fatalf("CreateServer = %+v", sv)
		}
		sealed[0] = 42 // the store keeps its own copy
		if sv.Credentials[0] != 0 {
			t.Fatal("CreateServer returned the caller's credentials slice")
		}
		wantEqual(t, "GetServer", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "linear")), sv)
		plain := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "plain", Credentials: []byte{}}))
		if plain.Credentials != nil || plain.CredentialKind != "" {
			t.Fatalf("server without credentials = %+v", plain)
		}
		wantEqual(t, "GetServer(plain)", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "plain")), plain)
		wantEqual(t, "ListServers", must[[]store.Server](t, "list servers")(s.ListServers(ctx, "acme")), []store.Server{sv, plain})

		time.Sleep(2 * time.Millisecond)
		drainAll(t, s)
		upd := must[store.Server](t, "update server")(s.UpdateServer(ctx, store.Server{
			Host: "acme", Key: "linear", Name: "Linear 2", Description: "Issues", URL: "https://other/mcp",
			CredentialKind: "oauth_client", Credentials: []byte(`{"sealed":true}`),
		}))
		if upd.Name != "Linear 2" || upd.Description != "Issues" || upd.URL != "https://other/mcp" || upd.CredentialKind != "oauth_client" ||
			string(upd.Credentials) != `{"sealed":true}` || !upd.CreatedAt.Equal(sv.CreatedAt) || !upd.UpdatedAt.After(sv.UpdatedAt) {
			t.Fatalf("UpdateServer = %+v", upd)
		}
		wantEqual(t, "GetServer after update", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "linear")), upd)
		// Everything is replaced: empty values clear.
		cleared := must[store.Server](t, "update server")(s.UpdateServer(ctx, store.Server{Host: "acme", Key: "linear"}))
		if cleared.Name != "" || cleared.URL != "" || cleared.CredentialKind != "" || cleared.Credentials != nil {
			t.Fatalf("UpdateServer with empty values = %+v", cleared)
		}
		wantEqual(t, "GetServer after clearing", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "linear")), cleared)
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("UpdateServer wrote %d outbox rows", n)
		}

		_, err := s.UpdateServer(ctx, store.Server{Host: "acme", Key: "nope"})
		wantErr(t, "update missing server", err, store.ErrNotFound)
		_, err = s.UpdateServer(ctx, store.Server{Host: "other", Key: "linear"})
		wantErr(t, "update server of another host", err, store.ErrNotFound)
		_, err = s.UpdateServer(ctx, store.Server{Host: "acme", Key: "linear", CredentialKind: "password"})
		wantErr(t, "unknown credential kind", err, store.ErrInvalid)
		_, err = s.CreateServer(ctx, store.Server{Host: "acme", Key: "x", CredentialKind: "basic"})
		wantErr(t, "create with unknown credential kind", err, store.ErrInvalid)
		_, err = s.UpdateServer(ctx, store.Server{Host: "acme", Key: "linear", Credentials: make([]byte, 64<<10+1)})
		wantErr(t, "oversized credentials", err, store.ErrInvalid)
		_, err = s.UpdateServer(ctx, store.Server{Host: "acme", Key: "linear", URL: "a\x00b"})
		wantErr(t, "NUL in URL", err, store.ErrInvalid)
	})
}

func testToolAdminFields(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "gh"}))
		tool := must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{
			Host: "acme", Server: "gh", Name: "merge_pr", Description: "Merges", InputSchema: `{"type":"object"}`,
			Title: "Merge pull request", Annotations: `{"destructiveHint":true,"readOnlyHint":false}`,
			Level: schema.High, LevelOverridden: true, Enabled: true,
			DefinitionHash: "sha256:abc", ApprovedHash: "sha256:abc",
		}))
		wantEqual(t, "GetTool", must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "gh", "merge_pr")), tool)

		// Flag it: the definition changed upstream.
		flagged := must[store.Tool](t, "flag tool")(s.PutTool(ctx, store.Tool{
			Host: "acme", Server: "gh", Name: "merge_pr", Title: "Merge", Level: schema.Medium,
			DefinitionHash: "sha256:def", ApprovedHash: "sha256:abc", Flagged: true, FlagReason: "description changed",
		}))
		got := must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "gh", "merge_pr"))
		wantEqual(t, "GetTool flagged", got, flagged)
		if !got.Flagged || got.Enabled || got.LevelOverridden || got.Annotations != "" || got.FlagReason != "description changed" || got.DefinitionHash != "sha256:def" {
			t.Fatalf("flagged tool = %+v", got)
		}
		wantEqual(t, "ListTools", must[[]store.Tool](t, "list tools")(s.ListTools(ctx, "acme", "gh")), []store.Tool{flagged})

		_, err := s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "merge_pr", Level: schema.Low, Flagged: true, Enabled: true})
		wantErr(t, "flagged and enabled", err, store.ErrInvalid)
		if err != nil && !strings.Contains(err.Error(), "a flagged tool cannot be enabled; approve it first") {
			t.Errorf("error %q does not say a flagged tool cannot be enabled", err)
		}
		wantEqual(t, "tool after a refused put", must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "gh", "merge_pr")), flagged)
		_, err = s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "x", Level: schema.Low, Annotations: "{nope"})
		wantErr(t, "invalid annotations JSON", err, store.ErrInvalid)
		_, err = s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "x", Level: schema.Low, Title: "a\x00b"})
		wantErr(t, "NUL in title", err, store.ErrInvalid)
		// Approve: flag cleared, enabled again.
		approved := must[store.Tool](t, "approve tool")(s.PutTool(ctx, store.Tool{
			Host: "acme", Server: "gh", Name: "merge_pr", Level: schema.Medium, Enabled: true,
			DefinitionHash: "sha256:def", ApprovedHash: "sha256:def",
		}))
		wantEqual(t, "GetTool approved", must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "gh", "merge_pr")), approved)
	})
}

func testAgentAdminFields(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
		uris := []string{"https://claude.ai/api/mcp/auth_callback", "http://127.0.0.1:33418/callback"}
		a := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{
			Host: "acme", ID: "claude", UserID: "alice", ClientID: "c1", Name: "Claude", RedirectURIs: uris, Type: "chat",
			LastActiveAt: ms(1700000000, 1),
		}))
		uris[0] = "changed" // the store keeps its own copy
		if a.RedirectURIs[0] != "https://claude.ai/api/mcp/auth_callback" || a.Type != "chat" || a.Disabled || !a.LastActiveAt.Equal(ms(1700000000, 1)) {
			t.Fatalf("CreateAgent = %+v", a)
		}
		wantEqual(t, "GetAgent", must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "claude")), a)
		plain := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "plain", UserID: "alice", RedirectURIs: []string{}}))
		if plain.RedirectURIs != nil || plain.Type != "" || !plain.LastActiveAt.IsZero() {
			t.Fatalf("CreateAgent(plain) = %+v", plain)
		}
		wantEqual(t, "GetAgent(plain)", must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "plain")), plain)
		wantEqual(t, "ListAgents", must[[]store.Agent](t, "list agents")(s.ListAgents(ctx, "acme", "alice")), []store.Agent{a, plain})

		for _, typ := range []string{"proactive", "ambient", "chat", ""} {
			upd := must[store.Agent](t, "update agent")(s.UpdateAgent(ctx, store.Agent{
				Host: "acme", ID: "claude", Name: "Claude " + typ, Type: typ,
				UserID: "bob", ClientID: "other", RedirectURIs: []string{"https://evil"}, Disabled: true,
			}))
			want := a
			want.Name, want.Type = "Claude "+typ, typ
			wantEqual(t, "UpdateAgent "+typ, upd, want)
			wantEqual(t, "GetAgent after update "+typ, must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "claude")), want)
		}
		_, err := s.UpdateAgent(ctx, store.Agent{Host: "acme", ID: "claude", Type: "robot"})
		wantErr(t, "update agent with unknown type", err, store.ErrInvalid)
		_, err = s.UpdateAgent(ctx, store.Agent{Host: "acme", ID: "nope"})
		wantErr(t, "update missing agent", err, store.ErrNotFound)
		_, err = s.UpdateAgent(ctx, store.Agent{Host: "other", ID: "claude"})
		wantErr(t, "update agent of another host", err, store.ErrNotFound)

		tooMany := make([]string, 21)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("https://x/%d", i)
		}
		invalid := map[string]store.Agent{
			"unknown type":      {Type: "assistant"},
			"21 redirect URIs":  {RedirectURIs: tooMany},
			"long redirect URI": {RedirectURIs: []string{"https://x/" + strings.Repeat("a", 2048)}},
			"empty redirect":    {RedirectURIs: []string{""}},
			"NUL in redirect":   {RedirectURIs: []string{"https://x/\x00"}},
		}
		for what, ag := range invalid {
			ag.Host, ag.UserID = "acme", "alice"
			_, err := s.CreateAgent(ctx, ag)
			wantErr(t, what, err, store.ErrInvalid)
		}
		must[store.Agent](t, "20 redirect URIs of 2048 characters")(s.CreateAgent(ctx, store.Agent{
			Host: "acme", UserID: "alice", RedirectURIs: append(tooMany[:19], "https://x/"+strings.Repeat("a", 2048-len("https://x/"))),
		}))

		// TouchAgent, like TouchUser.
		drainAll(t, s)
		t0 := ms(1800000000, 0)
		noErr(t, "touch agent", s.TouchAgent(ctx, "acme", "plain", t0))
		noErr(t, "touch agent", s.TouchAgent(ctx, "acme", "plain", t0.Add(30*time.Second)))
		if got := must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "plain")).LastActiveAt; !got.Equal(t0) {
			t.Fatalf("LastActiveAt = %v, want %v", got, t0)
		}
		noErr(t, "touch agent", s.TouchAgent(ctx, "acme", "plain", t0.Add(2*time.Minute)))
		if got := must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "plain")).LastActiveAt; !got.Equal(t0.Add(2 * time.Minute)) {
			t.Fatalf("LastActiveAt = %v, want %v", got, t0.Add(2*time.Minute))
		}
		wantErr(t, "touch missing agent", s.TouchAgent(ctx, "acme", "nope", t0), store.ErrNotFound)
		wantErr(t, "touch agent of another host", s.TouchAgent(ctx, "other", "plain", t0), store.ErrNotFound)
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("UpdateAgent/TouchAgent wrote %d outbox rows", n)
		}
	})
}

func testKillAgent(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		f := buildFixture(t, s, "acme")
		buildFixture(t, s, "other")
		drainAll(t, s)
		replayed := relationshipSet(t, s)

		killed := must[store.Agent](t, "kill agent")(s.KillAgent(ctx, "acme", f.aliceA.ID))
		want := f.aliceA
		want.Disabled = true
		wantEqual(t, "KillAgent", killed, want)
		wantEqual(t, "GetAgent after kill", must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", f.aliceA.ID)), want)

		// The outbox deletes exactly the agent's tuples and its consents' tuples (with their
		// copies of the human's ceiling).
		changes := drainAll(t, s)
		var got []string
		for _, c := range changes {
			if c.Op != store.Delete {
				t.Fatalf("KillAgent wrote %s %s", c.Op, c.Relationship)
			}
			got = append(got, c.Relationship.String())
		}
		var wantRels []string
		for _, r := range schema.AgentTuples("acme", f.aliceA.ID, f.alice.ID) {
			wantRels = append(wantRels, r.String())
		}
		for _, sv := range f.servers {
			wantRels = append(wantRels, schema.Grant("acme", sv, f.aliceA.ID, schema.Medium).String(),
				schema.Ceiling("acme", sv, f.aliceA.ID, schema.High).String())
		}
		slices.Sort(got)
		slices.Sort(wantRels)
		if !slices.Equal(got, wantRels) {
			t.Fatalf("KillAgent outbox\n got %q\nwant %q", got, wantRels)
		}
		replay(replayed, changes)
		if cs := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", f.aliceA.ID)); len(cs) != 0 {
			t.Fatalf("consents of a killed agent remain: %+v", cs)
		}
		if cs := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", f.bobA.ID)); len(cs) != 2 {
			t.Fatalf("consents of another agent changed: %+v", cs)
		}
		for k := range relationshipSet(t, s) {
			if strings.Contains(k, "agent:acme/"+f.aliceA.ID) {
				t.Errorf("Relationships keeps a tuple of the killed agent: %s", k)
			}
		}

		_, err := s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: f.aliceA.ID, Server: "linear", Level: schema.Low})
		wantErr(t, "consent to a disabled agent", err, store.ErrConflict)
		if errors.Is(err, store.ErrNotGranted) {
			t.Errorf("a disabled agent's refusal is %v, which says the grant does not allow the level", err)
		}
		if err != nil && !strings.Contains(err.Error(), "agent "+f.aliceA.ID+" is disabled") {
			t.Errorf("error %q does not say the agent is disabled", err)
		}
		// Killing again is harmless; renaming keeps it disabled.
		wantEqual(t, "KillAgent again", must[store.Agent](t, "kill agent")(s.KillAgent(ctx, "acme", f.aliceA.ID)), want)
		upd := must[store.Agent](t, "update agent")(s.UpdateAgent(ctx, store.Agent{Host: "acme", ID: f.aliceA.ID, Name: "dead"}))
		if !upd.Disabled {
			t.Fatal("UpdateAgent enabled a killed agent")
		}
		_, err = s.KillAgent(ctx, "acme", "a_nobody")
		wantErr(t, "kill missing agent", err, store.ErrNotFound)
		_, err = s.KillAgent(ctx, "other", f.aliceA.ID)
		wantErr(t, "kill agent of another host", err, store.ErrNotFound)
		assertOutboxReplayMatches(t, s, replayed)

		// Deleting a killed agent, or its human, deletes no tuple it no longer has.
		noErr(t, "delete killed agent", s.DeleteAgent(ctx, "acme", f.aliceA.ID))
		if cs := drainAll(t, s); len(cs) != 0 {
			t.Fatalf("DeleteAgent of a killed agent wrote %q", changeStrings(cs))
		}

		// An agent created disabled derives nothing and takes no consent.
		dead := must[store.Agent](t, "create disabled agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: "dead", UserID: f.bob.ID, Disabled: true}))
		if !dead.Disabled {
			t.Fatalf("CreateAgent(disabled) = %+v", dead)
		}
		wantEqual(t, "GetAgent(disabled)", must[store.Agent](t, "get agent")(s.GetAgent(ctx, "acme", "dead")), dead)
		if cs := drainAll(t, s); len(cs) != 0 {
			t.Fatalf("CreateAgent(disabled) wrote %q", changeStrings(cs))
		}
		_, err = s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: "dead", Server: "linear", Level: schema.Low})
		wantErr(t, "consent to an agent created disabled", err, store.ErrConflict)
		noErr(t, "delete user", s.DeleteUser(ctx, "acme", f.bob.ID))
		assertOutboxReplayMatches(t, s, replayed)
	})
}

func testAPITokens(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "beta"}))
		hash := func(i int) string { return fmt.Sprintf("%064x", i) }

		global := must[store.APIToken](t, "create global token")(s.CreateAPIToken(ctx, store.APIToken{Name: "ops", Hash: hash(1), Prefix: "tg_ab12"}))
		if !regexpTokenID.MatchString(global.ID) || global.Host != "" || global.CreatedAt.IsZero() || !global.LastUsedAt.IsZero() {
			t.Fatalf("CreateAPIToken = %+v", global)
		}
		wantEqual(t, "GetAPITokenByHash", must[store.APIToken](t, "get token")(s.GetAPITokenByHash(ctx, hash(1))), global)
		time.Sleep(2 * time.Millisecond)
		acme1 := must[store.APIToken](t, "create token")(s.CreateAPIToken(ctx, store.APIToken{ID: "t_zzz", Host: "acme", Name: "ci", Hash: hash(2)}))
		time.Sleep(2 * time.Millisecond)
		acme2 := must[store.APIToken](t, "create token")(s.CreateAPIToken(ctx, store.APIToken{ID: "t_aaa", Host: "acme", Name: "deploy", Hash: hash(3), Scope: store.TokenScopeCheck}))
		if got := must[store.APIToken](t, "get token")(s.GetAPITokenByHash(ctx, hash(3))).Scope; got != store.TokenScopeCheck {
			t.Fatalf("a check-scoped token reads back with scope %q", got)
		}
		beta := must[store.APIToken](t, "create token")(s.CreateAPIToken(ctx, store.APIToken{Host: "beta", Name: strings.Repeat("é", 128), Hash: hash(4)}))

		wantEqual(t, "ListAPITokens(acme)", must[[]store.APIToken](t, "list")(s.ListAPITokens(ctx, "acme")), []store.APIToken{acme1, acme2})
		wantEqual(t, "ListAPITokens(beta)", must[[]store.APIToken](t, "list")(s.ListAPITokens(ctx, "beta")), []store.APIToken{beta})
		wantEqual(t, "ListAPITokens(global)", must[[]store.APIToken](t, "list")(s.ListAPITokens(ctx, "")), []store.APIToken{global})
		_, err := s.ListAPITokens(ctx, "nope")
		wantErr(t, "list tokens of missing host", err, store.ErrNotFound)

		_, err = s.CreateAPIToken(ctx, store.APIToken{Host: "beta", Name: "dup", Hash: hash(2)})
		wantErr(t, "duplicate hash", err, store.ErrConflict)
		_, err = s.CreateAPIToken(ctx, store.APIToken{ID: "t_zzz", Name: "dup", Hash: hash(9)})
		wantErr(t, "duplicate id", err, store.ErrConflict)
		_, err = s.CreateAPIToken(ctx, store.APIToken{Host: "nope", Name: "x", Hash: hash(9)})
		wantErr(t, "token of missing host", err, store.ErrNotFound)
		invalid := map[string]store.APIToken{
			"no hash":          {Name: "x"},
			"short hash":       {Name: "x", Hash: hash(9)[:63]},
			"upper-case hash":  {Name: "x", Hash: strings.Repeat("A", 64)},
			"non-hex hash":     {Name: "x", Hash: strings.Repeat("g", 64)},
			"no name":          {Hash: hash(9)},
			"name too long":    {Name: strings.Repeat("n", 129), Hash: hash(9)},
			"NUL in name":      {Name: "a\x00", Hash: hash(9)},
			"id with slash":    {ID: "t/1", Name: "x", Hash: hash(9)},
			"prefix too long":  {Name: "x", Hash: hash(9), Prefix: strings.Repeat("p", 65)},
			"invalid UTF-8":    {Name: "\xff", Hash: hash(9)},
			"NUL in the token": {Name: "x", Hash: hash(9), Prefix: "\x00"},
			"unknown scope":    {Name: "x", Hash: hash(9), Scope: "root"},
		}
		for what, tok := range invalid {
			_, err := s.CreateAPIToken(ctx, tok)
			wantErr(t, what, err, store.ErrInvalid)
		}
		_, err = s.GetAPITokenByHash(ctx, hash(9))
		wantErr(t, "get missing token", err, store.ErrNotFound)

		// TouchAPIToken writes at most once a minute.
		t0 := ms(1800000000, 0)
		noErr(t, "touch token", s.TouchAPIToken(ctx, acme1.ID, t0))
		noErr(t, "touch token", s.TouchAPIToken(ctx, acme1.ID, t0.Add(time.Minute)))
		if got := must[store.APIToken](t, "get token")(s.GetAPITokenByHash(ctx, hash(2))).LastUsedAt; !got.Equal(t0) {
			t.Fatalf("LastUsedAt = %v, want %v", got, t0)
		}
		noErr(t, "touch token", s.TouchAPIToken(ctx, acme1.ID, t0.Add(time.Minute+time.Millisecond)))
		if got := must[store.APIToken](t, "get token")(s.GetAPITokenByHash(ctx, hash(2))).LastUsedAt; !got.Equal(t0.Add(time.Minute + time.Millisecond)) {
			t.Fatalf("LastUsedAt = %v, want %v", got, t0.Add(time.Minute+time.Millisecond))
		}
		wantErr(t, "touch missing token", s.TouchAPIToken(ctx, "t_nope", t0), store.ErrNotFound)

		noErr(t, "delete token", s.DeleteAPIToken(ctx, acme2.ID))
		wantErr(t, "delete deleted token", s.DeleteAPIToken(ctx, acme2.ID), store.ErrNotFound)
		_, err = s.GetAPITokenByHash(ctx, hash(3))
		wantErr(t, "get deleted token", err, store.ErrNotFound)
		// The hash is free again.
		must[store.APIToken](t, "reuse hash")(s.CreateAPIToken(ctx, store.APIToken{Host: "acme", Name: "again", Hash: hash(3)}))

		// Deleting a host deletes its tokens, and only its.
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		for _, h := range []int{2, 3} {
			_, err = s.GetAPITokenByHash(ctx, hash(h))
			wantErr(t, "token of a deleted host", err, store.ErrNotFound)
		}
		must[store.APIToken](t, "global token survives")(s.GetAPITokenByHash(ctx, hash(1)))
		must[store.APIToken](t, "other host's token survives")(s.GetAPITokenByHash(ctx, hash(4)))
		must[store.Host](t, "recreate host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		if ts := must[[]store.APIToken](t, "list")(s.ListAPITokens(ctx, "acme")); len(ts) != 0 {
			t.Fatalf("recreated host has tokens %+v", ts)
		}
		if n := must[int](t, "pending")(s.PendingRelationshipChanges(ctx)); n != 0 {
			t.Fatalf("token operations wrote %d outbox rows", n)
		}
		if !errors.Is(s.DeleteAPIToken(ctx, ""), store.ErrNotFound) {
			t.Fatal("DeleteAPIToken(\"\") is not ErrNotFound")
		}
	})
}

// testKillAgentRacesConsents: consents given while the agent is being killed either land before
// the kill (and are deleted by it) or are refused after it; none survives, and the outbox agrees
// with the rows.
func testKillAgentRacesConsents(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
		servers := []string{"s0", "s1", "s2", "s3"}
		for _, sv := range servers {
			must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: sv}))
			must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: sv, UserID: "alice", Ceiling: schema.High}))
		}
		for round := range 4 {
			id := fmt.Sprintf("agent%d", round)
			must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", ID: id, UserID: "alice"}))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, sv := range servers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: id, Server: sv, Level: schema.Levels[i%3]})
					if err != nil && !errors.Is(err, store.ErrConflict) {
						t.Errorf("SetConsent racing KillAgent: %v, want success or ErrConflict", err)
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := s.KillAgent(ctx, "acme", id); err != nil {
					t.Errorf("KillAgent: %v", err)
				}
			}()
			close(start)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			if cs := must[[]store.Consent](t, "list consents")(s.ListConsents(ctx, "acme", id)); len(cs) != 0 {
				t.Fatalf("round %d: consents survived the kill: %+v", round, cs)
			}
		}
		assertOutboxReplayMatches(t, s, map[string]bool{})
	})
}

// A server's network is stored and read back; none given is the restricted "host"; anything
// else is refused.
func testServerNetwork(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		plain := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "plain", URL: "https://a/mcp"}))
		if plain.Network != store.NetworkHost {
			t.Fatalf("network of a server created without one = %q, want %q", plain.Network, store.NetworkHost)
		}
		op := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "internal", URL: "http://10.0.0.5/mcp", Network: store.NetworkAny}))
		wantEqual(t, "GetServer", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "internal")), op)
		op.Network = store.NetworkHost
		upd := must[store.Server](t, "update server")(s.UpdateServer(ctx, op))
		if got := must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "internal")); got.Network != store.NetworkHost || upd.Network != store.NetworkHost {
			t.Fatalf("network after update = %q", got.Network)
		}
		if _, err := s.CreateServer(ctx, store.Server{Host: "acme", Key: "odd", Network: "intranet"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("CreateServer with network %q: %v, want ErrInvalid", "intranet", err)
		}
		if _, err := s.UpdateServer(ctx, store.Server{Host: "acme", Key: "internal", Network: "all"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("UpdateServer with network %q: %v, want ErrInvalid", "all", err)
		}
	})
}

// A host's result-filter settings and a server's own mode are stored and read back; invalid
// ones are refused and change nothing.
func testDLPSettings(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		settings := store.HostSettings{DLP: dlp.Settings{Mode: dlp.ModeRedact, Kinds: []dlp.Kind{dlp.AWSAccessKeyID, dlp.CardNumber},
			Patterns: []dlp.Pattern{{Name: "employee_id", Regexp: `\bEMP-\d{6}\b`}}}}
		h := must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Settings: settings}))
		wantEqual(t, "created DLP settings", h.Settings.DLP, settings.DLP)
		wantEqual(t, "GetHost DLP settings", must[store.Host](t, "get host")(s.GetHost(ctx, "acme")).Settings.DLP, settings.DLP)
		for what, d := range map[string]dlp.Settings{
			"unknown mode":    {Mode: "shred"},
			"unknown kind":    {Kinds: []dlp.Kind{"ssn"}},
			"invalid pattern": {Patterns: []dlp.Pattern{{Name: "x", Regexp: "(a"}}},
		} {
			_, err := s.UpdateHost(ctx, store.Host{Key: "acme", Settings: store.HostSettings{DLP: d}})
			wantErr(t, what, err, store.ErrInvalid)
		}
		wantEqual(t, "DLP settings after refused updates", must[store.Host](t, "get host")(s.GetHost(ctx, "acme")).Settings.DLP, settings.DLP)

		plain := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "plain", URL: "https://a/mcp"}))
		if plain.DLPMode != "" {
			t.Fatalf("DLP mode of a server created without one = %q, want \"\" (the host's)", plain.DLPMode)
		}
		sv := must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "billing", URL: "https://b/mcp", DLPMode: dlp.ModeBlock}))
		wantEqual(t, "GetServer", must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "billing")), sv)
		sv.DLPMode = dlp.ModeOff
		must[store.Server](t, "update server")(s.UpdateServer(ctx, sv))
		if got := must[store.Server](t, "get server")(s.GetServer(ctx, "acme", "billing")); got.DLPMode != dlp.ModeOff {
			t.Fatalf("DLP mode after update = %q", got.DLPMode)
		}
		if _, err := s.CreateServer(ctx, store.Server{Host: "acme", Key: "odd", URL: "https://c/mcp", DLPMode: "mask"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("CreateServer with DLP mode %q: %v, want ErrInvalid", "mask", err)
		}
		sv.DLPMode = "shred"
		if _, err := s.UpdateServer(ctx, sv); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("UpdateServer with DLP mode %q: %v, want ErrInvalid", "shred", err)
		}
	})
}
