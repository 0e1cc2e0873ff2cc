package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
)

// setNetwork changes the tracker's network in the store.
func (e *env) setNetwork(network string) {
	e.t.Helper()
	ctx := context.Background()
	sv, err := e.st.GetServer(ctx, host, serverKey)
	if err != nil {
		e.t.Fatal(err)
	}
	sv.Network = network
	if _, err := e.st.UpdateServer(ctx, sv); err != nil {
		e.t.Fatal(err)
	}
}

// The server's network is checked on every forwarded call, at dial time: a loopback server
// the operator allowed ("any") is called; once restricted to "host" (public addresses only
// here), the next call is refused before anything reaches it, the agent is told the server
// could not be reached without the network's detail, and the call is audited as an error. A
// connection pooled while the server was on "any" is not reused.
func TestForwardedCallsFollowTheServersNetwork(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config) { c.HostNetworks = ssrf.Policy{} })
	e.setNetwork(store.NetworkAny)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	if got, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"}); err != nil || got != "create_issue called: bug" {
		t.Fatalf("call to a server on any network: %q, %v", got, err)
	}

	e.setNetwork(store.NetworkHost)
	before := e.upCalls.Load()
	_, err := callText(t, cs, "list_issues", nil)
	if err == nil || !strings.Contains(err.Error(), "the MCP server Issue Tracker could not be reached") {
		t.Fatalf("call to a loopback server on network host: %v", err)
	}
	for _, leak := range []string{"127.0.0.1", "refused", "not allowed", "dial", "timeout"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the agent's error %q reveals %q", err, leak)
		}
	}
	if e.upCalls.Load() != before {
		t.Error("a call reached the upstream off the server's network")
	}
	// Like any upstream failure: the result entry of the call says why it failed.
	got := e.entries(audit.Filter{Decision: audit.Result, Tool: "list_issues"}, 1)
	if len(got) != 1 || got[0].UpstreamStatus != 0 || got[0].Reason != "the MCP server Issue Tracker could not be reached" {
		t.Fatalf("audit result entries of the refused call: %+v", got)
	}
}
