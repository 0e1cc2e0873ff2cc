package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
)

// TestToolConditionsThroughTheAPI: conditions are set on a tool and shown in its document, kept
// by a level change, refused when invalid or empty, cleared; each change is audited with the
// conditions before and after. SpiceDB then decides with them: the tool's relationship carries
// the caveat (e.callable lists it, and the relationships read back show it).
func TestToolConditionsThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	e.imported(mcpserver.Start(t, ""))
	path := "/api/v1/hosts/acme/servers/tracker/tools/create_issue/conditions"
	var tool admin.Tool
	e.must(200, "PUT", path, e.acme, admin.ToolConditions{Prefix: map[string]string{"title": "ACME-"}, Max: map[string]float64{"priority": 3}}, &tool)
	if c := tool.Conditions; c == nil || c.Prefix["title"] != "ACME-" || c.Max["priority"] != 3 {
		t.Fatalf("tool document after PUT: %+v", tool.Conditions)
	}
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", e.acme, admin.ToolUpdate{Level: ptr("high")}, &tool)
	if tool.Conditions == nil || tool.Level != "high" {
		t.Fatalf("a level change dropped the conditions: %+v", tool)
	}
	e.problem(400, "PUT", path, e.acme, admin.ToolConditions{}, "no condition")
	e.problem(400, "PUT", path, e.acme, admin.ToolConditions{Min: map[string]float64{"a": 5}, Max: map[string]float64{"a": 1}}, "min 5 is above max 1")
	e.problem(400, "PUT", path, e.acme, `{"regex":{"title":".*"}}`)
	e.problem(404, "PUT", "/api/v1/hosts/acme/servers/tracker/tools/nope/conditions", e.acme, admin.ToolConditions{Prefix: map[string]string{"a": "b"}})

	found := false
	if err := e.backend.ReadRelationships(context.Background(), schema.TypeTool, func(r schema.Relationship) error {
		if r.Resource == schema.Tool("acme", "tracker", "create_issue") {
			found = r.Caveat == schema.CaveatArguments && strings.Contains(r.CaveatContext, `"title":"ACME-"`)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Error("the tool's relationship in SpiceDB lacks the caveat after the PUT")
	}

	var cleared admin.Tool
	e.must(200, "DELETE", path, e.acme, nil, &cleared)
	if cleared.Conditions != nil {
		t.Fatalf("conditions after DELETE: %+v", cleared.Conditions)
	}
	entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme"}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "tool.conditions") {
			got = append(got, en.Action+": "+en.OldValue+" → "+en.NewValue)
		}
	}
	want := []string{
		`tool.conditions_set: no conditions → conditions: title starts with "ACME-"; priority ≤ 3`,
		`tool.conditions_clear: conditions: title starts with "ACME-"; priority ≤ 3 → no conditions`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audited:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestToolConditionsRefusedWithoutCaveats: a backend without caveats (Permit) refuses to store
// conditions, saying why.
func TestToolConditionsRefusedWithoutCaveats(t *testing.T) {
	e := newEnvWith(t, func(c *admin.Config) {
		c.HostNetworks = ssrf.AllowAll()
		c.ConditionsUnsupported = "the Permit backend does not evaluate conditions"
	})
	e.imported(mcpserver.Start(t, ""))
	e.problem(409, "PUT", "/api/v1/hosts/acme/servers/tracker/tools/create_issue/conditions", e.acme,
		admin.ToolConditions{Prefix: map[string]string{"title": "x"}}, "Permit backend")
}
