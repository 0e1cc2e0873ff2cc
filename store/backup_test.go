package store_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// populate writes one of each kind of object the issue names: hosts, servers (with sealed
// credentials), tools, humans, grants, agents, consents, signing keys, API tokens and the
// audit log.
func populate(t *testing.T, s store.Store) {
	t.Helper()
	must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme <Inc> & \"co\" ☃"}))
	must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "linear", Name: "Linear",
		CredentialKind: "header", Credentials: []byte("sealed\x00\xffbytes")}))
	must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "linear", Name: "create_issue", Level: schema.Medium, Enabled: true,
		InputSchema: `{"type":"object"}`}))
	alice := must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", Email: "alice@example.com", Name: "Alice"}))
	must[store.Grant](t, "set grant")(s.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: alice.ID, Ceiling: schema.High}))
	agent := must[store.Agent](t, "create agent")(s.CreateAgent(ctx, store.Agent{Host: "acme", UserID: alice.ID, Name: "Cursor"}))
	must[store.Consent](t, "set consent")(s.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent.ID, Server: "linear", Level: schema.Medium}))
	must[store.SigningKey](t, "signing key")(s.CreateSigningKey(ctx, store.SigningKey{KID: "k1", Alg: "ES256", PrivateKey: []byte("sealed-private"), PublicJWK: `{"kty":"EC"}`}))
	must[store.APIToken](t, "api token")(s.CreateAPIToken(ctx, store.APIToken{ID: "t1", Name: "ci", Hash: strings.Repeat("ab", 32), Prefix: "tg_ab", Scope: store.TokenScopeAdmin}))
	var entries []audit.Entry
	for i := range 1500 { // more than one INSERT batch
		entries = append(entries, audit.Entry{Host: "acme", Time: time.Now(), AgentID: agent.ID, Server: "linear", Tool: "create_issue",
			Method: "tools/call", Decision: audit.Allowed, Reason: strings.Repeat("r", i%7)})
	}
	noErr(t, "append audit", s.AppendAudit(ctx, entries))
}

// backupTo writes a backup of s to a new file and returns its path.
func backupTo(t *testing.T, s store.Store) (string, store.BackupSummary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.jsonl")
	f, err := os.Create(path)
	noErr(t, "create backup file", err)
	defer f.Close()
	sum, err := store.Backup(ctx, s, f)
	noErr(t, "backup", err)
	noErr(t, "close backup file", f.Close())
	return path, sum
}

func restoreFrom(s store.Store, path string) (store.BackupSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return store.BackupSummary{}, err
	}
	defer f.Close()
	return store.Restore(ctx, s, f)
}

// rowLines returns a backup's rows, per table, sorted: what two backups of equal stores share
// whatever the engine's order.
func rowLines(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	noErr(t, "read backup", err)
	out := map[string][]string{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, `{"table":`):
			table = line
			out[table] = []string{}
		case strings.HasPrefix(line, "["):
			out[table] = append(out[table], line)
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			src := openStore(t, e.config(t))
			populate(t, src)
			path, sum := backupTo(t, src)
			if sum.SchemaVersion != store.LatestVersion() || sum.Engine != e.name || sum.SHA256 == "" {
				t.Fatalf("summary %+v", sum)
			}
			for _, table := range []string{"hosts", "servers", "tools", "users", "grants", "agents", "consents", "signing_keys", "api_tokens", "audit_entries", "audit_heads", "relationship_outbox"} {
				if sum.RowsByTable[table] == 0 {
					t.Errorf("the backup has no row of %s", table)
				}
			}
			if sum.RowsByTable["audit_entries"] != 1500 {
				t.Errorf("audit_entries: %d rows, want 1500", sum.RowsByTable["audit_entries"])
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Fatalf("backup file: %v", err)
			}

			dst := openStore(t, e.config(t))
			got, err := restoreFrom(dst, path)
			noErr(t, "restore", err)
			if got.Rows != sum.Rows || got.SHA256 != sum.SHA256 {
				t.Fatalf("restore summary %+v, backup %+v", got, sum)
			}
			// The restored store reads back as the original.
			wantEqual(t, "hosts", must[[]store.Host](t, "list")(dst.ListHosts(ctx)), must[[]store.Host](t, "list")(src.ListHosts(ctx)))
			wantEqual(t, "servers", must[[]store.Server](t, "list")(dst.ListServers(ctx, "acme")), must[[]store.Server](t, "list")(src.ListServers(ctx, "acme")))
			wantEqual(t, "consents", must[[]store.Consent](t, "list")(dst.ListConsents(ctx, "acme", "")), must[[]store.Consent](t, "list")(src.ListConsents(ctx, "acme", "")))
			wantEqual(t, "signing keys", must[[]store.SigningKey](t, "list")(dst.ListSigningKeys(ctx)), must[[]store.SigningKey](t, "list")(src.ListSigningKeys(ctx)))
			wantEqual(t, "audit heads", must[[]audit.Head](t, "heads")(dst.AuditHeads(ctx)), must[[]audit.Head](t, "heads")(src.AuditHeads(ctx)))
			// A second backup, of the restored store, holds the same rows.
			again, _ := backupTo(t, dst)
			wantEqual(t, "rows of the restored store's backup", rowLines(t, again), rowLines(t, path))
			// The restored store keeps working: new audit entries chain on, the outbox's ids go on.
			noErr(t, "append after restore", dst.AppendAudit(ctx, []audit.Entry{{Host: "acme", Time: time.Now(), Decision: audit.Admin, Actor: "cli", Action: "x"}}))
			must[store.Server](t, "create server after restore")(dst.CreateServer(ctx, store.Server{Host: "acme", Key: "github"}))
			if _, err := audit.Verify(ctx, dst, "acme", nil); err != nil {
				t.Fatalf("audit chain after restore: %v", err)
			}

			// Into a store that is not empty: refused, and nothing changes.
			_, err = restoreFrom(dst, path)
			wantErr(t, "restore into a non-empty store", err, store.ErrNotEmpty)
		})
	}
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	e := engines()[0]
	src := openStore(t, e.config(t))
	populate(t, src)
	path, _ := backupTo(t, src)
	good, err := os.ReadFile(path)
	noErr(t, "read", err)
	lines := strings.SplitAfter(string(good), "\n")

	cases := map[string]struct {
		data string
		want string
	}{
		"empty":              {"", "empty"},
		"not a backup":       {"hello\n", "not a trustgate backup"},
		"truncated":          {strings.Join(lines[:len(lines)/2], ""), "truncated"},
		"no final newline":   {strings.TrimSuffix(string(good), "\n"), "truncated"},
		"a byte changed":     {strings.Replace(string(good), "alice@example.com", "alice@example.org", 1), "damaged"},
		"older schema":       {strings.Replace(string(good), fmt.Sprintf(`"schema_version":%d`, store.LatestVersion()), `"schema_version":1`, 1), "restore it with the trustgate release that made it"},
		"newer format":       {strings.Replace(string(good), `"format_version":1`, `"format_version":2`, 1), "format version 2"},
		"a row's value type": {strings.Replace(string(good), `["acme",`, `[7,`, 1), "not a"},
		"data after the end": {string(good) + "[]\n", "after the checksum"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.jsonl")
			noErr(t, "write", os.WriteFile(p, []byte(c.data), 0o600))
			dst := openStore(t, e.config(t))
			_, err := restoreFrom(dst, p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore: %v, want an error saying %q", err, c.want)
			}
			// Nothing of it was written.
			if hosts := must[[]store.Host](t, "list hosts")(dst.ListHosts(ctx)); len(hosts) != 0 {
				t.Fatalf("a refused restore left hosts %v", hosts)
			}
		})
	}
}

// TestBackupAcrossEngines restores a SQLite backup into PostgreSQL.
func TestBackupAcrossEngines(t *testing.T) {
	es := engines()
	src := openStore(t, es[0].config(t))
	populate(t, src)
	path, sum := backupTo(t, src)
	dst := openStore(t, es[1].config(t)) // skips without PostgreSQL
	_, err := restoreFrom(dst, path)
	noErr(t, "restore a SQLite backup into PostgreSQL", err)
	again, sum2 := backupTo(t, dst)
	if sum2.Rows != sum.Rows {
		t.Fatalf("PostgreSQL holds %d rows, the SQLite backup %d", sum2.Rows, sum.Rows)
	}
	wantEqual(t, "rows", rowLines(t, again), rowLines(t, path))
	if _, err := audit.Verify(ctx, dst, "acme", nil); err != nil {
		t.Fatalf("audit chain in PostgreSQL: %v", err)
	}
}

func TestBackupNeedsCurrentSchema(t *testing.T) {
	cfg := engines()[0].config(t)
	cfg.NoMigrate = true
	_, err := store.Open(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "no trustgate schema") {
		t.Fatalf("NoMigrate on an empty database: %v", err)
	}
}
