package schema_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/schema"
)

func TestArgumentConditionsEncodeCanonicallyAndRoundTrip(t *testing.T) {
	a := schema.ArgumentConditions{Max: map[string]float64{"b": 2, "a": 1}, Prefix: map[string]string{"repository": "acme/"}}
	b := schema.ArgumentConditions{Prefix: map[string]string{"repository": "acme/"}, Max: map[string]float64{"a": 1, "b": 2}}
	if a.Encode() != b.Encode() {
		t.Fatalf("equal conditions encode differently: %s vs %s", a.Encode(), b.Encode())
	}
	back, err := schema.DecodeArgumentConditions(a.Encode())
	if err != nil || back.Encode() != a.Encode() {
		t.Fatalf("round trip: %v %s", err, back.Encode())
	}
	if (schema.ArgumentConditions{}).Encode() != "" {
		t.Error("no conditions encode as non-empty")
	}
	rel := schema.ToolLevelWithConditions("acme", "gh", "create.issue", schema.High, a)
	parsed, err := schema.ParseRelationship(rel.String())
	if err != nil || parsed != rel {
		t.Fatalf("ParseRelationship(%s) = %+v, %v", rel, parsed, err)
	}
	if !strings.HasPrefix(rel.String(), rel.Key()+"[arguments_match:{") {
		t.Errorf("zed notation %s", rel)
	}
	if plain := schema.ToolLevelWithConditions("acme", "gh", "x", schema.Low, schema.ArgumentConditions{}); plain.Caveat != "" {
		t.Error("a tool without conditions got a caveat")
	}
	for _, bad := range []string{"tool:a#server_low@mcp_server:b[arguments_match]", "tool:a#server_low@mcp_server:b[x:{]", "tool:a#server_low@mcp_server:b[:{}]"} {
		if _, err := schema.ParseRelationship(bad); err == nil {
			t.Errorf("ParseRelationship(%q) accepted it", bad)
		}
	}
}

func TestArgumentConditionsValidate(t *testing.T) {
	many := map[string]string{}
	for i := range schema.MaxConditions + 1 {
		many[strings.Repeat("a", i+1)] = "x"
	}
	for _, c := range []schema.ArgumentConditions{
		{Prefix: map[string]string{"": "x"}},
		{Prefix: map[string]string{"a": ""}},
		{Prefix: map[string]string{"a": strings.Repeat("x", schema.MaxConditionValue+1)}},
		{Prefix: many},
		{Max: map[string]float64{"a": 1}, Min: map[string]float64{"a": 2}},
		{OneOf: map[string][]string{"a": {}}},
	} {
		if err := c.Validate(); !errors.Is(err, schema.ErrInvalidConditions) {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
	if _, err := schema.DecodeArgumentConditions(`{"prefix":{"a":"b"},"regex":{"a":".*"}}`); err == nil {
		t.Error("an unknown kind of condition was accepted")
	}
}

func TestArgumentConditionsContextAndExplanation(t *testing.T) {
	c := schema.ArgumentConditions{Prefix: map[string]string{"repository": "acme/"}, Min: map[string]float64{"amount": 1}}
	ctx := c.CheckContext(json.RawMessage(`{"repository":"acme/x","amount":3,"body":"a long private text"}`))
	args := ctx["arguments"].(map[string]any)
	if len(args) != 2 || args["repository"] != "acme/x" || args["amount"] != 3.0 {
		t.Errorf("context %v: want only the named arguments", ctx)
	}
	for args, want := range map[string]string{
		`{"repository":"acme/x","amount":3}`:  "",
		`{"repository":"other/x","amount":3}`: `repository must be a string starting with "acme/"`,
		`{"repository":"acme/x","amount":0}`:  "amount must be a number at least 1",
		`not json`:                            `repository must be a string starting with "acme/"`,
	} {
		if got := c.Unmet(json.RawMessage(args)); got != want {
			t.Errorf("Unmet(%s) = %q, want %q", args, got, want)
		}
	}
}
