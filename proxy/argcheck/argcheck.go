// Package argcheck checks a tools/call's arguments against the tool's approved inputSchema
// (JSON Schema, with santhosh-tekuri/jsonschema): each schema is compiled once and kept in a
// bounded cache keyed by the hash of its text, nothing is ever loaded from elsewhere (a $ref to
// a URL, a file or an unknown $schema makes the schema fail to compile, and the call is
// refused), and a mismatch is one bounded, single-line message the agent can act on.
package argcheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// DefaultMaxSchemas bounds the cache when New is given 0.
const DefaultMaxSchemas = 4096

// MaxMessage bounds the text of a mismatch (bytes).
const MaxMessage = 512

// ErrSchema: the tool's stored input schema cannot be compiled (invalid, or it refers to a
// document that is not inside it). Calls of that tool are refused until it is fixed upstream
// and approved again.
var ErrSchema = errors.New("the tool's input schema cannot be used to check its arguments")

// MismatchError: the arguments do not fit the schema. Message is for the agent (it may quote
// the values it sent); Audit names only where and which keyword failed, never a value, for the
// audit log. Both are bounded (MaxMessage).
type MismatchError struct{ Message, Audit string }

func (e *MismatchError) Error() string { return e.Message }

// Cache compiles schemas once and keeps them. It is safe for concurrent use.
type Cache struct {
	max int

	mu      sync.Mutex
	schemas map[[sha256.Size]byte]compiled
}

type compiled struct {
	sch *jsonschema.Schema
	err error
}

// New returns a cache of at most maxSchemas compiled schemas (0: DefaultMaxSchemas); when full
// it starts over.
func New(maxSchemas int) *Cache {
	if maxSchemas <= 0 {
		maxSchemas = DefaultMaxSchemas
	}
	return &Cache{max: maxSchemas, schemas: map[[sha256.Size]byte]compiled{}}
}

// Len is the number of schemas held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.schemas)
}

// Check checks arguments (params.arguments as sent; absent or null is checked as {})
// against inputSchema (the stored JSON text; "" when the tool has none, checked as
// {"type":"object"}). nil: they fit. A *MismatchError: they do not. An error wrapping
// ErrSchema: the schema cannot be used.
func (c *Cache) Check(inputSchema string, arguments json.RawMessage) error {
	sch, err := c.schema(inputSchema)
	if err != nil {
		return err
	}
	if a := bytes.TrimSpace(arguments); len(a) == 0 || bytes.Equal(a, []byte("null")) {
		// Absent, or null as some clients (the official Go SDK's) send no arguments.
		arguments = json.RawMessage("{}")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(arguments))
	if err != nil {
		return &MismatchError{Message: "arguments are not JSON", Audit: "arguments are not JSON"}
	}
	if err := sch.Validate(inst); err != nil {
		return describe(err)
	}
	return nil
}

// schema is the compiled form of text, compiled at most once while cached.
func (c *Cache) schema(text string) (*jsonschema.Schema, error) {
	if strings.TrimSpace(text) == "" {
		text = `{"type":"object"}`
	}
	key := sha256.Sum256([]byte(text))
	c.mu.Lock()
	got, ok := c.schemas[key]
	c.mu.Unlock()
	if !ok {
		sch, err := compile(text)
		got = compiled{sch, err}
		c.mu.Lock()
		if len(c.schemas) >= c.max {
			clear(c.schemas)
		}
		c.schemas[key] = got
		c.mu.Unlock()
	}
	return got.sch, got.err
}

// schemaURL is the compiled document's own location: a name that no loader resolves.
const schemaURL = "https://input-schema.trustgate.invalid/schema.json"

// refuseLoader loads nothing: a schema is checked only against itself (and the standard's
// meta-schemas the library carries).
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: schemas that refer to other documents are not loaded", url)
}

func compile(text string) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON", ErrSchema)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	// Tool schemas without $schema are JSON Schema 2020-12 (MCP 2025-11-25).
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSchema, bound(err.Error()))
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSchema, bound(oneLine(err.Error())))
	}
	return sch, nil
}

var printer = message.NewPrinter(language.English)

// describe turns a validation error into one line: each leaf cause as "at <path>: <message>"
// (at most 8), joined with "; ", bounded; the audit form names the keyword instead of the
// message.
func describe(err error) *MismatchError {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &MismatchError{Message: bound(oneLine(err.Error())), Audit: "the arguments do not fit the schema"}
	}
	var msgs, audits []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(msgs) >= 8 {
			return
		}
		if len(e.Causes) == 0 {
			at := "the arguments"
			loc := oneLine(strings.Join(e.InstanceLocation, "/"))
			if len(e.InstanceLocation) > 0 {
				at = "at /" + loc
			}
			msgs = append(msgs, at+": "+oneLine(e.ErrorKind.LocalizedString(printer)))
			audits = append(audits, at+": "+strings.Join(e.ErrorKind.KeywordPath(), "/"))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(msgs) == 0 {
		return &MismatchError{Message: bound(oneLine(ve.Error())), Audit: "the arguments do not fit the schema"}
	}
	return &MismatchError{Message: bound(strings.Join(msgs, "; ")), Audit: bound(strings.Join(audits, "; "))}
}

// oneLine folds whitespace runs (newlines included) into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// bound cuts s to MaxMessage bytes on a rune boundary, marking the cut.
func bound(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage - len("…")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
