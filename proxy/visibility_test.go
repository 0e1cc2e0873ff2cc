package proxy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// With the host's tool_visibility "all", tools/list shows every enabled tool (as Permit does)
// while calls are still decided per tool: listing is not permission.
func TestToolVisibilityAll(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, err := e.st.GetHost(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	h.Settings.ToolVisibility = "all"
	if _, err := e.st.UpdateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	// A disabled tool stays hidden whatever the setting.
	if _, err := e.st.PutTool(ctx, store.Tool{Host: host, Server: serverKey, Name: "purge_issues", Level: schema.High, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	e.up.SetTool("purge_issues", "Purge every issue.")

	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"create_issue", "delete_issue", "list_issues"}) {
		t.Errorf("tools/list with visibility all = %v, want every enabled tool", names)
	}
	if _, err := callText(t, cs, "delete_issue", map[string]any{"id": "1"}); err == nil {
		t.Error("a listed tool above the agent's level was callable")
	}
}
