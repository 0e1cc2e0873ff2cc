package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// CaveatArguments is the caveat of a tool's argument conditions (schema.zed).
const CaveatArguments = "arguments_match"

// Bounds of ArgumentConditions.
const (
	MaxConditions       = 16  // conditions of one tool, all kinds together
	MaxConditionValue   = 256 // bytes of a prefix or a one_of entry
	MaxOneOf            = 64  // entries of one one_of list
	maxArgumentNameSize = 128
)

// ArgumentConditions are a host's conditions on a tool's arguments, each on one top-level
// argument by name: Prefix (a string starting with it), Max and Min (a number at most / at least
// it), OneOf (a string among them). Every named argument must be present and of that type. They
// are the context of the tool's arguments_match caveat, evaluated by SpiceDB in the check of the
// call with the call's arguments.
type ArgumentConditions struct {
	Prefix map[string]string   `json:"prefix,omitempty"`
	Max    map[string]float64  `json:"max,omitempty"`
	Min    map[string]float64  `json:"min,omitempty"`
	OneOf  map[string][]string `json:"one_of,omitempty"`
}

// ErrInvalidConditions marks conditions that cannot be stored.
var ErrInvalidConditions = errors.New("invalid argument conditions")

// Empty reports whether there is no condition.
func (c ArgumentConditions) Empty() bool {
	return len(c.Prefix) == 0 && len(c.Max) == 0 && len(c.Min) == 0 && len(c.OneOf) == 0
}

// Validate checks the conditions' bounds: names and values non-empty UTF-8 of bounded size,
// numbers finite, min not above max, at most MaxConditions in all.
func (c ArgumentConditions) Validate() error {
	n := len(c.Prefix) + len(c.Max) + len(c.Min) + len(c.OneOf)
	if n > MaxConditions {
		return fmt.Errorf("%w: %d conditions, at most %d", ErrInvalidConditions, n, MaxConditions)
	}
	name := func(k string) error {
		if k == "" || len(k) > maxArgumentNameSize || !utf8.ValidString(k) {
			return fmt.Errorf("%w: argument name %q: want 1-%d bytes of UTF-8", ErrInvalidConditions, k, maxArgumentNameSize)
		}
		return nil
	}
	value := func(k, v string) error {
		if v == "" || len(v) > MaxConditionValue || !utf8.ValidString(v) {
			return fmt.Errorf("%w: %s: value %q: want 1-%d bytes of UTF-8", ErrInvalidConditions, k, v, MaxConditionValue)
		}
		return nil
	}
	for k, v := range c.Prefix {
		if err := errors.Join(name(k), value(k, v)); err != nil {
			return err
		}
	}
	for _, m := range []map[string]float64{c.Max, c.Min} {
		for k, v := range m {
			if err := name(k); err != nil {
				return err
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: %s: want a finite number", ErrInvalidConditions, k)
			}
		}
	}
	for k, mx := range c.Max {
		if mn, ok := c.Min[k]; ok && mn > mx {
			return fmt.Errorf("%w: %s: min %v is above max %v", ErrInvalidConditions, k, mn, mx)
		}
	}
	for k, list := range c.OneOf {
		if err := name(k); err != nil {
			return err
		}
		if len(list) == 0 || len(list) > MaxOneOf {
			return fmt.Errorf("%w: %s: one_of of %d values, want 1-%d", ErrInvalidConditions, k, len(list), MaxOneOf)
		}
		for _, v := range list {
			if err := value(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Names are the arguments the conditions name, sorted.
func (c ArgumentConditions) Names() []string {
	var names []string
	for k := range c.Prefix {
		names = append(names, k)
	}
	for k := range c.Max {
		names = append(names, k)
	}
	for k := range c.Min {
		names = append(names, k)
	}
	for k := range c.OneOf {
		names = append(names, k)
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Encode is the conditions' canonical JSON ("" for none): keys sorted, so equal conditions
// encode equally (it is part of the relationship's identity in String).
func (c ArgumentConditions) Encode() string {
	if c.Empty() {
		return ""
	}
	b, _ := json.Marshal(c.relationshipContext()) // maps marshal with sorted keys
	return string(b)
}

// relationshipContext is the caveat context written on the relationship: every map present
// (empty when unused), so the caveat never lacks a parameter but the call's arguments.
func (c ArgumentConditions) relationshipContext() map[string]any {
	orEmpty := func(n int) bool { return n == 0 }
	ctx := map[string]any{"prefix": map[string]string{}, "max": map[string]float64{}, "min": map[string]float64{}, "one_of": map[string][]string{}}
	if !orEmpty(len(c.Prefix)) {
		ctx["prefix"] = c.Prefix
	}
	if !orEmpty(len(c.Max)) {
		ctx["max"] = c.Max
	}
	if !orEmpty(len(c.Min)) {
		ctx["min"] = c.Min
	}
	if !orEmpty(len(c.OneOf)) {
		ctx["one_of"] = c.OneOf
	}
	return ctx
}

// DecodeArgumentConditions reads conditions encoded by Encode (or their JSON as the admin API
// takes it) strictly; "" is none.
func DecodeArgumentConditions(s string) (ArgumentConditions, error) {
	var c ArgumentConditions
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return ArgumentConditions{}, fmt.Errorf("%w: %v", ErrInvalidConditions, err)
	}
	if dec.More() {
		return ArgumentConditions{}, fmt.Errorf("%w: trailing data", ErrInvalidConditions)
	}
	return c, c.Validate()
}

// CheckContext is the context of a check of a tool with conditions: the call's arguments that
// the conditions name (others are not sent: they are not needed, and may be large or private).
// Arguments that are absent or not a JSON object give an empty map: every condition then
// fails.
func (c ArgumentConditions) CheckContext(arguments json.RawMessage) map[string]any {
	args := map[string]any{}
	var all map[string]json.RawMessage
	if len(bytes.TrimSpace(arguments)) > 0 && json.Unmarshal(arguments, &all) == nil {
		for _, k := range c.Names() {
			raw, ok := all[k]
			if !ok {
				continue
			}
			var v any
			if json.Unmarshal(raw, &v) == nil && v != nil {
				args[k] = v
			}
		}
	}
	return map[string]any{"arguments": args}
}

// Unmet names the first condition the arguments do not meet ("" when they meet them all), in
// words for the denial: the same rules as the caveat, for explaining SpiceDB's answer, never for
// deciding.
func (c ArgumentConditions) Unmet(arguments json.RawMessage) string {
	args, _ := c.CheckContext(arguments)["arguments"].(map[string]any)
	for _, k := range sortedKeys(c.Prefix) {
		s, ok := args[k].(string)
		if !ok || !strings.HasPrefix(s, c.Prefix[k]) {
			return fmt.Sprintf("%s must be a string starting with %q", k, c.Prefix[k])
		}
	}
	for _, k := range sortedKeys(c.Max) {
		f, ok := args[k].(float64)
		if !ok || f > c.Max[k] {
			return fmt.Sprintf("%s must be a number at most %v", k, c.Max[k])
		}
	}
	for _, k := range sortedKeys(c.Min) {
		f, ok := args[k].(float64)
		if !ok || f < c.Min[k] {
			return fmt.Sprintf("%s must be a number at least %v", k, c.Min[k])
		}
	}
	for _, k := range sortedKeys(c.OneOf) {
		s, ok := args[k].(string)
		if !ok || !slices.Contains(c.OneOf[k], s) {
			return fmt.Sprintf("%s must be one of %s", k, strings.Join(c.OneOf[k], ", "))
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Describe is the conditions in one line for people ("repository starts with acme/; amount ≤
// 1000").
func (c ArgumentConditions) Describe() string {
	var parts []string
	for _, k := range sortedKeys(c.Prefix) {
		parts = append(parts, fmt.Sprintf("%s starts with %q", k, c.Prefix[k]))
	}
	for _, k := range sortedKeys(c.Max) {
		parts = append(parts, fmt.Sprintf("%s ≤ %v", k, c.Max[k]))
	}
	for _, k := range sortedKeys(c.Min) {
		parts = append(parts, fmt.Sprintf("%s ≥ %v", k, c.Min[k]))
	}
	for _, k := range sortedKeys(c.OneOf) {
		parts = append(parts, fmt.Sprintf("%s one of %s", k, strings.Join(c.OneOf[k], "|")))
	}
	return strings.Join(parts, "; ")
}
