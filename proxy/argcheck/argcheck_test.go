package argcheck_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/trustgate/trustgate/proxy/argcheck"
)

const repoSchema = `{
	"type": "object",
	"properties": {
		"repository": {"type": "string", "pattern": "^[a-z]+/[a-z]+$"},
		"amount": {"type": "integer", "maximum": 1000},
		"secret_note": {"type": "string", "enum": ["a", "b"]}
	},
	"required": ["repository"],
	"additionalProperties": false
}`

func TestCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		schema, args string
		fits         bool
		msg          []string // substrings of the message
	}{
		"fits":                   {repoSchema, `{"repository":"acme/web","amount":3}`, true, nil},
		"missing required":       {repoSchema, `{"amount":3}`, false, []string{"the arguments", "repository"}},
		"wrong type":             {repoSchema, `{"repository":"acme/web","amount":"3"}`, false, []string{"at /amount", "integer"}},
		"above maximum":          {repoSchema, `{"repository":"acme/web","amount":1001}`, false, []string{"at /amount", "maximum"}},
		"pattern":                {repoSchema, `{"repository":"Acme Web"}`, false, []string{"at /repository"}},
		"extra property":         {repoSchema, `{"repository":"acme/web","force":true}`, false, []string{"force"}},
		"absent arguments":       {repoSchema, ``, false, []string{"repository"}},
		"null arguments":         {"", `null`, true, nil},
		"not an object":          {repoSchema, `[1]`, false, []string{"object"}},
		"no schema: object fits": {"", `{"x":1}`, true, nil},
		"no schema: array fails": {"", `[1]`, false, []string{"object"}},
		"draft-07 $schema":       {`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["q"]}`, `{}`, false, []string{"q"}},
		"local $ref":             {`{"type":"object","properties":{"n":{"$ref":"#/$defs/n"}},"$defs":{"n":{"type":"number"}}}`, `{"n":"x"}`, false, []string{"at /n"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := argcheck.New(0).Check(tc.schema, json.RawMessage(tc.args))
			if tc.fits {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var me *argcheck.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Check = %v, want a MismatchError", err)
			}
			for _, s := range tc.msg {
				if !strings.Contains(me.Message, s) {
					t.Errorf("message %q does not contain %q", me.Message, s)
				}
			}
			if strings.Contains(me.Message, "\n") || len(me.Message) > argcheck.MaxMessage {
				t.Errorf("message not one bounded line: %q", me.Message)
			}
		})
	}
}

// The audit form never quotes a value the agent sent.
func TestAuditFormHasNoValues(t *testing.T) {
	err := argcheck.New(0).Check(repoSchema, json.RawMessage(`{"repository":"SECRET-VALUE-123","secret_note":"SECRET-VALUE-456"}`))
	var me *argcheck.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Check = %v, want a MismatchError", err)
	}
	if !strings.Contains(me.Message, "SECRET-VALUE-123") {
		t.Logf("message: %s", me.Message) // the agent's own values may be quoted to it
	}
	if strings.Contains(me.Audit, "SECRET-VALUE") {
		t.Fatalf("audit form quotes a value: %q", me.Audit)
	}
	if !strings.Contains(me.Audit, "at /repository: pattern") || !strings.Contains(me.Audit, "at /secret_note: enum") {
		t.Fatalf("audit form %q does not name where and which keyword", me.Audit)
	}
}

// A schema that refers to another document loads nothing, over the network or from files: it
// cannot be compiled, and every call of the tool is refused.
func TestRemoteRefsAreNotLoaded(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"type":"object"}`))
	}))
	defer srv.Close()
	for name, schema := range map[string]string{
		"http $ref":       fmt.Sprintf(`{"type":"object","properties":{"a":{"$ref":%q}}}`, srv.URL+"/s.json"),
		"file $ref":       `{"$ref":"file:///etc/passwd"}`,
		"relative $ref":   `{"$ref":"other.json"}`,
		"unknown $schema": fmt.Sprintf(`{"$schema":%q,"type":"object"}`, srv.URL+"/meta"),
		"invalid schema":  `{"type":12}`,
		"not JSON":        `{"type":`,
	} {
		t.Run(name, func(t *testing.T) {
			err := argcheck.New(0).Check(schema, json.RawMessage(`{"a":1}`))
			if !errors.Is(err, argcheck.ErrSchema) {
				t.Fatalf("Check = %v, want ErrSchema", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the schema server was asked %d times", n)
	}
}

func TestCompiledOncePerSchemaAndBounded(t *testing.T) {
	c := argcheck.New(3)
	for range 5 {
		if err := c.Check(repoSchema, json.RawMessage(`{"repository":"a/b"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after one schema, want 1", c.Len())
	}
	for i := range 10 {
		_ = c.Check(fmt.Sprintf(`{"type":"object","maxProperties":%d}`, i), nil)
		if c.Len() > 3 {
			t.Fatalf("Len = %d, above the bound 3", c.Len())
		}
	}
}

func TestMessageBounded(t *testing.T) {
	props := map[string]any{}
	for i := range 200 {
		props[fmt.Sprintf("property_with_a_long_name_%03d", i)] = map[string]any{"type": "integer"}
	}
	schema, _ := json.Marshal(map[string]any{"type": "object", "properties": props})
	args := map[string]any{}
	for k := range props {
		args[k] = "not a number"
	}
	a, _ := json.Marshal(args)
	var me *argcheck.MismatchError
	if err := argcheck.New(0).Check(string(schema), a); !errors.As(err, &me) {
		t.Fatalf("Check = %v", err)
	}
	if len(me.Message) > argcheck.MaxMessage || len(me.Audit) > argcheck.MaxMessage {
		t.Fatalf("message %d bytes, audit %d bytes: above %d", len(me.Message), len(me.Audit), argcheck.MaxMessage)
	}
}
