package dlp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// ErrNotJSON: RedactJSON was given something that is not one JSON value.
var ErrNotJSON = errors.New("not valid JSON")

// RedactJSON redacts the findings inside the JSON value data: in every string value, every
// number (a card number may be one) and every object key. The rest of data is copied byte for
// byte, so the output is valid JSON whenever data is: a string's findings are replaced inside
// the string (re-encoded), a number with a finding becomes the placeholder string, and a key
// with a finding becomes its placeholder with "#n" appended (n counting the redacted keys of
// data), so that two redacted keys of one object stay distinct. data must be valid JSON (the
// caller checks it strictly first); out is nil when nothing was found.
func (s *Scanner) RedactJSON(data []byte) (out []byte, found Findings, err error) {
	var b []byte // nil until the first finding
	keys := 0
	copied := 0 // data[:copied] is in b (once b is in use)
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '"':
			end, escaped, err := stringEnd(data, i)
			if err != nil {
				return nil, nil, err
			}
			raw := data[i:end]
			var text string
			if escaped {
				if err := json.Unmarshal(raw, &text); err != nil {
					return nil, nil, ErrNotJSON
				}
			} else {
				text = string(raw[1 : len(raw)-1])
			}
			red, f := s.Redact(text)
			if f != nil {
				if found == nil {
					found = Findings{}
				}
				found.Add(f)
				if isKey(data, end) {
					keys++
					red += "#" + strconv.Itoa(keys)
				}
				b = append(b, data[copied:i]...)
				b = appendString(b, red)
				copied = end
			}
			i = end
		case c == '-' || c >= '0' && c <= '9':
			end := i + 1
			for end < len(data) && isNumberByte(data[end]) {
				end++
			}
			if _, f := s.Redact(string(data[i:end])); f != nil {
				if found == nil {
					found = Findings{}
				}
				found.Add(f)
				b = append(b, data[copied:i]...)
				// The whole number is the finding's: none of its digits stays.
				b = appendString(b, Placeholder(f.Kinds()[0]))
				copied = end
			}
			i = end
		default:
			i++
		}
	}
	if found == nil {
		return nil, nil, nil
	}
	return append(b, data[copied:]...), found, nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// stringEnd is the index after the JSON string starting at data[i] (a quote), and whether it
// holds escapes.
func stringEnd(data []byte, i int) (end int, escaped bool, err error) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped, nil
		}
	}
	return 0, false, ErrNotJSON
}

// isKey: the string ending before data[end] is an object key (a colon follows it).
func isKey(data []byte, end int) bool {
	rest := bytes.TrimLeft(data[end:], " \t\r\n")
	return len(rest) > 0 && rest[0] == ':'
}

// appendString appends s as a JSON string (without HTML escaping).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}
