package dlp

import (
	"regexp"
	"strings"
)

// detector finds one kind. Its expression is RE2 (linear in the text); hint, when set, is a
// cheap test that the text may hold a match at all (most texts hold none), and check, when
// set, accepts a match: it returns how much of the match (a prefix, in bytes) is the finding,
// 0 for none. group, when not 0, is the submatch that is the finding (the value after a
// label such as "Bearer ").
//
// run, when set, holds every byte the expression can match (it matches ASCII only): the
// expression then runs only on the maximal runs of such bytes of at least minRun bytes (with
// one byte of context on each side, for \b), which few texts have, instead of at every
// position of the text.
type detector struct {
	kind   Kind
	re     *regexp.Regexp
	group  int
	hint   func(text string) bool
	check  func(match string) int
	run    *[256]bool
	minRun int
}

// find appends the findings of d in text to spans.
func (d *detector) find(text string, order int, spans []span) []span {
	if d.hint != nil && !d.hint(text) {
		return spans
	}
	if d.run == nil {
		return d.findIn(text, 0, len(text), order, spans)
	}
	for i := 0; i < len(text); {
		if !d.run[text[i]] {
			i++
			continue
		}
		j := i + 1
		for j < len(text) && d.run[text[j]] {
			j++
		}
		if j-i >= d.minRun {
			spans = d.findIn(text, max(i-1, 0), min(j+1, len(text)), order, spans)
		}
		i = j
	}
	return spans
}

// findIn appends the findings of d in text[from:to] to spans.
func (d *detector) findIn(text string, from, to, order int, spans []span) []span {
	for _, m := range d.re.FindAllStringSubmatchIndex(text[from:to], -1) {
		for k := range m {
			if m[k] >= 0 {
				m[k] += from
			}
		}
		start, end := m[0], m[1]
		if d.group > 0 {
			if m[2*d.group] < 0 {
				continue
			}
			start, end = m[2*d.group], m[2*d.group+1]
		}
		if d.check != nil {
			n := d.check(text[start:end])
			if n == 0 {
				continue
			}
			end = start + n
		}
		if end > start {
			spans = append(spans, span{start: start, end: end, kind: d.kind, order: order})
		}
	}
	return spans
}

func contains(subs ...string) func(string) bool {
	return func(text string) bool {
		for _, s := range subs {
			if strings.Contains(text, s) {
				return true
			}
		}
		return false
	}
}

// containsFold: text holds word in any case (word is lower-case ASCII).
func containsFold(words ...string) func(string) bool {
	return func(text string) bool {
		for _, w := range words {
			for i := 0; i+len(w) <= len(text); i++ {
				if text[i]|0x20 == w[0] && strings.EqualFold(text[i:i+len(w)], w) {
					return true
				}
			}
		}
		return false
	}
}

// builtins are the built-in detectors, secrets first (the first detector names a span that
// several found: a JWT after "Bearer " is a jwt).
var builtins = []detector{
	{kind: PrivateKey, hint: contains("PRIVATE KEY"),
		re: regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:(?s:.)*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,.\-]*)`)},
	{kind: AWSAccessKeyID, run: upperOrDigit, minRun: 20,
		re: regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b`)},
	{kind: AWSSecretAccessKey, hint: containsFold("secret"), group: 1,
		re: regexp.MustCompile(`(?i)(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)`)},
	{kind: GitHubToken, hint: contains("gh", "github_pat_"),
		re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{kind: SlackToken, hint: contains("xox", "xapp-", "hooks.slack.com"),
		re: regexp.MustCompile(`\b(?:xox[abposr]-[A-Za-z0-9-]{10,250}|xapp-\d-[A-Za-z0-9-]{10,250})|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,250}`)},
	{kind: JWT, hint: contains("eyJ"),
		re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)},
	{kind: BearerToken, hint: containsFold("bearer"), group: 1,
		re: regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)`)},
	{kind: ConnectionString, hint: contains("://"),
		re: regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:'"<>]+:[^\s/?#@'"<>]+@[^\s'"<>]+`)},
	{kind: ConnectionString, hint: containsFold("password", "pwd"), group: 1,
		re: regexp.MustCompile(`(?i)(?:^|[;\s"'])(?:password|pwd)\s*=\s*([^;'"\s]+)`)},
	{kind: Email, hint: contains("@"),
		re: regexp.MustCompile(`\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b`)},
	{kind: CardNumber, check: checkCard, run: cardBytes, minRun: 13,
		re: regexp.MustCompile(`\b[2-6](?:[ -]?\d){12,18}\b`)},
	{kind: IBAN, check: checkIBAN, run: ibanBytes, minRun: 15,
		re: regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`)},
	{kind: Phone, check: checkPhone, run: phoneBytes, minRun: 9,
		re: regexp.MustCompile(`\+[1-9][\d \-.()]{6,22}\d|\(\d{3}\) ?\d{3}[ .-]\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b`)},
}

// byteSet is the set of the bytes in ranges ("AZ") and singles (" -").
func byteSet(ranges []string, singles string) *[256]bool {
	var set [256]bool
	for _, r := range ranges {
		for c := int(r[0]); c <= int(r[1]); c++ {
			set[c] = true
		}
	}
	for i := 0; i < len(singles); i++ {
		set[singles[i]] = true
	}
	return &set
}

var (
	upperOrDigit = byteSet([]string{"AZ", "09"}, "")
	cardBytes    = byteSet([]string{"09"}, " -")
	ibanBytes    = byteSet([]string{"AZ", "09"}, " ")
	phoneBytes   = byteSet([]string{"09"}, " -.()+")
)

// digitsOf are the ASCII digits of s.
func digitsOf(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			out = append(out, s[i])
		}
	}
	return out
}

// checkCard: 13 to 19 digits, separated (if at all) by one kind of separator, that pass the
// Luhn check.
func checkCard(m string) int {
	if strings.Contains(m, " ") && strings.Contains(m, "-") {
		return 0
	}
	d := digitsOf(m)
	if len(d) < 13 || len(d) > 19 || !Luhn(string(d)) {
		return 0
	}
	return len(m)
}

// Luhn reports whether the digits pass the Luhn check.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		n := int(c - '0')
		if double {
			if n *= 2; n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// checkIBAN: the longest prefix of the match (ending at a character) of 15 to 34 characters
// that passes the mod-97 check, ignoring spaces.
func checkIBAN(m string) int {
	for end := len(m); end > 0; end-- {
		if m[end-1] == ' ' {
			continue
		}
		compact := strings.ReplaceAll(m[:end], " ", "")
		if len(compact) < 15 {
			return 0
		}
		if len(compact) <= 34 && ValidIBAN(compact) {
			return end
		}
	}
	return 0
}

// ValidIBAN reports whether s (upper-case letters and digits, no spaces) passes the IBAN
// mod-97 check (ISO 13616).
func ValidIBAN(s string) bool {
	if len(s) < 5 {
		return false
	}
	rearranged := s[4:] + s[:4]
	var num strings.Builder
	for i := 0; i < len(rearranged); i++ {
		c := rearranged[i]
		switch {
		case c >= '0' && c <= '9':
			num.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			num.WriteString(itoa2(int(c-'A') + 10))
		default:
			return false
		}
	}
	// Piecewise mod 97 keeps it in machine integers.
	rem := 0
	for _, c := range num.String() {
		rem = (rem*10 + int(c-'0')) % 97
	}
	return rem == 1
}

func itoa2(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }

// checkPhone: 8 to 15 digits (E.164 has at most 15).
func checkPhone(m string) int {
	m = strings.TrimRight(m, " -.(")
	if d := len(digitsOf(m)); d < 8 || d > 15 {
		return 0
	}
	return len(m)
}
