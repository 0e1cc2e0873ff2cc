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

	"github.com/go-json-experiment/json/jsontext"
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
	_, err := read(data, deep, false, nil)
	return err
}

// ParseObject checks data as Check does, requires it to be an object, and returns its members.
// A key that is not one of known but folds to one of them is refused.
func ParseObject(data []byte, known ...string) (Object, error) {
	return read(data, deep, true, known)
}

// Members returns the members of an object already checked by Check or ParseObject (for
// example a nested value of one), refusing a key that folds to one of known without being it.
// It does not check nested values again.
func Members(data []byte, known ...string) (Object, error) {
	return read(data, shallow, true, known)
}

// Shallow reads the object in data checking only its own keys: data must be one valid JSON
// value in valid UTF-8 and an object, none of whose keys may repeat, fold to another of its
// keys, or fold to one of known without being it. Nested values are checked to be valid JSON
// only: check those the caller decides on with Check or ParseObject. It is the cheap first
// step of reading a large message of which only some members matter (a tools/list answer,
// whose tool entries are checked one by one).
func Shallow(data []byte, known ...string) (Object, error) {
	return read(data, shallow, true, known)
}

func checkKnown(key string, known []string) error {
	for _, want := range known {
		if key != want && strings.EqualFold(key, want) {
			return refuse("key %q differs from %q only by case or folding", key, want)
		}
	}
	return nil
}

// How far read checks keys.
const (
	shallow = false // the top-level object's keys only; nested values are only valid JSON
	deep    = true  // every object's keys at every depth
)

// decoderOptions: the tokenizer checks syntax, raw UTF-8 and nesting; keys are compared here,
// after unescaping and under Unicode folding, which covers exact duplicates too. Escaped lone
// surrogates ("\ud800") are read as U+FFFD, as Go's encoding/json (which the official Go SDK
// uses) reads them; raw invalid UTF-8 is refused before the tokenizer sees it.
var decoderOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// read reads one JSON value from data: checkDeep checks the keys of every object at every
// depth, otherwise only those of the top-level object; when wantObject, the value must be an
// object and its top-level members are returned.
func read(data []byte, checkDeep, wantObject bool, known []string) (Object, error) {
	if !utf8.Valid(data) {
		return nil, refuse("invalid UTF-8")
	}
	// A bytes.Buffer is read in place (jsontext reads it without copying it into a buffer of
	// its own, which grows as it goes); the decoder never writes to it.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data), decoderOptions...)
	var top Object
	switch kind := dec.PeekKind(); {
	case kind == 0:
		_, err := dec.ReadToken()
		return nil, syntaxError(err)
	case wantObject && kind != '{':
		return nil, refuse("not a JSON object")
	case wantObject:
		top = make(Object, 8)
	}
	// open holds one entry per open container (depth indexes it); keys holds the keys of the
	// open objects, innermost last.
	open := make([]container, 0, 8)
	keys := keySets{keys: make([][]byte, 0, 32)}
	var (
		memberKey   string // the top-level member being read …
		memberStart int64  // … whose value starts at this offset (0: none)
		done        bool   // the value is complete: nothing may follow
	)
	for {
		depth := dec.StackDepth()
		kind := dec.PeekKind()
		if kind == 0 {
			if _, err := dec.ReadToken(); err != io.EOF {
				return nil, syntaxError(err)
			}
			break
		}
		if done {
			return nil, refuse("invalid JSON: data after the value")
		}
		// A key: the innermost container is an object expecting a name.
		if depth > 0 && kind == '"' {
			if parent, n := dec.StackIndex(depth); parent == '{' && n%2 == 0 {
				raw, err := dec.ReadValue()
				if err != nil {
					return nil, syntaxError(err)
				}
				key, err := unquote(data, dec.InputOffset(), raw)
				if err != nil {
					return nil, syntaxError(err)
				}
				if depth == 1 || checkDeep {
					if err := keys.add(&open[depth-1], key); err != nil {
						return nil, err
					}
				}
				if depth == 1 && top != nil {
					key := string(key)
					if err := checkKnown(key, known); err != nil {
						return nil, err
					}
					memberKey, memberStart = key, dec.InputOffset()
				}
				continue
			}
		}
		switch kind {
		case '{', '[':
			if depth >= 1 && !checkDeep {
				// Below the top-level object: valid JSON is all that is asked.
				if err := dec.SkipValue(); err != nil {
					return nil, syntaxError(err)
				}
				break
			}
			if depth >= MaxDepth {
				return nil, refuse("nested deeper than %d", MaxDepth)
			}
			if _, err := dec.ReadToken(); err != nil {
				return nil, syntaxError(err)
			}
			open = append(open, container{start: len(keys.keys)})
			continue
		case '}', ']':
			if _, err := dec.ReadToken(); err != nil {
				return nil, syntaxError(err)
			}
			keys.keys = keys.keys[:open[len(open)-1].start]
			open = open[:len(open)-1]
		default:
			if err := dec.SkipValue(); err != nil {
				return nil, syntaxError(err)
			}
		}
		// A value ended; when it was a member of the top-level object, keep it.
		if top != nil && dec.StackDepth() == 1 && memberStart > 0 {
			top[memberKey] = json.RawMessage(bytes.TrimLeft(data[memberStart:dec.InputOffset()], " \t\r\n:"))
			memberStart = 0
		}
		done = dec.StackDepth() == 0
	}
	if !done {
		return nil, refuse("invalid JSON: empty input")
	}
	return top, nil
}

// syntaxError turns the tokenizer's error into a refusal.
func syntaxError(err error) error {
	if err == nil || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return refuse("invalid JSON: unexpected end of input")
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && se.Err != nil && strings.Contains(se.Err.Error(), "exceeded max depth") {
		return refuse("nested deeper than %d", MaxDepth)
	}
	return refuse("invalid JSON: %v", err)
}

// unquote returns the key whose quoted form raw the decoder has just read, ending at offset
// end of data: a slice of data itself (not a copy) when it has no escapes.
func unquote(data []byte, end int64, raw jsontext.Value) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return data[end-int64(len(raw))+1 : end-1 : end-1], nil
	}
	return jsontext.AppendUnquote(nil, raw)
}

// container is an open object or array: the keys of an object are keySets.keys[start:].
type container struct {
	start  int
	folded map[string][]byte // folded key → key as sent, once the object has > smallObject keys
}

// keySets holds the keys of the open objects, innermost last, compared under Unicode simple
// folding (exact duplicates are fold-equal too). Small objects are scanned; large ones are
// indexed by folded key.
type keySets struct {
	keys [][]byte
}

const smallObject = 16

func (s *keySets) add(c *container, key []byte) error {
	if c.folded == nil {
		own := s.keys[c.start:]
		for _, prev := range own {
			if bytes.EqualFold(prev, key) {
				return twinKeys(string(prev), string(key))
			}
		}
		s.keys = append(s.keys, key)
		if len(own)+1 <= smallObject {
			return nil
		}
		c.folded = make(map[string][]byte, 2*smallObject)
		for _, k := range s.keys[c.start:] {
			c.folded[foldKey(string(k))] = k
		}
		return nil
	}
	f := foldKey(string(key))
	if prev, dup := c.folded[f]; dup {
		return twinKeys(string(prev), string(key))
	}
	c.folded[f] = key
	return nil
}

func twinKeys(prev, key string) error {
	if prev == key {
		return refuse("duplicate key %q", key)
	}
	return refuse("keys %q and %q differ only by case or folding", prev, key)
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
