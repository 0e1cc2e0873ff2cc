package tests

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// schemaRemovalsAllowed are the removals from the previous release's SpiceDB schema
// (testdata/previous-version) that this release makes anyway, each with the reason it is safe
// while replicas of both releases share one SpiceDB. Keys are as authzserver.SchemaRemovals
// writes them ("relation mcp_server#ceiling_high", "subject mcp_server#ceiling_high@user#agent").
// An entry that no longer matches a removal fails the test: remove it when the pin moves on.
// README "Upgrades" has the rule.
var schemaRemovalsAllowed = map[string]string{}

// TestSpiceDBSchemaCompatibleWithThePreviousRelease holds SpiceDB's schema to the same rule as
// the store's migrations: during a rolling upgrade the previous release's replicas write and
// check against the schema this release writes at start, so it must keep every definition,
// relation, permission, allowed subject type and caveat the previous release's schema has.
func TestSpiceDBSchemaCompatibleWithThePreviousRelease(t *testing.T) {
	commit, top := previousVersion(t)
	previous, err := exec.Command("git", "-C", top, "show", commit+":schema/schema.zed").Output()
	if err != nil {
		t.Fatalf("the SpiceDB schema at %s: %v", commit[:12], err)
	}
	removed, err := authzserver.SchemaRemovals(string(previous), schema.Text)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range removed {
		found[r] = true
		if reason, ok := schemaRemovalsAllowed[r]; ok {
			t.Logf("allowed: %s (%s)", r, reason)
			continue
		}
		t.Errorf("the schema removes %s, which the previous release (%s) has: its replicas' writes or checks would be refused during a rolling upgrade. "+
			"Keep it for one release (allow the old and the new beside each other, write the new), remove it in the next; "+
			"or, if it is safe, list it in schemaRemovalsAllowed with the reason (README, Upgrades)", r, commit[:12])
	}
	for r := range schemaRemovalsAllowed {
		if !found[r] {
			t.Errorf("schemaRemovalsAllowed lists %q, which the schema no longer removes from the previous release's: remove the entry", r)
		}
	}
	if len(removed) == 0 {
		t.Logf("the schema keeps everything the previous release's (%s) has", commit[:12])
	}
	if strings.TrimSpace(string(previous)) == strings.TrimSpace(schema.Text) {
		t.Logf("the schema is the previous release's")
	}
}
