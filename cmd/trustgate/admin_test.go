package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

func TestParseHeader(t *testing.T) {
	good := map[string]sdk.CredentialHeader{
		"Authorization: Bearer sk-1":    {Name: "Authorization", Value: "Bearer sk-1"},
		"  X-Api-Key :  v:with:colons ": {Name: "X-Api-Key", Value: "v:with:colons"},
		"x_key:v":                       {Name: "x_key", Value: "v"},
	}
	for in, want := range good {
		got, err := parseHeader(in)
		if err != nil || got != want {
			t.Errorf("parseHeader(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	// The value is a secret: no error may quote it, nor what precedes a bad colon.
	for _, in := range []string{"sekrit-no-colon", ": sekrit", "Bearer sekrit: x", "X-Key:", "X-Key: sekrit\nInjected: 1", "Bad\x00sekrit: v"} {
		_, err := parseHeader(in)
		if err == nil {
			t.Errorf("parseHeader(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), "sekrit") || !strings.HasPrefix(err.Error(), "--header") {
			t.Errorf("parseHeader(%q) error %q: want one naming --header and not quoting the value", in, err)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]string{"low": "low", "MEDIUM": "medium", " High ": "high"} {
		if got, err := parseLevel("--level", in); err != nil || got != want {
			t.Errorf("parseLevel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "extreme", "3"} {
		if _, err := parseLevel("--level", in); err == nil || !strings.Contains(err.Error(), "want low, medium or high") {
			t.Errorf("parseLevel(%q) error = %v", in, err)
		}
	}
	if v, err := oneOf("--type", "Chat", agentTypes...); err != nil || v != "chat" {
		t.Errorf("oneOf(Chat) = %q, %v", v, err)
	}
	if _, err := oneOf("--type", "bot", agentTypes...); err == nil || err.Error() != `--type "bot": want chat, proactive or ambient` {
		t.Errorf("oneOf(bot) error = %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	err := writeTable(&b, []string{"name", "level", "description"}, [][]string{
		{"list_issues", "low", "List\tthe issues\nof a team"},
		{"create_a_long_issue", "medium", ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME                 LEVEL   DESCRIPTION\n" +
		"list_issues          low     List the issues of a team\n" +
		"create_a_long_issue  medium  -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := writeTable(&b, []string{"id"}, nil); err != nil || b.String() != "ID\n" {
		t.Errorf("empty table = %q, %v", b.String(), err)
	}
}

func TestFormatting(t *testing.T) {
	if got := formatTime(time.Time{}); got != "never" {
		t.Errorf("formatTime(zero) = %q", got)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	if got := formatTime(ts); got != "2026-01-02T03:04:05Z" {
		t.Errorf("formatTime = %q", got)
	}
	if got := formatTimePtr(nil); got != "never" {
		t.Errorf("formatTimePtr(nil) = %q", got)
	}
	for secs, want := range map[int]string{3600: "1h", 5400: "1h30m", 2592000: "720h", 90: "1m30s", 60: "1m", 3601: "1h0m1s", 0: "0s"} {
		if got := formatSeconds(secs); got != want {
			t.Errorf("formatSeconds(%d) = %q, want %q", secs, got, want)
		}
	}
	if got := firstLine("Create an issue\nin a team", 60); got != "Create an issue …" {
		t.Errorf("firstLine = %q", got)
	}
	if got := firstLine("abcdefghij", 5); got != "abcd…" {
		t.Errorf("firstLine cut = %q", got)
	}
	if got := agentLevel(sdk.AgentServer{Level: "high", Ceiling: "low", Effective: "low"}); got != "high (capped: low)" {
		t.Errorf("agentLevel capped = %q", got)
	}
	if got := grantList([]sdk.Grant{{Server: "linear", Ceiling: "high"}, {Server: "gh", Ceiling: "low"}}); got != "linear:high, gh:low" {
		t.Errorf("grantList = %q", got)
	}
	if got := clientOrder(map[string]sdk.ClientConfig{"zed": {}, "claude_code": {}, "cursor": {}}); !reflect.DeepEqual(got, []string{"cursor", "claude_code", "zed"}) {
		t.Errorf("clientOrder = %q", got)
	}
}

func TestHostUpdatePatch(t *testing.T) {
	parse := func(args ...string) (sdk.HostUpdate, error) {
		var u hostUpdateFlags
		f := pflag.NewFlagSet("update", pflag.ContinueOnError)
		u.register(f)
		if err := f.Parse(args); err != nil {
			return sdk.HostUpdate{}, err
		}
		return u.update(f)
	}
	req, err := parse()
	if err != nil || req.Name != nil || req.Settings != nil {
		t.Errorf("no flags: %+v, %v; want an empty patch", req, err)
	}
	req, err = parse("--dynamic-mcps=false", "--allowed-domains", " Acme.com,@b.org,", "--access-token-ttl", "90m", "--tool-visibility", "ALL")
	if err != nil {
		t.Fatal(err)
	}
	s := req.Settings
	if req.Name != nil || s == nil || s.DynamicMCPs == nil || *s.DynamicMCPs || s.AutoEnableNewTools != nil || s.AuditArguments != nil ||
		!reflect.DeepEqual(*s.AllowedEmailDomains, []string{"acme.com", "b.org"}) ||
		*s.AccessTokenTTLSeconds != 5400 || s.SessionIdleTTLSeconds != nil || *s.ToolVisibility != "all" {
		t.Errorf("patch = %+v / settings %+v", req, s)
	}
	// --allowed-domains= clears the list: an empty JSON array, not an omitted field.
	req, err = parse("--allowed-domains=", "--name", "")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	if string(body) != `{"name":"","settings":{"allowed_email_domains":[]}}` {
		t.Errorf("clearing patch = %s", body)
	}
	req, err = parse("--denial-format", "jsonrpc_error")
	if err != nil || req.Settings == nil || req.Settings.DenialFormat == nil || *req.Settings.DenialFormat != "jsonrpc_error" {
		t.Errorf("--denial-format jsonrpc_error: %+v, %v", req.Settings, err)
	}
	for _, bad := range [][]string{{"--access-token-ttl", "1500ms"}, {"--session-max-ttl", "-1h"}, {"--tool-visibility", "some"}, {"--allowed-domains", "a@b.com"}, {"--denial-format", "exception"}} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestTokenCreateScope(t *testing.T) {
	unsetenv(t, "TRUSTGATE_HOST")
	cases := []struct {
		global, hostGiven bool
		host, env         string
		want, err         string
	}{
		{global: true, want: ""},
		{hostGiven: true, host: "acme", want: "acme"},
		{err: "say which token"},
		{global: true, hostGiven: true, host: "acme", err: "mutually exclusive"},
		// TRUSTGATE_HOST alone does not conflict with --global.
		{global: true, hostGiven: true, host: "acme", env: "acme", want: ""},
	}
	for _, c := range cases {
		if c.env != "" {
			t.Setenv("TRUSTGATE_HOST", c.env)
		}
		got, err := tokenCreateScope(c.global, c.hostGiven, c.host)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error = %v, want %q", c, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("%+v: = %q, %v; want %q", c, got, err, c.want)
		}
	}
}

// TestAdminFlagsAreNotShadowed: a subcommand's local flag named like a shared one would hide
// it (and its environment variable) on that command only.
func TestAdminFlagsAreNotShadowed(t *testing.T) {
	adminCmd := newAdminCommand()
	shared := map[string]bool{"url": true, "token": true, "output": true, "host": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if shared[f.Name] {
				t.Errorf("%s has a local --%s hiding the shared one", c.CommandPath(), f.Name)
			}
		})
		if c.Runnable() && c.Args == nil {
			t.Errorf("%s does not validate its arguments", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(adminCmd)
}

// unsetenv removes an environment variable for the test (restored afterwards).
func unsetenv(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
}

// runCLI runs trustgate with args and returns its stdout, stderr and error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	unsetenv(t, "TRUSTGATE_URL", "TRUSTGATE_TOKEN", "TRUSTGATE_HOST", "TRUSTGATE_DATA_DIR", "TRUSTGATE_DATABASE")
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestAdminCommandsAgainstAPI(t *testing.T) {
	var gotPatch map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tgat_t" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"the API token is unknown or was revoked"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.EscapedPath() {
		case "GET /api/v1/hosts/acme/humans":
			last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			_ = json.NewEncoder(w).Encode(sdk.Page[sdk.Human]{Items: []sdk.Human{
				{Email: "ann@acme.com", Name: "Ann", Admin: true, Grants: []sdk.Grant{{Server: "linear", Ceiling: "high"}}, Agents: []sdk.AgentSummary{{ID: "a"}}, LastActiveAt: &last},
				{Email: "bob@acme.com"},
			}})
		case "PATCH /api/v1/hosts/default/servers/linear":
			_ = json.NewDecoder(r.Body).Decode(&gotPatch)
			_ = json.NewEncoder(w).Encode(sdk.Server{Key: "linear", Timeouts: sdk.Timeouts{FirstByteTimeoutMS: 120000}})
		case "PATCH /api/v1/hosts/default/servers/lin%20ear/tools/a%2Fb":
			_ = json.NewDecoder(r.Body).Decode(&gotPatch)
			_ = json.NewEncoder(w).Encode(sdk.Tool{Server: "lin ear", Name: "a/b", Level: "high"})
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"title":"Not Found","status":404,"detail":"no server \"nope\" in host \"default\""}`))
		}
	}))
	defer srv.Close()

	out, _, err := runCLI(t, "admin", "--url", srv.URL, "--token", "tgat_t", "human", "list", "--host", "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"EMAIL         NAME  ADMIN  SERVERS      AGENTS  LAST ACTIVE\n" +
		"ann@acme.com  Ann   yes    linear:high  1       2026-01-02T03:04:05Z\n" +
		"bob@acme.com  -     no     -            0       never\n"
	if out != want {
		t.Errorf("human list:\n%s\nwant:\n%s", out, want)
	}

	t.Setenv("TRUSTGATE_URL", srv.URL)
	root := newRootCommand()
	var b bytes.Buffer
	root.SetOut(&b)
	root.SetArgs([]string{"admin", "--token", "tgat_t", "-o", "json", "human", "list", "--host", "acme"})
	if err := root.Execute(); err != nil {
		t.Fatalf("TRUSTGATE_URL: %v", err)
	}
	var humans []sdk.Human
	if err := json.Unmarshal(b.Bytes(), &humans); err != nil || len(humans) != 2 {
		t.Errorf("-o json = %s (%v); want a JSON array of 2 humans", b.String(), err)
	}

	_, _, err = runCLI(t, "admin", "--url", srv.URL, "--token", "tgat_t", "tool", "update", "lin ear", "a/b", "--level", "HIGH", "--disable")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotPatch, map[string]any{"level": "high", "enabled": false}) {
		t.Errorf("tool update sent %v", gotPatch)
	}

	gotPatch = nil
	out, _, err = runCLI(t, "admin", "--url", srv.URL, "--token", "tgat_t", "server", "update", "linear", "--first-byte-timeout", "2m", "--idle-timeout", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotPatch, map[string]any{"first_byte_timeout_ms": float64(120000), "idle_timeout_ms": float64(0)}) {
		t.Errorf("server update sent %v", gotPatch)
	}
	if !strings.Contains(out, "connect default, first byte 2m0s, idle stream default") {
		t.Errorf("server update printed:\n%s", out)
	}

	_, _, err = runCLI(t, "admin", "--url", srv.URL, "--token", "tgat_t", "server", "show", "nope")
	if err == nil || err.Error() != `no server "nope" in host "default"` {
		t.Errorf("404: error = %v, want the problem's detail alone", err)
	}
	_, _, err = runCLI(t, "admin", "--url", srv.URL, "--token", "tgat_wrong", "host", "list")
	if err == nil || !strings.Contains(err.Error(), "unknown or was revoked") || !strings.Contains(err.Error(), "TRUSTGATE_TOKEN") {
		t.Errorf("401: error = %v", err)
	}
	_, _, err = runCLI(t, "admin", "--url", srv.URL, "host", "list")
	if err == nil || !strings.Contains(err.Error(), "TRUSTGATE_TOKEN") || !strings.Contains(err.Error(), "token create --global") {
		t.Errorf("no token: error = %v", err)
	}
	_, _, err = runCLI(t, "admin", "--token", "x", "server", "delete", "linear")
	if err == nil || !strings.Contains(err.Error(), "--yes") || !strings.Contains(err.Error(), `server "linear"`) {
		t.Errorf("delete without --yes: error = %v", err)
	}
	_, _, err = runCLI(t, "admin", "--token", "x", "agent", "set-level", "a1", "linear")
	if err == nil || !strings.Contains(err.Error(), "AGENT SERVER LEVEL") {
		t.Errorf("missing argument: error = %v", err)
	}
	_, _, err = runCLI(t, "admin", "host", "frobnicate")
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown subcommand: error = %v", err)
	}
}

// TestBootstrapGlobalToken creates the first token in a real SQLite store and checks that the
// store knows it by the hash of the printed secret.
func TestBootstrapGlobalToken(t *testing.T) {
	dir := t.TempDir()
	out, errOut, err := runCLI(t, "admin", "token", "create", "--global", "--name", "first", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSuffix(out, "\n")
	if !strings.HasPrefix(secret, "tgat_") || strings.Contains(secret, "\n") {
		t.Fatalf("stdout = %q, want the secret alone", out)
	}
	if !strings.Contains(errOut, "only once") || strings.Contains(errOut, secret) {
		t.Errorf("stderr = %q", errOut)
	}
	st, err := store.Open(context.Background(), store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := st.GetAPITokenByHash(context.Background(), admin.HashToken(secret))
	if err != nil || tok.Host != "" || tok.Name != "first" {
		t.Errorf("stored token = %+v, %v; want a global token named first", tok, err)
	}

	out, _, err = runCLI(t, "admin", "token", "create", "--global", "-o", "json", "--data-dir", dir)
	var created sdk.TokenCreated
	if err != nil || json.Unmarshal([]byte(out), &created) != nil || created.Secret == "" || created.ID == "" || created.Name != defaultTokenName {
		t.Errorf("-o json = %q, %v", out, err)
	}

	_, _, err = runCLI(t, "admin", "token", "create", "--global", "--data-dir", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "no data directory") {
		t.Errorf("missing data dir: error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("the missing data directory was created")
	}
}
