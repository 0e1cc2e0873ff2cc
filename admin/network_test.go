package admin_test

import (
	"net"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

const unreachable = "the MCP server could not be reached"

// closedURL is an MCP URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr + "/mcp"
}

// With the default policy a host's token cannot import, dry-run or sync a server off the
// public internet, and the answer is the same for an open port, a closed port and the cloud
// metadata address: it cannot be used to scan the gateway's networks. The operator (global
// token) imports loopback servers, and only the operator lets a server reach any network.
func TestHostTokenReachesOnlyPublicNetworks(t *testing.T) {
	e := newEnvWith(t, func(*admin.Config) {}) // public addresses only
	up := mcpserver.Start(t, "")
	path := "/api/v1/hosts/acme/servers"
	var details []string
	byName := strings.Replace(up.URL, "127.0.0.1", "localhost", 1) // checked once resolved
	for _, u := range []string{up.URL, byName, closedURL(t), "http://169.254.169.254/", "http://10.0.0.1:8080/mcp", "http://[::1]:9/mcp", "http://0.0.0.0:80/mcp"} {
		for _, dry := range []bool{true, false} {
			p := e.problem(502, "POST", path, e.acme, admin.ServerImport{URL: u, Key: "internal", DryRun: dry}, unreachable)
			details = append(details, p.Detail)
			for _, leak := range []string{"refused", "timeout", "127.0.0.1", "169.254", "10.0.0.1", "dial", "::1", "not allowed", "localhost"} {
				if strings.Contains(p.Detail, leak) {
					t.Errorf("import of %s (dry run %v): detail %q reveals %q", u, dry, p.Detail, leak)
				}
			}
		}
	}
	for _, d := range details[1:] {
		if d != details[0] {
			t.Fatalf("different answers for different addresses: %q and %q", details[0], d)
		}
	}
	e.problem(403, "POST", path, e.acme, admin.ServerImport{URL: up.URL, Network: "any"}, "global API token")
	e.problem(400, "POST", path, e.global, admin.ServerImport{URL: up.URL, Network: "intranet"}, `"host" or "any"`)

	// The operator imports the loopback server: it may reach any network.
	var res admin.ImportResult
	e.must(201, "POST", path, e.global, admin.ServerImport{URL: up.URL, Key: "tracker"}, &res)
	if res.Server.Network != "any" || res.Server.Tools != 3 {
		t.Fatalf("operator's import = %+v", res.Server)
	}
	// The host's admin syncs it, but cannot widen or move it.
	e.must(200, "POST", path+"/tracker/sync", e.acme, nil, nil)
	moved := "http://10.0.0.1/mcp"
	e.problem(403, "PATCH", path+"/tracker", e.acme, admin.ServerUpdate{URL: &moved}, "global API token")
	host, anyNet := "host", "any"
	var sv admin.Server
	e.must(200, "PATCH", path+"/tracker", e.acme, admin.ServerUpdate{Network: &host}, &sv)
	if sv.Network != "host" {
		t.Fatalf("network after the host's restriction = %q", sv.Network)
	}
	// Restricted, the server is checked at the next sync: the host's admin learns it is not
	// reachable, the operator why.
	e.problem(502, "POST", path+"/tracker/sync", e.acme, nil, unreachable)
	e.problem(502, "POST", path+"/tracker/sync", e.global, nil, "not on a network this server may reach")
	e.problem(403, "PATCH", path+"/tracker", e.acme, admin.ServerUpdate{Network: &anyNet}, "global API token")
	e.must(200, "PATCH", path+"/tracker", e.global, admin.ServerUpdate{Network: &anyNet}, &sv)
	if sv.Network != "any" {
		t.Fatalf("network after the operator's change = %q", sv.Network)
	}
	// Both changes of network are in the host's audit log.
	var page struct {
		Items []admin.AuditEntry `json:"items"`
	}
	e.must(200, "GET", "/api/v1/hosts/acme/audit?server=tracker", e.global, nil, &page)
	var changes []string
	for _, en := range page.Items {
		if en.Action == "server.update" {
			changes = append(changes, en.OldValue+"->"+en.NewValue)
		}
	}
	if strings.Join(changes, " ") != "network=any->network=host network=host->network=any" {
		t.Errorf("audited network changes = %v", changes)
	}
	e.must(200, "POST", path+"/tracker/sync", e.acme, nil, nil)
}

// The operator's allowed networks open them to hosts' servers.
func TestHostTokenImportsAllowedNetwork(t *testing.T) {
	e := newEnv(t) // loopback allowed
	up := mcpserver.Start(t, "")
	var res admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker"}, &res)
	if res.Server.Network != "host" || res.Server.Tools != 3 {
		t.Fatalf("host's import = %+v", res.Server)
	}
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: "http://169.254.169.254/", DryRun: true}, unreachable)
}
