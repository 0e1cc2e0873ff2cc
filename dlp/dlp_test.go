package dlp_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/dlp"
)

func allScanner(t testing.TB) *dlp.Scanner {
	t.Helper()
	s, err := dlp.Compile(dlp.Settings{Mode: dlp.ModeRedact})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Planted values of every kind, as they appear in real tool results.
var planted = []struct {
	name, text string
	kind       dlp.Kind
	secret     string // the part that must not survive
}{
	{"aws key id", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", dlp.AWSAccessKeyID, "AKIAIOSFODNN7EXAMPLE"},
	{"aws session key id", `{"AccessKeyId": "ASIAY34FZKBOKMUTVV7A"}`, dlp.AWSAccessKeyID, "ASIAY34FZKBOKMUTVV7A"},
	{"aws secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", dlp.AWSSecretAccessKey, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	{"aws secret json", `"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"`, dlp.AWSSecretAccessKey, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	{"rsa private key", "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq98s\nabcDEF+/==\n-----END RSA PRIVATE KEY-----\nthanks", dlp.PrivateKey, "MIIEpAIBAAKCAQEA7bq98s"},
	{"openssh key cut short", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", dlp.PrivateKey, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"},
	{"pgp key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0aaaa\n-----END PGP PRIVATE KEY BLOCK-----", dlp.PrivateKey, "lQOYBF0aaaa"},
	{"bearer", "curl -H 'Authorization: Bearer 8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c'", dlp.BearerToken, "8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"},
	{"jwt", "token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c done", dlp.JWT, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"},
	{"jwt as bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop", dlp.JWT, "eyJzdWIiOiIxMjM0NTY3ODkwIn0"},
	{"postgres url", "DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/prod?sslmode=require", dlp.ConnectionString, "s3cr3t-pw"},
	{"mongodb url", "mongodb+srv://admin:hunter22@cluster0.example.mongodb.net/test", dlp.ConnectionString, "hunter22"},
	{"ado.net", "Server=tcp:db.example.com,1433;Database=prod;User ID=sa;Password=Tr0ub4dor&3;Encrypt=true", dlp.ConnectionString, "Tr0ub4dor&3"},
	{"github pat", "GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a", dlp.GitHubToken, "ghp_16C7e42F292c6912E7710c838347Ae178B4a"},
	{"github fine-grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345", dlp.GitHubToken, "github_pat_11ABCDEFG0123456789"},
	{"slack bot token", "SLACK_BOT_TOKEN: xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", dlp.SlackToken, "xoxb-123456789012"},
	{"slack webhook", "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now", dlp.SlackToken, "T00000000/B00000000"},
	{"email", "Contact: jane.doe+billing@example.co.uk.", dlp.Email, "jane.doe+billing@example.co.uk"},
	{"visa", "card 4111 1111 1111 1111 exp 12/27", dlp.CardNumber, "4111 1111 1111 1111"},
	{"mastercard dashes", "5500-0000-0000-0004", dlp.CardNumber, "5500-0000-0000-0004"},
	{"amex", "amex 378282246310005.", dlp.CardNumber, "378282246310005"},
	{"iban spaced", "IBAN: DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", dlp.IBAN, "3704 0044 0532"},
	{"iban compact", "GB82WEST12345698765432", dlp.IBAN, "GB82WEST12345698765432"},
	{"phone e164", "call +44 20 7946 0958 today", dlp.Phone, "7946 0958"},
	{"phone nanp", "Phone: (415) 555-0132", dlp.Phone, "555-0132"},
	{"phone nanp dots", "cell 415.555.0132", dlp.Phone, "415.555.0132"},
}

func TestRedactPlanted(t *testing.T) {
	s := allScanner(t)
	for _, tc := range planted {
		t.Run(tc.name, func(t *testing.T) {
			out, found := s.Redact(tc.text)
			if strings.Contains(out, tc.secret) {
				t.Errorf("%q survived: %q", tc.secret, out)
			}
			if found[tc.kind] == 0 || !strings.Contains(out, dlp.Placeholder(tc.kind)) {
				t.Errorf("found %v in %q, want %s", found, out, tc.kind)
			}
		})
	}
}

// Ordinary tool output that holds none of the kinds: nothing is redacted.
func TestRedactLeavesOrdinaryTextAlone(t *testing.T) {
	s := allScanner(t)
	for _, text := range []string{
		"Issue #4111 created at 2026-12-06T17:27:17Z by alice (id 1234567890123)",
		"Build 4111111111111112 failed", // fails Luhn
		"version 1.2.3, port 8080, pid 45123, 192.168.100.200",
		"ordered 12 items for $1,234.56 on 06/12/2026",
		"Timestamp: 1733505437123, duration 250ms",
		"The AWS SDK reads the key from the environment.",
		"see https://github.com/trustgate/trustgate/issues/14",
		"DE89 is not an IBAN, nor is GB00WEST12345698765432",
		"password reset link sent; the bearer of this note is welcome",
		"uuid 123e4567-e89b-12d3-a456-426614174000 sha 9b74c9897bac770ffc029102a200c5de",
		"ghost_protocol and xoxo-gossip are words",
	} {
		if out, found := s.Redact(text); found != nil {
			t.Errorf("%q: found %v → %q", text, found, out)
		}
	}
}

func TestKindsSelectDetectors(t *testing.T) {
	s, err := dlp.Compile(dlp.Settings{Mode: dlp.ModeRedact, Kinds: []dlp.Kind{dlp.CardNumber}})
	if err != nil {
		t.Fatal(err)
	}
	out, found := s.Redact("AKIAIOSFODNN7EXAMPLE 4111111111111111 jane@example.com")
	if found.String() != "card_number=1" || !strings.Contains(out, "AKIAIOSFODNN7EXAMPLE") || !strings.Contains(out, "jane@example.com") {
		t.Errorf("only card numbers on: %q %v", out, found)
	}
}

func TestCustomPatterns(t *testing.T) {
	s, err := dlp.Compile(dlp.Settings{Mode: dlp.ModeRedact, Kinds: []dlp.Kind{dlp.Email},
		Patterns: []dlp.Pattern{{Name: "employee_id", Regexp: `\bEMP-\d{6}\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	out, found := s.Redact("EMP-123456 and EMP-654321 belong to bob@acme.test")
	if out != "[redacted:employee_id] and [redacted:employee_id] belong to [redacted:email]" || found.String() != "email=1, employee_id=2" {
		t.Errorf("got %q %v", out, found)
	}
}

func TestSettingsAreBounded(t *testing.T) {
	many := make([]dlp.Pattern, dlp.MaxPatterns+1)
	for i := range many {
		many[i] = dlp.Pattern{Name: "p" + strings.Repeat("x", i%10) + string(rune('a'+i%26)), Regexp: "x"}
	}
	for name, s := range map[string]dlp.Settings{
		"unknown mode":    {Mode: "shred"},
		"unknown kind":    {Kinds: []dlp.Kind{"ssn"}},
		"bad regexp":      {Patterns: []dlp.Pattern{{Name: "a", Regexp: "(unclosed"}}},
		"backreference":   {Patterns: []dlp.Pattern{{Name: "a", Regexp: `(a)\1`}}},
		"empty match":     {Patterns: []dlp.Pattern{{Name: "a", Regexp: `x*`}}},
		"long regexp":     {Patterns: []dlp.Pattern{{Name: "a", Regexp: strings.Repeat("x", dlp.MaxPatternLength+1)}}},
		"bad name":        {Patterns: []dlp.Pattern{{Name: "Bad Name", Regexp: "x"}}},
		"built-in name":   {Patterns: []dlp.Pattern{{Name: "email", Regexp: "x"}}},
		"twice":           {Patterns: []dlp.Pattern{{Name: "a", Regexp: "x"}, {Name: "a", Regexp: "y"}}},
		"too many":        {Patterns: many},
		"huge repetition": {Patterns: []dlp.Pattern{{Name: "a", Regexp: `x{1001}`}}},
	} {
		if _, err := dlp.Compile(s); !errors.Is(err, dlp.ErrInvalid) {
			t.Errorf("%s: Compile = %v, want ErrInvalid", name, err)
		}
	}
	n, err := dlp.Settings{Kinds: []dlp.Kind{dlp.Email, dlp.CardNumber, dlp.Email}}.Normalize()
	if err != nil || n.Mode != "" || len(n.Kinds) != 2 || n.Kinds[0] != dlp.CardNumber {
		t.Errorf("Normalize = %+v, %v", n, err)
	}
}

func TestRedactJSON(t *testing.T) {
	s := allScanner(t)
	in := `{"content":[{"type":"text","text":"{\"key\":\"AKIAIOSFODNN7EXAMPLE\",\"card\":\"4111-1111-1111-1111\"}"}],` +
		`"structuredContent":{"owner":"jane@example.com","card":4111111111111111,"count":3,"jane@example.com":1,"bob@example.com":2,"note":"<ok> & fine"},"isError":false}`
	out, found, err := s.RedactJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("not JSON: %s", out)
	}
	for _, leaked := range []string{"AKIAIOSFODNN7EXAMPLE", "4111", "jane@", "bob@"} {
		if strings.Contains(string(out), leaked) {
			t.Errorf("%s leaked: %s", leaked, out)
		}
	}
	if got := found.String(); got != "aws_access_key_id=1, card_number=2, email=3" {
		t.Errorf("found %s", got)
	}
	var v struct {
		Content []struct{ Text string } `json:"content"`
		SC      map[string]any          `json:"structuredContent"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.Content[0].Text != `{"key":"[redacted:aws_access_key_id]","card":"[redacted:card_number]"}` {
		t.Errorf("text = %s", v.Content[0].Text)
	}
	if v.SC["card"] != "[redacted:card_number]" || v.SC["count"] != 3.0 || v.SC["note"] != "<ok> & fine" || len(v.SC) != 6 {
		t.Errorf("structuredContent = %v", v.SC)
	}
	if out, found, err := s.RedactJSON([]byte(`{"a":"nothing here","n":[1,2.5e3,-7]}`)); out != nil || found != nil || err != nil {
		t.Errorf("clean JSON: %s %v %v", out, found, err)
	}
}

// Escapes cannot hide a value: the string is decoded before it is scanned.
func TestRedactJSONReadsEscapes(t *testing.T) {
	out, found, err := allScanner(t).RedactJSON([]byte(`["\u0041KIAIOSFODNN7EXAMPLE","jane\u0040example.com"]`))
	if err != nil || found.Total() != 2 || strings.Contains(string(out), "EXAMPLE") || strings.Contains(string(out), "jane") {
		t.Errorf("got %s %v %v", out, found, err)
	}
}

func TestLuhnAndIBAN(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{{"4111111111111111", true}, {"4111111111111112", false}, {"79927398713", true}, {"", false}} {
		if dlp.Luhn(c.s) != c.want {
			t.Errorf("Luhn(%s) != %v", c.s, c.want)
		}
	}
	for _, c := range []struct {
		s    string
		want bool
	}{{"DE89370400440532013000", true}, {"GB82WEST12345698765432", true}, {"GB83WEST12345698765432", false}, {"FR1420041010050500013M02606", true}} {
		if dlp.ValidIBAN(c.s) != c.want {
			t.Errorf("ValidIBAN(%s) != %v", c.s, c.want)
		}
	}
}
