package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Redacted replaces a secret in stored arguments.
const Redacted = "[redacted]"

// secretKey matches object keys whose values are secrets, whatever the case and separators.
var secretKey = regexp.MustCompile(`(?i)(passw(or)?d|passphrase|^pwd$|secret|token|authorization|^auth$|api[-_]?key|access[-_]?key|private[-_]?key|cookie|session[-_]?id|credential)`)

// secretValue matches string values that look like credentials wherever they appear.
var secretValue = regexp.MustCompile(`(?i)(` +
	`^\s*(bearer|basic|token)\s+\S+` + // an Authorization header value
	`|eyJ[a-zA-Z0-9_-]{5,}\.[a-zA-Z0-9_-]{5,}\.` + // a JWT
	`|-----BEGIN [A-Z ]*PRIVATE KEY-----` +
	`|\b(sk|pk|rk)[-_](live|test|proj|ant)?[-_]?[a-zA-Z0-9_-]{16,}` + // Stripe, OpenAI, Anthropic style keys
	`|\bgh[pousr]_[a-zA-Z0-9]{20,}` + // GitHub tokens
	`|\bgithub_pat_[a-zA-Z0-9_]{20,}` +
	`|\bxox[abposr]-[a-zA-Z0-9-]{10,}` + // Slack tokens
	`|\bAKIA[0-9A-Z]{16}\b` + // AWS access key ids
	`|\bAIza[0-9A-Za-z_-]{30,}` + // Google API keys
	`|://[^/\s:@]+:[^/\s@]+@` + // credentials in a URL
	`)`)

// RedactArguments returns the JSON text of a tool call's arguments with secrets replaced by
// "[redacted]": the values of keys that name secrets (password, token, secret, authorization,
// api_key, cookie, ...) and string values that look like credentials (bearer tokens, JWTs,
// private keys, well-known API key formats). The result is at most maxBytes long (MaxArguments
// when maxBytes <= 0); larger arguments are replaced by a note of their size. Arguments that
// are not JSON are replaced by a note too: they are never stored as given.
func RedactArguments(raw []byte, maxBytes int) string {
	if maxBytes <= 0 || maxBytes > MaxArguments {
		maxBytes = MaxArguments
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return `"[arguments are not valid JSON]"`
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return `"[arguments could not be encoded]"`
	}
	if len(out) > maxBytes {
		return truncatedArguments(len(out))
	}
	return string(out)
}

func truncatedArguments(n int) string {
	return fmt.Sprintf(`"[arguments of %d bytes not stored: above the size bound]"`, n)
}

func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if secretKey.MatchString(k) && !isEmpty(val) {
				t[k] = Redacted
				continue
			}
			t[k] = redactValue(val)
		}
		return t
	case []any:
		for i := range t {
			t[i] = redactValue(t[i])
		}
		return t
	case string:
		if secretValue.MatchString(t) {
			return Redacted
		}
		return t
	}
	return v
}

// isEmpty: null, false and "" carry no secret (keeping them tells the reader what was sent).
func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case string:
		return strings.TrimSpace(t) == ""
	}
	return false
}
