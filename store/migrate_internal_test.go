package store

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
)

// TestMigrationFromVersion1 builds a database at schema version 1 holding data, as a trustgate of
// that version left it, then opens it with this binary: migration 2 must apply on top and keep
// every row, the new columns reading as their defaults.
func TestMigrationFromVersion1(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name string
		// open returns a backend on a fresh database and the config that opens it as a Store.
		open func(t *testing.T) (backend, Config)
	}{
		{"sqlite", func(t *testing.T) (backend, Config) {
			dir := t.TempDir()
			b, err := openSQLite(ctx, filepath.Join(dir, sqliteFileName), log)
			if err != nil {
				t.Fatal(err)
			}
			return b, Config{DataDir: dir, Logger: log}
		}},
		{"postgres", func(t *testing.T) (backend, Config) {
			url := services.Postgres(t)
			b, err := openPostgres(ctx, EnginePostgres, url, 5*time.Second, log)
			if err != nil {
				t.Fatal(err)
			}
			return b, Config{URL: url, Logger: log}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, cfg := c.open(t)
			if err := migrateTo(ctx, b, log, 1); err != nil {
				t.Fatalf("migrate to version 1: %v", err)
			}
			if v, err := schemaVersion(ctx, b.q()); err != nil || v != 1 {
				t.Fatalf("schema version %d, %v; want 1", v, err)
			}
			created := int64(1700000000000)
			stmts := []struct {
				sql  string
				args []any
			}{
				{"INSERT INTO hosts (host_key, name, created_at) VALUES (?, ?, ?)", []any{"acme", "Acme", created}},
				{"INSERT INTO users (host_key, id, email, name, created_at) VALUES (?, ?, ?, ?, ?)", []any{"acme", "alice", "alice@acme.test", "Alice", created}},
				{"INSERT INTO servers (host_key, server_key, name, description, url, created_at) VALUES (?, ?, ?, ?, ?, ?)",
					[]any{"acme", "linear", "Linear", "Issues", "https://mcp.linear.test/mcp", created}},
				{"INSERT INTO tools (host_key, server_key, name, description, input_schema, level, enabled, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
					[]any{"acme", "linear", "create_issue", "Creates", `{"type":"object"}`, "medium", true, created}},
				{"INSERT INTO grants (host_key, server_key, user_id, ceiling, updated_at) VALUES (?, ?, ?, ?, ?)", []any{"acme", "linear", "alice", "high", created}},
				{"INSERT INTO agents (host_key, id, user_id, client_id, name, created_at) VALUES (?, ?, ?, ?, ?, ?)", []any{"acme", "claude", "alice", "c1", "Claude", created}},
				{"INSERT INTO consents (host_key, agent_id, server_key, level, updated_at) VALUES (?, ?, ?, ?, ?)", []any{"acme", "claude", "linear", "medium", created}},
				{"INSERT INTO relationship_outbox (op, relationship, created_at) VALUES (?, ?, ?)", []any{"touch", schema.HostMember("acme", "alice").String(), created}},
			}
			for _, st := range stmts {
				if _, err := b.q().exec(ctx, st.sql, st.args...); err != nil {
					t.Fatalf("%s: %v", st.sql, err)
				}
			}
			if err := b.close(); err != nil {
				t.Fatal(err)
			}

			st, err := Open(ctx, cfg)
			if err != nil {
				t.Fatalf("open the version-1 database: %v", err)
			}
			defer st.Close()
			if v, err := st.SchemaVersion(ctx); err != nil || v != LatestVersion() || v < 2 {
				t.Fatalf("schema version after upgrade %d, %v; want %d", v, err, LatestVersion())
			}
			at := fromMillis(created)
			check := func(what string, got, want any, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s after upgrade =\n  %+v\nwant\n  %+v", what, got, want)
				}
			}
			h, err := st.GetHost(ctx, "acme")
			check("host", h, Host{Key: "acme", Name: "Acme", CreatedAt: at}, err)
			u, err := st.GetUser(ctx, "acme", "alice")
			check("user", u, User{Host: "acme", ID: "alice", Email: "alice@acme.test", Name: "Alice", CreatedAt: at}, err)
			sv, err := st.GetServer(ctx, "acme", "linear")
			check("server", sv, Server{Host: "acme", Key: "linear", Name: "Linear", Description: "Issues", URL: "https://mcp.linear.test/mcp",
				Network: NetworkAny, CreatedAt: at, UpdatedAt: at}, err) // servers that exist at version 14 keep reaching any network
			tl, err := st.GetTool(ctx, "acme", "linear", "create_issue")
			check("tool", tl, Tool{Host: "acme", Server: "linear", Name: "create_issue", Description: "Creates", InputSchema: `{"type":"object"}`,
				Level: schema.Medium, Enabled: true, UpdatedAt: at}, err)
			a, err := st.GetAgent(ctx, "acme", "claude")
			check("agent", a, Agent{Host: "acme", ID: "claude", UserID: "alice", ClientID: "c1", Name: "Claude", CreatedAt: at}, err)
			g, err := st.GetGrant(ctx, "acme", "linear", "alice")
			check("grant", g, Grant{Host: "acme", Server: "linear", UserID: "alice", Ceiling: schema.High, UpdatedAt: at}, err)
			cn, err := st.GetConsent(ctx, "acme", "claude", "linear")
			check("consent", cn, Consent{Host: "acme", AgentID: "claude", Server: "linear", Level: schema.Medium, UpdatedAt: at}, err)
			if n, err := st.PendingRelationshipChanges(ctx); err != nil || n != 1 {
				t.Fatalf("pending outbox rows after upgrade %d, %v; want 1", n, err)
			}
			tokens, err := st.ListAPITokens(ctx, "acme")
			check("API tokens", tokens, []APIToken{}, err)

			// The old rows take the new operations.
			if _, err := st.UpdateUser(ctx, User{Host: "acme", ID: "alice", Name: "Alice", Admin: true}); err != nil {
				t.Fatal(err)
			}
			if err := st.TouchUser(ctx, "acme", "alice", time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpdateServer(ctx, Server{Host: "acme", Key: "linear", CredentialKind: "header", Credentials: []byte("sealed")}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.KillAgent(ctx, "acme", "claude"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateAPIToken(ctx, APIToken{Host: "acme", Name: "ci", Hash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpdateHost(ctx, Host{Key: "acme", Name: "Acme", Settings: HostSettings{AllowedEmailDomains: []string{"acme.test"}}}); err != nil {
				t.Fatal(err)
			}
			rels := map[string]bool{}
			if err := st.Relationships(ctx, func(r schema.Relationship) error { rels[r.String()] = true; return nil }); err != nil {
				t.Fatal(err)
			}
			for _, want := range []schema.Relationship{schema.HostMember("acme", "alice"), schema.HostAdmin("acme", "alice"), schema.ServerHost("acme", "linear")} {
				if !rels[want.String()] {
					t.Errorf("Relationships lacks %s", want)
				}
			}
			// member, admin, server, tool: a ceiling is carried by each consenting agent (its copy of
			// the human's ceiling), and the killed agent has none.
			if len(rels) != 4 {
				t.Errorf("Relationships after upgrade = %v", rels)
			}
		})
	}
}
