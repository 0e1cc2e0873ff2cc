package discovery

import (
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/schema"
)

func TestAnnotationsChangeOnlyTheCompleteHash(t *testing.T) {
	plain, err := convertTool(&mcp.Tool{Name: "list_x", Description: "d", InputSchema: map[string]any{"type": "object"}})
	if err != nil {
		t.Fatal(err)
	}
	annotated, err := convertTool(&mcp.Tool{Name: "list_x", Description: "d", InputSchema: map[string]any{"type": "object"},
		Annotations: &mcp.ToolAnnotations{Title: "X", DestructiveHint: ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Hash == annotated.Hash {
		t.Error("annotations did not change the (v2) definition hash")
	}
	if plain.LegacyHash != annotated.LegacyHash {
		t.Error("annotations changed the v1 hash, which approvals made before v2 carry")
	}
	if plain.Level != schema.Low || annotated.Level != schema.High {
		t.Errorf("levels %v, %v; want low, high", plain.Level, annotated.Level)
	}
}

func TestCollectorRejectsBadTools(t *testing.T) {
	obj := map[string]any{"type": "object"}
	cases := []struct {
		name  string
		tools []*mcp.Tool
		want  error
		text  string
	}{
		{"empty name", []*mcp.Tool{{Name: "", InputSchema: obj}}, ErrInvalidTool, "empty name"},
		{"duplicate", []*mcp.Tool{{Name: "list_a", InputSchema: obj}, {Name: "list_a", InputSchema: obj}}, ErrInvalidTool, `"list_a"`},
		{"long name", []*mcp.Tool{{Name: strings.Repeat("é", MaxToolNameLen+1), InputSchema: obj}}, ErrInvalidTool, "129 characters"},
		{"array schema", []*mcp.Tool{{Name: "list_b", InputSchema: []any{}}}, ErrInvalidTool, `"list_b": input schema is not a JSON object`},
		{"null tool", []*mcp.Tool{nil}, ErrInvalidTool, "null tool"},
		{"too many", []*mcp.Tool{{Name: "a", InputSchema: obj}, {Name: "b", InputSchema: obj}, {Name: "c", InputSchema: obj}}, ErrTooManyTools, "more than 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := newCollector(2)
			var err error
			for _, tool := range c.tools {
				if err = col.add(tool); err != nil {
					break
				}
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("err = %v, want %v containing %q", err, c.want, c.text)
			}
		})
	}
}

func TestCollectorDefaultsSchema(t *testing.T) {
	col := newCollector(10)
	if err := col.add(&mcp.Tool{Name: "ping"}); err != nil {
		t.Fatal(err)
	}
	if got := string(col.sorted()[0].InputSchema); got != `{"type":"object"}` {
		t.Errorf("schema = %s", got)
	}
}

// The SDK decodes readOnlyHint as a plain bool: a tool with annotations but without the hint
// counts as not read-only (the spec's default), a tool without annotations as silent.
func TestAnnotationsWithoutReadOnlyHint(t *testing.T) {
	silent, err := convertTool(&mcp.Tool{Name: "list_x", InputSchema: map[string]any{"type": "object"}})
	if err != nil {
		t.Fatal(err)
	}
	titled, err := convertTool(&mcp.Tool{Name: "list_x", InputSchema: map[string]any{"type": "object"},
		Annotations: &mcp.ToolAnnotations{Title: "List x"}})
	if err != nil {
		t.Fatal(err)
	}
	if silent.Annotations.ReadOnlyHint != nil || silent.Level != schema.Low {
		t.Errorf("no annotations: readOnlyHint %v, level %v; want nil, low", silent.Annotations.ReadOnlyHint, silent.Level)
	}
	if titled.Annotations.ReadOnlyHint == nil || *titled.Annotations.ReadOnlyHint || titled.Level != schema.Medium {
		t.Errorf("title only: readOnlyHint %v, level %v; want false, medium", titled.Annotations.ReadOnlyHint, titled.Level)
	}
}
