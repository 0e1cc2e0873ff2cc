package authzserver_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// compatBase is a small schema with every kind of thing SchemaRemovals compares.
const compatBase = `
caveat window(now timestamp, allowed list<string>) {
    now > now && "a" in allowed
}

definition user {
    relation agent: agent
}

definition agent {
    relation owner: user
}

definition team {
    relation member: user
}

definition doc {
    relation viewer: user | user:* | agent with window | user#agent
    relation editor: user
    permission view = viewer + editor
}
`

func TestSchemaRemovalsFindsEachKindOfRemoval(t *testing.T) {
	cases := []struct {
		name    string
		old     string // replaced in compatBase
		new     string
		removed []string
	}{
		{"unchanged", "", "", nil},
		{"additions only", "relation editor: user\n", "relation editor: user | agent\n    relation owner: user\n    permission edit = editor\n", nil},
		{"a changed permission expression", "permission view = viewer + editor", "permission view = viewer & editor", nil},
		{"a definition", "definition team {\n    relation member: user\n}", "", []string{"definition team"}},
		{"a relation", "    relation editor: user\n", "", []string{"relation doc#editor"}},
		{"a permission", "    permission view = viewer + editor\n", "", []string{"permission doc#view"}},
		{"a relation turned into a permission", "relation editor: user", "permission editor = viewer", []string{"relation doc#editor"}},
		{"a permission turned into a relation", "permission view = viewer + editor", "relation view: user", []string{"permission doc#view"}},
		{"a direct subject type", "viewer: user | user:*", "viewer: user:*", []string{"subject doc#viewer@user"}},
		{"a wildcard", "user | user:* |", "user |", []string{"subject doc#viewer@user:*"}},
		{"a subject relation", " | user#agent", "", []string{"subject doc#viewer@user#agent"}},
		{"a caveated subject, the plain one kept", "agent with window", "agent", []string{"subject doc#viewer@agent with window"}},
		{"a caveat parameter's type", "now timestamp", "now duration", []string{"caveat window(now timestamp)"}},
		{"a caveat parameter", "now timestamp, allowed list<string>", "now timestamp", []string{"caveat window(allowed list<string>)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := compatBase
			if c.old != "" {
				if !strings.Contains(next, c.old) {
					t.Fatalf("%q is not in the base schema", c.old)
				}
				next = strings.Replace(next, c.old, c.new, 1)
			}
			if c.name == "a caveat parameter" {
				next = strings.Replace(next, `"a" in allowed`, "true", 1)
			}
			removed, err := authzserver.SchemaRemovals(compatBase, next)
			if err != nil {
				t.Fatalf("SchemaRemovals: %v\n%s", err, next)
			}
			if !slices.Equal(removed, c.removed) {
				t.Errorf("removed %q, want %q", removed, c.removed)
			}
		})
	}
}

func TestSchemaRemovalsFindsACaveatGone(t *testing.T) {
	next := strings.Replace(compatBase, " | agent with window", "", 1)
	next = next[strings.Index(next, "definition user"):]
	removed, err := authzserver.SchemaRemovals(compatBase, next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"caveat window", "subject doc#viewer@agent with window"}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
}

// The change of per-agent ceilings: ceilings were written on user#agent; a schema that allows
// only agent refuses the writes of a gateway that still writes them.
func TestSchemaRemovalsFindsTheCeilingChange(t *testing.T) {
	earlier := strings.NewReplacer(
		"relation ceiling_low: agent", "relation ceiling_low: user#agent",
		"relation ceiling_medium: agent", "relation ceiling_medium: user#agent",
		"relation ceiling_high: agent", "relation ceiling_high: user#agent",
	).Replace(schema.Text)
	if earlier == schema.Text {
		t.Fatal("the schema has no per-agent ceilings to turn back")
	}
	removed, err := authzserver.SchemaRemovals(earlier, schema.Text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"subject mcp_server#ceiling_high@user#agent",
		"subject mcp_server#ceiling_low@user#agent",
		"subject mcp_server#ceiling_medium@user#agent",
	}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	// Allowing both for one release is compatible.
	both := strings.ReplaceAll(earlier, ": user#agent", ": user#agent | agent")
	if removed, err := authzserver.SchemaRemovals(earlier, both); err != nil || len(removed) > 0 {
		t.Errorf("adding agent beside user#agent: removed %q, %v", removed, err)
	}
}

func TestSchemaRemovalsRefusesAMalformedSchema(t *testing.T) {
	if _, err := authzserver.SchemaRemovals(compatBase, "definition {"); !errors.Is(err, authzserver.ErrInvalidSchema) || !strings.Contains(err.Error(), "the new schema") {
		t.Errorf("malformed new schema: %v", err)
	}
	if _, err := authzserver.SchemaRemovals("definition {", compatBase); !errors.Is(err, authzserver.ErrInvalidSchema) || !strings.Contains(err.Error(), "the earlier schema") {
		t.Errorf("malformed earlier schema: %v", err)
	}
}
