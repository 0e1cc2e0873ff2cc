package tests

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
)

// TestArgumentConditionsThroughTheBinary: an administrator sets a condition on create_issue's
// arguments with the CLI; the agent's call with a fitting title passes, one without is refused
// with reason argument_condition naming the condition, through the proxy's one CheckPermission.
// The exposed SpiceDB API (what zed reads) shows the tool's relationship with its caveat and
// answers a check with the arguments as context — yes, no, and conditional without them.
// Cleared, the call passes again.
func TestArgumentConditionsThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, key := freeAddr(t), "e2e-zed-key"
	p := start(t, "--data-dir", dir, "--spicedb-grpc-listen", grpcAddr, "--spicedb-preshared-key", key)
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "high")
	session := mcpSession(t, resource, token)

	out := cli(t, p, admin, "tool", "condition", "set", "tracker", "create_issue", "--host", "acme", "--prefix", "title=ACME-")
	if !strings.Contains(out, `title starts with "ACME-"`) {
		t.Errorf("condition set printed %q", out)
	}
	if out := cli(t, p, admin, "tool", "show", "tracker", "create_issue", "--host", "acme"); !strings.Contains(out, `title starts with "ACME-"`) {
		t.Errorf("tool show:\n%s", out)
	}
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "ACME-42"}); !ok || !strings.Contains(text, "create_issue called: ACME-42") {
		t.Fatalf("call with a fitting title: %q", text)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "rm -rf"}})
	if err != nil || !res.IsError {
		t.Fatalf("call with another title = %+v, %v; want a denial", res, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(text, `title must be a string starting with "ACME-"`) {
		t.Errorf("denial text %q", text)
	}
	if fields, _ := res.StructuredContent.(map[string]any); fields["reason"] != "argument_condition" {
		t.Errorf("denial fields %v", res.StructuredContent)
	}
	if n := countOf(up.Calls(), "create_issue"); n != 1 {
		t.Errorf("the upstream saw %d calls of create_issue, want the 1 allowed", n)
	}

	// What zed sees.
	c := spicedbClient(t, grpcAddr, key)
	stream, err := c.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: schema.TypeTool, OptionalResourceId: schema.Tool("acme", "tracker", "create_issue").ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	var caveat *v1.ContextualizedCaveat
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		caveat = resp.GetRelationship().GetOptionalCaveat()
	}
	if caveat.GetCaveatName() != schema.CaveatArguments || caveat.GetContext().AsMap()["prefix"].(map[string]any)["title"] != "ACME-" {
		t.Fatalf("the tool's relationship in SpiceDB has caveat %v", caveat)
	}
	agents := cliAgents(t, p, admin)
	check := func(arguments map[string]any) v1.CheckPermissionResponse_Permissionship {
		t.Helper()
		req := &v1.CheckPermissionRequest{
			Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			Resource:    &v1.ObjectReference{ObjectType: schema.TypeTool, ObjectId: schema.Tool("acme", "tracker", "create_issue").ID},
			Permission:  schema.PermToolCall,
			Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: schema.TypeAgent, ObjectId: schema.Agent("acme", agents[0]).ID}},
		}
		if arguments != nil {
			req.Context, _ = structpb.NewStruct(map[string]any{"arguments": arguments})
		}
		resp, err := c.CheckPermission(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPermissionship()
	}
	if got := check(map[string]any{"title": "ACME-1"}); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("zed check with a fitting title: %v", got)
	}
	if got := check(map[string]any{"title": "x"}); got != v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION {
		t.Errorf("zed check with another title: %v", got)
	}
	if got := check(nil); got != v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
		t.Errorf("zed check without arguments: %v", got)
	}

	cli(t, p, admin, "tool", "condition", "clear", "tracker", "create_issue", "--host", "acme")
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "rm -rf"}); !ok || !strings.Contains(text, "create_issue called") {
		t.Fatalf("call after the condition was cleared: %q", text)
	}
}

// cliAgents lists the ids of host acme's agents.
func cliAgents(t *testing.T, p *process, admin string) []string {
	t.Helper()
	var agents []struct {
		ID string `json:"id"`
	}
	cliJSON(t, p, admin, &agents, "agent", "list", "--host", "acme")
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.ID
	}
	if len(ids) == 0 {
		t.Fatal("no agents")
	}
	return ids
}

func countOf(calls []string, name string) int {
	n := 0
	for _, c := range calls {
		if c == name {
			n++
		}
	}
	return n
}
