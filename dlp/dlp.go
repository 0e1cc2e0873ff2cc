// Package dlp finds secrets and personal data in text and in JSON, and redacts them: the
// detection behind the proxy's result filter. Detectors are RE2 regular expressions (linear
// time in their input), some with a check of their own on what they matched (Luhn for card
// numbers, mod-97 for IBANs, a digit count for phone numbers), plus a host's custom patterns.
//
// A Scanner is compiled once from Settings and is safe for concurrent use. Redact replaces every
// finding in a string by "[redacted:<kind>]"; RedactJSON does it inside the string values (and
// the numbers and keys) of one JSON value, so that the result stays valid JSON. Findings count
// what was found by kind and never hold a value.
package dlp

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Mode is what a host (or one of its servers) does with a tool result that holds a finding.
type Mode string

// The modes. The zero value of a host's setting is ModeOff; a server's "" follows its host.
const (
	// ModeOff: results pass unchanged.
	ModeOff Mode = "off"
	// ModeRedact: every finding is replaced by "[redacted:<kind>]".
	ModeRedact Mode = "redact"
	// ModeBlock: a result with a finding is replaced by a denial (reason result_blocked).
	ModeBlock Mode = "block"
)

// ValidMode reports whether m is one of the modes.
func ValidMode(m Mode) bool { return m == ModeOff || m == ModeRedact || m == ModeBlock }

// Kind names what a detector finds: a built-in kind below, or a custom pattern's name.
type Kind string

// The built-in kinds.
const (
	AWSAccessKeyID     Kind = "aws_access_key_id"
	AWSSecretAccessKey Kind = "aws_secret_access_key"
	PrivateKey         Kind = "private_key"
	BearerToken        Kind = "bearer_token"
	JWT                Kind = "jwt"
	ConnectionString   Kind = "connection_string"
	GitHubToken        Kind = "github_token"
	SlackToken         Kind = "slack_token"
	Email              Kind = "email"
	Phone              Kind = "phone"
	CardNumber         Kind = "card_number"
	IBAN               Kind = "iban"
)

// Kinds are the built-in kinds, secrets first, in the order overlapping findings are
// attributed (the first detector that matched a span names it).
func Kinds() []Kind {
	out := make([]Kind, len(builtins))
	for i, d := range builtins {
		out[i] = d.kind
	}
	return slices.Compact(out)
}

// Bounds of the custom patterns.
const (
	MaxPatterns      = 32
	MaxPatternLength = 1024
)

// Pattern is a custom detector: an RE2 regular expression (Go syntax), whose matches are
// redacted as "[redacted:<name>]".
type Pattern struct {
	Name   string `json:"name"`
	Regexp string `json:"regexp"`
}

// Settings are a host's detection settings.
type Settings struct {
	// Mode is the host's mode ("" is ModeOff); a server may set its own.
	Mode Mode `json:"mode,omitempty"`
	// Kinds are the built-in detectors on; empty: all of them.
	Kinds []Kind `json:"kinds,omitempty"`
	// Patterns are the host's custom detectors, on in addition to Kinds.
	Patterns []Pattern `json:"patterns,omitempty"`
}

var patternNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ErrInvalid: settings that cannot be compiled (an unknown mode or kind, a bad pattern).
var ErrInvalid = errors.New("invalid detection settings")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Normalize checks s and returns it in its stored form: Kinds sorted without duplicates, empty
// lists nil. Mode "" is ModeOff.
func (s Settings) Normalize() (Settings, error) {
	if s.Mode != "" && !ValidMode(s.Mode) {
		return Settings{}, invalid("mode %q: want off, redact or block", s.Mode)
	}
	known := Kinds()
	for _, k := range s.Kinds {
		if !slices.Contains(known, k) {
			return Settings{}, invalid("kind %q: want one of %s", k, kindList(known))
		}
	}
	kinds := slices.Clone(s.Kinds)
	slices.Sort(kinds)
	s.Kinds = slices.Compact(kinds)
	if len(s.Kinds) == 0 {
		s.Kinds = nil
	}
	if len(s.Patterns) > MaxPatterns {
		return Settings{}, invalid("%d patterns: want at most %d", len(s.Patterns), MaxPatterns)
	}
	seen := map[string]bool{}
	for _, p := range s.Patterns {
		if _, err := compilePattern(p); err != nil {
			return Settings{}, err
		}
		if seen[p.Name] {
			return Settings{}, invalid("pattern %q: named twice", p.Name)
		}
		seen[p.Name] = true
	}
	if len(s.Patterns) == 0 {
		s.Patterns = nil
	}
	return s, nil
}

func kindList(kinds []Kind) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func compilePattern(p Pattern) (*regexp.Regexp, error) {
	if !patternNameRE.MatchString(p.Name) {
		return nil, invalid("pattern name %q: want 1-32 of [a-z0-9_], starting with a letter", p.Name)
	}
	if slices.Contains(Kinds(), Kind(p.Name)) {
		return nil, invalid("pattern name %q: the name of a built-in kind", p.Name)
	}
	if p.Regexp == "" || len(p.Regexp) > MaxPatternLength {
		return nil, invalid("pattern %q: want a regular expression of 1-%d bytes", p.Name, MaxPatternLength)
	}
	re, err := regexp.Compile(p.Regexp)
	if err != nil {
		// The parser's message quotes the expression, which is the operator's own.
		return nil, invalid("pattern %q: %v", p.Name, err)
	}
	if re.MatchString("") {
		return nil, invalid("pattern %q matches the empty string", p.Name)
	}
	return re, nil
}

// Scanner finds the kinds of its settings. It is safe for concurrent use.
type Scanner struct {
	detectors []detector
}

// Compile builds the scanner of s (Normalize is applied first).
func Compile(s Settings) (*Scanner, error) {
	s, err := s.Normalize()
	if err != nil {
		return nil, err
	}
	sc := &Scanner{}
	for _, d := range builtins {
		if len(s.Kinds) == 0 || slices.Contains(s.Kinds, d.kind) {
			sc.detectors = append(sc.detectors, d)
		}
	}
	for _, p := range s.Patterns {
		re, err := compilePattern(p)
		if err != nil {
			return nil, err
		}
		sc.detectors = append(sc.detectors, detector{kind: Kind(p.Name), re: re})
	}
	return sc, nil
}

// Findings count what was found, by kind. They never hold a found value.
type Findings map[Kind]int

// Add adds other's counts to f.
func (f Findings) Add(other Findings) {
	for k, n := range other {
		f[k] += n
	}
}

// Total is the number of findings.
func (f Findings) Total() int {
	n := 0
	for _, c := range f {
		n += c
	}
	return n
}

// Kinds are the kinds found, sorted.
func (f Findings) Kinds() []Kind {
	out := make([]Kind, 0, len(f))
	for k := range f {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// String is "kind=count, …" sorted by kind: what an audit entry records.
func (f Findings) String() string {
	parts := make([]string, 0, len(f))
	for _, k := range f.Kinds() {
		parts = append(parts, fmt.Sprintf("%s=%d", k, f[k]))
	}
	return strings.Join(parts, ", ")
}

// span is one finding in a text: [start, end) redacted as kind.
type span struct {
	start, end int
	kind       Kind
	order      int // the detector's position: the first names a span several found
}

// find lists the findings in text, without overlaps (overlapping findings are merged into the
// first one's span, extended to cover both), in order.
func (s *Scanner) find(text string) []span {
	var spans []span
	for i := range s.detectors {
		spans = s.detectors[i].find(text, i, spans)
	}
	if len(spans) < 2 {
		return spans
	}
	sort.Slice(spans, func(a, b int) bool {
		x, y := spans[a], spans[b]
		if x.start != y.start {
			return x.start < y.start
		}
		if x.end != y.end {
			return x.end > y.end
		}
		return x.order < y.order
	})
	out := spans[:1]
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		if sp.start < last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// Placeholder is what replaces a finding of kind k.
func Placeholder(k Kind) string { return "[redacted:" + string(k) + "]" }

// Redact replaces every finding in text by its placeholder. found is nil when there was none
// (and out is text).
func (s *Scanner) Redact(text string) (out string, found Findings) {
	spans := s.find(text)
	if len(spans) == 0 {
		return text, nil
	}
	found = Findings{}
	var b strings.Builder
	b.Grow(len(text))
	prev := 0
	for _, sp := range spans {
		b.WriteString(text[prev:sp.start])
		b.WriteString(Placeholder(sp.kind))
		found[sp.kind]++
		prev = sp.end
	}
	b.WriteString(text[prev:])
	return b.String(), found
}
