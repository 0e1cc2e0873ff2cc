// Package strictjson reads JSON the way the strictest receiver does, so that whatever trustgate
// decides on is what the receiver acts on.
//
// Go's encoding/json matches object keys to struct fields case-insensitively (with Unicode
// folding: "ſ" matches "s", "K" (Kelvin) matches "k") and lets the last of several matches win;
// JavaScript, Python and the official MCP SDKs match keys exactly and differ on which duplicate
// wins. A message that means one thing to the gateway and another to the upstream or the client
// is refused here instead of being decided on:
//
//   - the input must be valid UTF-8 and valid JSON, one value, nested at most MaxDepth deep;
//   - within every object, no two keys may be equal or equal under Unicode case folding
//     (after unescaping: "\u006eame" is "name");
//   - ParseObject additionally refuses a key that is not one of the known keys but folds to one
//     ("Params", "paramſ" when "params" is known): a case-insensitive receiver would read it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects.
const MaxDepth = 512

// Error is why an input was refused. Its text names the offending key but never a value.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Object is a JSON object's members by exact key; each value is the member's raw JSON.
type Object map[string]json.RawMessage

// Has reports whether the object has the exact key.
func (o Object) Has(key string) bool {
	_, ok := o[key]
	return ok
}

// String returns the member key when it is a JSON string; ok is false when it is absent or
// of another type.
func (o Object) String(key string) (s string, ok bool) {
	raw, present := o[key]
	if !present || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Check refuses data unless it is one valid JSON value in valid UTF-8, nested at most MaxDepth,
// whose objects (at every level) have no duplicate and no fold-equal keys.
func Check(data []byte) error {
	_, err := walk(data, false, nil)
	return err
}

// ParseObject checks data as Check does, requires it to be an object, and returns its members.
// A key that is not one of known but folds to one of them is refused.
func ParseObject(data []byte, known ...string) (Object, error) {
	return walk(data, true, known)
}

// Members returns the members of an object already checked by Check or ParseObject (for
// example a nested value of one), refusing a key that folds to one of known without being it.
// It does not check nested values again.
func Members(data []byte, known ...string) (Object, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return nil, refuse("not a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, refuse("invalid JSON object: %v", err)
	}
	for k := range obj {
		if err := checkKnown(k, known); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// Shallow reads the object in data checking only its own keys: data must be one valid JSON
// value in valid UTF-8 and an object, none of whose keys may repeat, fold to another of its
// keys, or fold to one of known without being it. Nested values are checked to be valid JSON
// only: check those the caller decides on with Check or ParseObject. It is the cheap first
// step of reading a large message of which only some members matter (a tools/list answer,
// whose tool entries are checked one by one).
func Shallow(data []byte, known ...string) (Object, error) {
	if !utf8.Valid(data) {
		return nil, refuse("invalid UTF-8")
	}
	if !json.Valid(data) {
		return nil, refuse("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, refuse("not a JSON object")
	}
	obj := make(Object, 8)
	folded := make(map[string]string, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, refuse("invalid JSON: %v", err)
		}
		key, _ := tok.(string)
		f := foldKey(key)
		if prev, dup := folded[f]; dup {
			if prev == key {
				return nil, refuse("duplicate key %q", key)
			}
			return nil, refuse("keys %q and %q differ only by case or folding", prev, key)
		}
		folded[f] = key
		if err := checkKnown(key, known); err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, refuse("invalid JSON: %v", err)
		}
		obj[key] = v
	}
	return obj, nil
}

func checkKnown(key string, known []string) error {
	for _, want := range known {
		if key != want && strings.EqualFold(key, want) {
			return refuse("key %q differs from %q only by case or folding", key, want)
		}
	}
	return nil
}

// walk reads one JSON value from data token by token, checking every object's keys; when
// wantObject, the value must be an object and its top-level members are returned.
func walk(data []byte, wantObject bool, known []string) (Object, error) {
	if !utf8.Valid(data) {
		return nil, refuse("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool              // object: the next string token is a key
		keys      map[string]string // object: folded key → key as sent
		key       string            // the member being read
		start     int64             // offset before the member's value
	}
	var stack []frame
	var top Object
	if wantObject {
		top = make(Object, 8)
	}
	// valueDone is called when a value ends inside the innermost container.
	valueDone := func() {
		n := len(stack)
		if n == 0 || !stack[n-1].object {
			return
		}
		f := &stack[n-1]
		if n == 1 && wantObject {
			top[f.key] = json.RawMessage(bytes.TrimLeft(data[f.start:dec.InputOffset()], " \t\r\n:"))
		}
		f.expectKey = true
	}
	seenValue := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, refuse("invalid JSON: %v", err)
		}
		if len(stack) == 0 {
			if seenValue {
				return nil, refuse("invalid JSON: data after the value")
			}
			seenValue = true
			if wantObject && tok != json.Delim('{') {
				return nil, refuse("not a JSON object")
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			key, ok := tok.(string)
			if !ok { // '}' of an object: handled below
				goto structural
			}
			f := &stack[n-1]
			folded := foldKey(key)
			if prev, dup := f.keys[folded]; dup {
				if prev == key {
					return nil, refuse("duplicate key %q", key)
				}
				return nil, refuse("keys %q and %q differ only by case or folding", prev, key)
			}
			if f.keys == nil {
				f.keys = make(map[string]string, 8)
			}
			f.keys[folded] = key
			if n == 1 && wantObject {
				if err := checkKnown(key, known); err != nil {
					return nil, err
				}
			}
			f.key, f.start, f.expectKey = key, dec.InputOffset(), false
			continue
		}
	structural:
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= MaxDepth {
				return nil, refuse("nested deeper than %d", MaxDepth)
			}
			stack = append(stack, frame{object: tok == json.Delim('{'), expectKey: tok == json.Delim('{')})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
	if !seenValue {
		return nil, refuse("invalid JSON: empty input")
	}
	if len(stack) != 0 {
		return nil, refuse("invalid JSON: unexpected end of input")
	}
	return top, nil
}

// foldKey maps s to one representative of its Unicode simple-folding class, so that two keys
// fold to the same string exactly when strings.EqualFold says they are equal.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// The smallest member of an ASCII letter's class is its upper case ('K' < 'k' < U+212A
		// KELVIN SIGN, 'S' < 's' < U+017F LONG S), as the loop below computes for the rest.
		return strings.ToUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// IsRefusal reports whether err is a refusal of this package.
func IsRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
