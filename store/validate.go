package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/trustgate/trustgate/schema"
)

// Limits of the input the store accepts.
const (
	maxEmailLen       = 254
	maxToolNameRunes  = 128
	maxInputSchemaLen = 64 << 10
	maxIDLen          = 64
	maxTextLen        = 64 << 10 // names, descriptions, URLs, client ids
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// validHostKey: a DNS label, 1-63 of [a-z0-9-], not starting or ending with '-'.
func validHostKey(key string) error {
	if len(key) < 1 || len(key) > 63 {
		return invalid("host key %q: want 1-63 characters", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("host key %q: want a DNS label of [a-z0-9-]", key)
		}
	}
	if key[0] == '-' || key[len(key)-1] == '-' {
		return invalid("host key %q: must not start or end with '-'", key)
	}
	return nil
}

// validServerKey: a slug, [a-z0-9][a-z0-9_-]{0,62}.
func validServerKey(key string) error {
	if len(key) < 1 || len(key) > 63 {
		return invalid("server key %q: want 1-63 characters", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return invalid("server key %q: want a slug of [a-z0-9_-] starting with a letter or digit", key)
		}
	}
	return nil
}

// validID: a user or agent id given by the caller, 1-64 of [A-Za-z0-9_-]. Ids become part of
// SpiceDB object ids (host/id), so they must not contain '/' or anything SpiceDB refuses.
func validID(kind, id string) error {
	if len(id) < 1 || len(id) > maxIDLen {
		return invalid("%s id %q: want 1-%d characters", kind, id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("%s id %q: want [A-Za-z0-9_-]", kind, id)
		}
	}
	return nil
}

// normalizeEmail lower-cases an email and checks its shape: one '@' with something on both
// sides, at most 254 characters, no spaces or control characters.
func normalizeEmail(email string) (string, error) {
	if len(email) > maxEmailLen {
		return "", invalid("email of %d characters: want at most %d", len(email), maxEmailLen)
	}
	if !utf8.ValidString(email) {
		return "", invalid("email %q: not valid UTF-8", email)
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return "", invalid("email %q: want exactly one '@' with a name before it and a domain after it", email)
	}
	for _, r := range email {
		if r <= ' ' || r == 0x7f {
			return "", invalid("email %q: must not contain spaces or control characters", email)
		}
	}
	return strings.ToLower(email), nil
}

func validToolName(name string) error {
	if !utf8.ValidString(name) {
		return invalid("tool name %q: not valid UTF-8", name)
	}
	n := utf8.RuneCountInString(name)
	if n < 1 || n > maxToolNameRunes {
		return invalid("tool name %q: want 1-%d characters", name, maxToolNameRunes)
	}
	if strings.ContainsRune(name, 0) {
		return invalid("tool name %q: must not contain NUL", name)
	}
	return nil
}

func validLevel(what string, l schema.Level) error {
	if !l.Valid() {
		return invalid("%s %s: want low, medium or high", what, l)
	}
	return nil
}

func validInputSchema(s string) error {
	if len(s) > maxInputSchemaLen {
		return invalid("input schema of %d bytes: want at most %d", len(s), maxInputSchemaLen)
	}
	if s != "" && !json.Valid([]byte(s)) {
		return invalid("input schema is not valid JSON")
	}
	return nil
}

// validText checks free text stored as is (names, descriptions, URLs): valid UTF-8, no NUL (which
// PostgreSQL refuses and SQLite keeps, so that the engines agree), and a sane length.
func validText(field, s string) error {
	if len(s) > maxTextLen {
		return invalid("%s of %d bytes: want at most %d", field, len(s), maxTextLen)
	}
	if !utf8.ValidString(s) {
		return invalid("%s: not valid UTF-8", field)
	}
	if strings.ContainsRune(s, 0) {
		return invalid("%s: must not contain NUL", field)
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
