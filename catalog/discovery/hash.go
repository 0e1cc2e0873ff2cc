package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// hashVersion is part of every hashed payload, so that a future change of the canonical form
// changes all hashes instead of silently colliding with old ones.
const hashVersion = "trustgate-tool-definition/v1"

// DefinitionHash is the v1 hash (see Tool.Hash for v2): a stable SHA-256 (hex) over the tool's
// name, description and input schema, with the schema canonicalised (object keys sorted,
// insignificant whitespace removed) so that re-serialisation by the upstream does not change
// the hash, but any change of description or schema does. Title, output schema and annotations
// are not part of it.
//
// Canonicalisation also normalises string escapes ("\u0041" is "A") and numbers (1, 1.0 and 1e0
// are the same number; integers of any size are compared exactly).
func DefinitionHash(name, description string, inputSchema json.RawMessage) (string, error) {
	canon, err := canonicalJSONv(inputSchema, false)
	if err != nil {
		return "", fmt.Errorf("hashing tool %q: input schema: %w", name, err)
	}
	payload, err := marshalNoEscape(struct {
		Version     string          `json:"v"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}{hashVersion, name, description, canon})
	if err != nil {
		return "", fmt.Errorf("hashing tool %q: %w", name, err)
	}
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalJSONv re-encodes one JSON value with sorted object keys, no insignificant whitespace,
// normalised string escapes and normalised numbers. asClients spells every number as a client
// that reads JSON numbers as float64 reads it (v2 hashes; integers beyond 2^53 round as they do
// for the SDK clients); otherwise integer literals are kept exactly (v1 hashes).
func canonicalJSONv(raw json.RawMessage, asClients bool) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("empty JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the value")
	}
	return marshalNoEscape(canonicalNumbers(v, asClients))
}

// canonicalNumbers replaces every json.Number in v by its canonical spelling.
func canonicalNumbers(v any, asClients bool) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = canonicalNumbers(e, asClients)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = canonicalNumbers(e, asClients)
		}
		return v
	case json.Number:
		return canonicalNumber(v, asClients)
	default:
		return v
	}
}

// canonicalNumber keeps integer literals exactly as written (JSON allows one spelling per
// integer, except for "-0") and spells every other number through float64: integral values up to
// 2^53 as integers, the rest in Go's shortest form. Literals out of float64's range are kept.
// asClients spells integer literals through float64 too.
func canonicalNumber(n json.Number, asClients bool) json.Number {
	s := string(n)
	if !asClients && isIntegerLiteral(s) {
		if s == "-0" {
			return "0"
		}
		return n
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

func isIntegerLiteral(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// marshalNoEscape is json.Marshal without HTML escaping and without the trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
