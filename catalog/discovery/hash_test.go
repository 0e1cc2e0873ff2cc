package discovery

import (
	"encoding/json"
	"strings"
	"testing"
)

const baseSchema = `{"type":"object","properties":{"repo":{"type":"string","description":"owner/name <repo>"},"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["repo"]}`

func mustHash(t *testing.T, name, desc, s string) string {
	t.Helper()
	h, err := DefinitionHash(name, desc, json.RawMessage(s))
	if err != nil {
		t.Fatalf("DefinitionHash(%q): %v", s, err)
	}
	return h
}

func TestDefinitionHashIgnoresSerialisation(t *testing.T) {
	base := mustHash(t, "list_issues", "List issues.", baseSchema)
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not hex SHA-256", base)
	}
	same := []string{
		// Other key order and whitespace.
		`{
		  "required": [ "repo" ],
		  "properties": {
		    "limit": { "maximum": 100, "minimum": 1, "type": "integer" },
		    "repo":  { "description": "owner/name <repo>", "type": "string" }
		  },
		  "type": "object"
		}`,
		// Other escapes and number spellings.
		`{"type":"object","properties":{"repo":{"type":"str\u0069ng","description":"owner\/name \u003crepo\u003e"},"limit":{"type":"integer","minimum":1.0,"maximum":1e2}},"required":["repo"]}`,
	}
	for _, s := range same {
		if h := mustHash(t, "list_issues", "List issues.", s); h != base {
			t.Errorf("hash of %s = %s, want %s", s, h, base)
		}
	}
}

func TestDefinitionHashSeesChanges(t *testing.T) {
	base := mustHash(t, "list_issues", "List issues.", baseSchema)
	changed := map[string]string{
		"name":           mustHash(t, "list_issue", "List issues.", baseSchema),
		"description":    mustHash(t, "list_issues", "List issues!", baseSchema),
		"no description": mustHash(t, "list_issues", "", baseSchema),
		"schema value":   mustHash(t, "list_issues", "List issues.", strings.Replace(baseSchema, `"maximum":100`, `"maximum":101`, 1)),
		"schema key":     mustHash(t, "list_issues", "List issues.", strings.Replace(baseSchema, `"required":["repo"]`, `"required":[]`, 1)),
		"array order":    mustHash(t, "list_issues", "List issues.", `{"type":"object","enum":["b","a"]}`),
		"array order'":   mustHash(t, "list_issues", "List issues.", `{"type":"object","enum":["a","b"]}`),
		"big integer":    mustHash(t, "list_issues", "List issues.", `{"type":"object","maximum":9007199254740993}`),
		"big integer'":   mustHash(t, "list_issues", "List issues.", `{"type":"object","maximum":9007199254740992}`),
		// Name and description must not run into each other.
		"boundary": mustHash(t, "list_issuesList", " issues.", baseSchema),
	}
	seen := map[string]string{base: "base"}
	for what, h := range changed {
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s hash the same", what, other)
		}
		seen[h] = what
	}
}

// The canonical form is part of what is stored; a change of it must be deliberate.
func TestDefinitionHashIsStable(t *testing.T) {
	got := mustHash(t, "list_issues", "List issues.", baseSchema)
	const want = "02b004335675aa922b5dfc8a7e4bf5657d1a3a1773b3de2d85ba44261ef1204c"
	if got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
}

func TestDefinitionHashRejectsBadJSON(t *testing.T) {
	for _, s := range []string{"", "  ", "{", `{"a":1} {"b":2}`, "nul"} {
		if _, err := DefinitionHash("t", "d", json.RawMessage(s)); err == nil {
			t.Errorf("DefinitionHash(%q) succeeded", s)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "1": "1", "1.0": "1", "1e2": "100", "1E+2": "100", "-2.50": "-2.5",
		"0.1": "0.1", "1e300": "1e+300", "9007199254740993": "9007199254740993", "1e400": "1e400",
	} {
		if got := canonicalNumber(json.Number(in), false); string(got) != want {
			t.Errorf("canonicalNumber(%s) = %s, want %s", in, got, want)
		}
	}
	// v2 spells numbers as clients reading float64 do: 2^53+1 reads as 2^53.
	for in, want := range map[string]string{"9007199254740993": "9007199254740992", "-0": "0", "100": "100", "1e400": "1e400"} {
		if got := canonicalNumber(json.Number(in), true); string(got) != want {
			t.Errorf("canonicalNumber(%s, asClients) = %s, want %s", in, got, want)
		}
	}
}
