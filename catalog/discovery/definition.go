package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// Tool definition hashes come in two versions:
//
//   - v1 (64 hex digits, no prefix; DefinitionHash): name, description and input schema. Approvals
//     recorded before v2 carry it and are still honoured for the fields it covers.
//   - v2 ("v2:" and 64 hex digits; Tool.Hash): everything a client reads of a tool in tools/list
//     and shows to its model: name, title, description, input schema, output schema and
//     annotations (title and the four hints, with the spec's defaults made explicit).
const (
	hashPrefixV2  = "v2:"
	hashVersionV2 = "trustgate-tool-definition/v2"
)

// toolKeys are the members of a tool the definition hash covers; annotationKeys those of its
// annotations. ParseTool refuses keys that differ from these only by case or folding.
var (
	toolKeys       = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}
	annotationKeys = []string{"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
)

// Matches reports whether the tool's definition is the one approved with hash approved: a v2
// hash is compared with the whole definition, a v1 hash with the fields it covers.
func (t Tool) Matches(approved string) bool {
	if approved == "" {
		return false
	}
	if IsCompleteHash(approved) {
		return approved == t.Hash
	}
	return approved == t.LegacyHash
}

// IsCompleteHash reports whether h is a v2 hash (of the whole definition), not a v1 one.
func IsCompleteHash(h string) bool { return strings.HasPrefix(h, hashPrefixV2) }

// ParseTool reads one entry of a tools/list result as the official SDK clients read it and
// converts it like a discovered tool (same checks, level and hashes). An entry whose keys (or
// whose annotations' keys) repeat or differ from the known ones only by case or folding is
// refused: clients that match keys exactly would read another definition than the one hashed.
func ParseTool(raw json.RawMessage) (Tool, error) {
	obj, err := strictjson.ParseObject(raw, toolKeys...)
	if err != nil {
		return Tool{}, fmt.Errorf("%w: %v", ErrInvalidTool, err)
	}
	if ann, ok := obj["annotations"]; ok && string(ann) != "null" {
		if _, err := strictjson.Members(ann, annotationKeys...); err != nil {
			return Tool{}, fmt.Errorf("%w: annotations: %v", ErrInvalidTool, err)
		}
	}
	var t mcp.Tool
	if err := json.Unmarshal(raw, &t); err != nil {
		return Tool{}, fmt.Errorf("%w: %v", ErrInvalidTool, err)
	}
	return convertTool(&t)
}

// completeHash is the v2 hash of t, whose input schema schemaJSON already encoded.
func completeHash(t *mcp.Tool, inputSchema json.RawMessage) (string, error) {
	in, err := canonicalJSONv(inputSchema, true)
	if err != nil {
		return "", fmt.Errorf("input schema: %w", err)
	}
	out := json.RawMessage("null")
	if t.OutputSchema != nil {
		raw, err := marshalNoEscape(t.OutputSchema)
		if err != nil {
			return "", fmt.Errorf("output schema: %w", err)
		}
		if string(raw) != "null" {
			if out, err = canonicalJSONv(raw, true); err != nil {
				return "", fmt.Errorf("output schema: %w", err)
			}
		}
	}
	payload, err := marshalNoEscape(struct {
		Version      string             `json:"v"`
		Name         string             `json:"name"`
		Title        string             `json:"title"`
		Description  string             `json:"description"`
		InputSchema  json.RawMessage    `json:"inputSchema"`
		OutputSchema json.RawMessage    `json:"outputSchema"`
		Annotations  canonicalAnnotated `json:"annotations"`
	}{hashVersionV2, t.Name, t.Title, t.Description, in, out, effectiveAnnotations(t.Annotations)})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(payload)
	return hashPrefixV2 + hex.EncodeToString(sum[:]), nil
}

// canonicalAnnotated is what annotations mean: every hint with the spec's default made
// explicit, so that an absent hint and one given as its default hash the same.
type canonicalAnnotated struct {
	Title       string `json:"title"`
	ReadOnly    bool   `json:"readOnlyHint"`
	Destructive bool   `json:"destructiveHint"`
	Idempotent  bool   `json:"idempotentHint"`
	OpenWorld   bool   `json:"openWorldHint"`
}

func effectiveAnnotations(a *mcp.ToolAnnotations) canonicalAnnotated {
	c := canonicalAnnotated{Destructive: true, OpenWorld: true}
	if a == nil {
		return c
	}
	c.Title, c.ReadOnly, c.Idempotent = a.Title, a.ReadOnlyHint, a.IdempotentHint
	if a.DestructiveHint != nil {
		c.Destructive = *a.DestructiveHint
	}
	if a.OpenWorldHint != nil {
		c.OpenWorld = *a.OpenWorldHint
	}
	return c
}
