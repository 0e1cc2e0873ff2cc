package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/schema"
)

// emptyInputSchema stands in for a tool that declares no input schema.
var emptyInputSchema = json.RawMessage(`{"type":"object"}`)

// collector accumulates the tools of all tools/list pages and enforces the limits.
type collector struct {
	max   int
	tools []Tool
	names map[string]bool
}

func newCollector(max int) *collector {
	return &collector{max: max, names: map[string]bool{}}
}

// add converts and checks one tool. Errors wrap ErrInvalidTool or ErrTooManyTools.
func (c *collector) add(t *mcp.Tool) error {
	if t == nil {
		return fmt.Errorf("%w: tools/list contains a null tool", ErrInvalidTool)
	}
	if len(c.tools) >= c.max {
		return fmt.Errorf("%w: the server lists more than %d tools", ErrTooManyTools, c.max)
	}
	tool, err := convertTool(t)
	if err != nil {
		return err
	}
	if c.names[tool.Name] {
		return fmt.Errorf("%w %q: the name is listed twice", ErrInvalidTool, tool.Name)
	}
	c.names[tool.Name] = true
	c.tools = append(c.tools, tool)
	return nil
}

// sorted returns the tools sorted by name.
func (c *collector) sorted() []Tool {
	tools := slices.Clone(c.tools)
	slices.SortFunc(tools, func(a, b Tool) int { return strings.Compare(a.Name, b.Name) })
	if tools == nil {
		tools = []Tool{}
	}
	return tools
}

// convertTool checks an SDK tool and turns it into a Tool with level and hash.
func convertTool(t *mcp.Tool) (Tool, error) {
	switch n := utf8.RuneCountInString(t.Name); {
	case t.Name == "":
		return Tool{}, fmt.Errorf("%w: a tool has an empty name", ErrInvalidTool)
	case !utf8.ValidString(t.Name):
		return Tool{}, fmt.Errorf("%w %q: the name is not valid UTF-8", ErrInvalidTool, t.Name)
	case n > MaxToolNameLen:
		return Tool{}, fmt.Errorf("%w %q…: the name has %d characters, more than %d",
			ErrInvalidTool, truncateRunes(t.Name, 40), n, MaxToolNameLen)
	}
	inputSchema, err := schemaJSON(t.InputSchema)
	if err != nil {
		return Tool{}, fmt.Errorf("%w %q: %v", ErrInvalidTool, t.Name, err)
	}
	legacy, err := DefinitionHash(t.Name, t.Description, inputSchema)
	if err != nil {
		return Tool{}, fmt.Errorf("%w %q: %v", ErrInvalidTool, t.Name, err)
	}
	hash, err := completeHash(t, inputSchema)
	if err != nil {
		return Tool{}, fmt.Errorf("%w %q: %v", ErrInvalidTool, t.Name, err)
	}
	outputSchema, err := outputSchemaJSON(t.OutputSchema)
	if err != nil {
		return Tool{}, fmt.Errorf("%w %q: %v", ErrInvalidTool, t.Name, err)
	}
	ann := convertAnnotations(t.Annotations)
	return Tool{
		Name:         t.Name,
		Title:        t.Title,
		Description:  t.Description,
		InputSchema:  inputSchema,
		OutputSchema: outputSchema,
		Annotations:  ann,
		Level:        schema.Classify(t.Name, schema.Hints{ReadOnly: ann.ReadOnlyHint, Destructive: ann.DestructiveHint}),
		Hash:         hash,
		LegacyHash:   legacy,
	}, nil
}

// schemaJSON encodes the input schema the SDK decoded (a map[string]any on the client side) as
// compact JSON with sorted keys, and checks that it is an object.
func schemaJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return slices.Clone(emptyInputSchema), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("input schema cannot be encoded: %v", err)
	}
	raw := bytes.TrimSpace(buf.Bytes())
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("input schema is not a JSON object")
	}
	return json.RawMessage(raw), nil
}

// outputSchemaJSON encodes the output schema the SDK decoded as compact JSON with sorted keys
// (nil when the tool declares none, or declares null).
func outputSchemaJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("output schema cannot be encoded: %v", err)
	}
	raw := bytes.TrimSpace(buf.Bytes())
	if string(raw) == "null" {
		return nil, nil
	}
	return json.RawMessage(raw), nil
}

// convertAnnotations copies the SDK's annotations. The SDK has ReadOnlyHint and IdempotentHint
// as plain booleans (absent decodes as false, the spec's default), so they are explicit whenever
// the tool has annotations at all.
func convertAnnotations(a *mcp.ToolAnnotations) Annotations {
	if a == nil {
		return Annotations{}
	}
	return Annotations{
		Title:           a.Title,
		ReadOnlyHint:    boolPtr(a.ReadOnlyHint),
		DestructiveHint: copyBool(a.DestructiveHint),
		IdempotentHint:  boolPtr(a.IdempotentHint),
		OpenWorldHint:   copyBool(a.OpenWorldHint),
	}
}

func boolPtr(b bool) *bool { return &b }

func copyBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	return boolPtr(*b)
}

func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
