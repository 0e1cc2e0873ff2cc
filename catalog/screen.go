package catalog

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/trustgate/trustgate/store"
)

// Tool-definition screening. A tool's definition (its name, title, description, input and
// output schemas and annotations) goes into the model's context as it is, so a server can
// address the model through it: "ignore previous instructions", "do not tell the user",
// instructions hidden in invisible Unicode (tag characters, zero-width and bidi controls) or
// in a long base64 blob. Screen looks for those in every string of the definition (JSON
// decoded first, so that an escape cannot hide them, and with invisible characters removed
// before phrases are matched). A tool with findings is flagged for an administrator's review
// when it is imported or first seen, or when its definition changes: it stays disabled until
// approved, whatever the host's auto-enable setting.

// maxScreenFindings bounds the findings Screen reports (the flag reason stays short).
const maxScreenFindings = 5

// minBlobLen is the shortest run of base64 characters reported as a blob.
const minBlobLen = 100

// hiddenInstructions are phrases that address the model rather than describe the tool. They are
// matched in lower case with whitespace collapsed and invisible characters removed.
var hiddenInstructions = regexp.MustCompile(strings.Join([]string{
	`\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding|other|system|original)\s+(?:instructions|prompts?|directions|rules|messages|guidelines)`,
	`\bforget\s+(?:all\s+|everything\s+)?(?:you\s+were\s+told|your\s+instructions)`,
	`\b(?:do\s+not|don't|never)\s+(?:tell|inform|alert|notify|mention\s+(?:this\s+|it\s+|that\s+)?to|reveal\s+(?:this\s+|it\s+|that\s+)?to|show\s+(?:this\s+|it\s+)?to)\s+the\s+user`,
	`\b(?:do\s+not|don't|never)\s+(?:mention|reveal|disclose)\s+(?:that|this)\b[^.]{0,80}\b(?:user|human)`,
	`\bwithout\s+(?:telling|informing|notifying|alerting|asking)\s+the\s+user`,
	`\b(?:hide|conceal)\s+(?:this|it|that)\s+from\s+the\s+user`,
	`\bthe\s+user\s+(?:must|should)\s+(?:not|never)\s+(?:know|see|be\s+told|find\s+out)`,
	`<\s*/?\s*(?:important|system|instructions?|secret)\s*>`,
	`\b(?:reveal|print|output|repeat|leak)\s+(?:your\s+|the\s+)?system\s+prompt`,
	`(?:~|\$home|%userprofile%)[/\\]\.(?:ssh|aws|gnupg|cursor|kube|docker|config/gcloud)\b`,
	`\bid_(?:rsa|ed25519|ecdsa)\b`,
	`\bmcp\.json\b`,
}, "|"))

var blobRE = regexp.MustCompile(fmt.Sprintf(`[A-Za-z0-9+/_-]{%d,}={0,2}`, minBlobLen))

// invisible names an invisible or direction-changing code point, "" for any other.
func invisible(r rune) string {
	switch {
	case r >= 0xE0000 && r <= 0xE007F:
		return "tag character"
	case r >= 0xE0100 && r <= 0xE01EF:
		return "variation selector"
	case r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0xFEFF || r == 0x180E || r == 0x00AD ||
		r >= 0x2061 && r <= 0x2064:
		return "zero-width character"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return "bidi control"
	}
	return ""
}

// Screen lists what in t's definition looks like instructions hidden from its reader (nil
// when nothing does). Each finding names what was found and where, never more than a short
// quote of a matched phrase.
func Screen(t store.Tool) []string {
	var s screener
	s.text("name", t.Name)
	s.text("title", t.Title)
	s.text("description", t.Description)
	s.json("input schema", t.InputSchema)
	s.json("output schema", t.OutputSchema)
	s.json("annotations", t.Annotations)
	return s.out()
}

type screener struct {
	findings []string
	seen     map[string]bool
}

func (s *screener) add(f string) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if !s.seen[f] {
		s.seen[f] = true
		s.findings = append(s.findings, f)
	}
}

func (s *screener) out() []string {
	if len(s.findings) > maxScreenFindings {
		more := len(s.findings) - maxScreenFindings
		return append(s.findings[:maxScreenFindings:maxScreenFindings], fmt.Sprintf("and %d more", more))
	}
	return s.findings
}

// json screens every key and string value of a JSON text (one that does not decode is screened
// as text).
func (s *screener) json(where, text string) {
	if text == "" {
		return
	}
	var v any
	if json.Unmarshal([]byte(text), &v) != nil {
		s.text(where, text)
		return
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			s.text(where, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				s.text(where, k)
				walk(v[k])
			}
		}
	}
	walk(v)
}

// text screens one string.
func (s *screener) text(where, text string) {
	if text == "" {
		return
	}
	counts := map[string]int{}
	var visible strings.Builder
	for _, r := range text {
		if kind := invisible(r); kind != "" {
			counts[kind]++
			continue
		}
		visible.WriteRune(r)
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		s.add(fmt.Sprintf("invisible Unicode in the %s (%d %s)", where, counts[k], plural(k, counts[k])))
	}
	norm := strings.Join(strings.Fields(strings.ToLower(visible.String())), " ")
	for _, m := range hiddenInstructions.FindAllString(norm, 3) {
		s.add(fmt.Sprintf("hidden instruction in the %s: %q", where, shorten(m, 60)))
	}
	for _, m := range blobRE.FindAllString(visible.String(), -1) {
		if isBlob(m) {
			s.add(fmt.Sprintf("base64-like blob of %d characters in the %s", len(m), where))
		}
	}
}

// isBlob: a run of base64 characters that mixes upper case, lower case and digits (an
// identifier or a word in snake_case does not).
func isBlob(m string) bool {
	var upper, lower, digit bool
	for i := 0; i < len(m); i++ {
		c := m[i]
		upper = upper || c >= 'A' && c <= 'Z'
		lower = lower || c >= 'a' && c <= 'z'
		digit = digit || c >= '0' && c <= '9'
	}
	return upper && lower && digit
}

func plural(kind string, n int) string {
	if n == 1 {
		return kind
	}
	return kind + "s"
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// screenReason is the flag reason of a tool with findings.
func screenReason(findings []string) string {
	return "its definition may carry instructions hidden from its reader (" + strings.Join(findings, "; ") + "); review it before enabling it"
}

// screened flags t for review when its definition has findings: disabled, flagged, not
// approved. reason is appended to an existing flag reason.
func screened(t store.Tool) store.Tool {
	findings := Screen(t)
	if len(findings) == 0 {
		return t
	}
	t.Enabled, t.Flagged, t.ApprovedHash = false, true, ""
	t.FlagReason = screenReason(findings)
	return t
}
