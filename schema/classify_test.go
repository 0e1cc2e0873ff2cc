package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/quick"
)

func TestClassifyNameKeywords(t *testing.T) {
	for _, k := range HighKeywords {
		for _, name := range []string{k, "issue_" + k, strings.ToUpper(k) + "Repo"} {
			if got := ClassifyName(name); got != High {
				t.Errorf("ClassifyName(%q) = %s, want high", name, got)
			}
		}
	}
	for _, k := range MediumKeywords {
		for _, name := range []string{k, "issue_" + k, strings.ToUpper(k) + "Repo"} {
			if got := ClassifyName(name); got != Medium {
				t.Errorf("ClassifyName(%q) = %s, want medium", name, got)
			}
		}
	}
	for _, name := range []string{"get_issue", "list_projects", "search", "read_file", "whoami"} {
		if got := ClassifyName(name); got != Low {
			t.Errorf("ClassifyName(%q) = %s, want low", name, got)
		}
	}
	// A name with keywords of both lists is high: the destructive rule wins.
	if got := ClassifyName("create_or_delete"); got != High {
		t.Errorf("ClassifyName(create_or_delete) = %s, want high", got)
	}
}

func TestClassifyKeywordListsAreExact(t *testing.T) {
	wantHigh := "delete remove destroy drop purge erase truncate terminate kill revoke"
	wantMedium := "create write update set modify edit put post insert add send execute run invoke submit push publish deploy apply patch"
	if got := strings.Join(HighKeywords, " "); got != wantHigh {
		t.Errorf("high keywords = %q, want %q", got, wantHigh)
	}
	if got := strings.Join(MediumKeywords, " "); got != wantMedium {
		t.Errorf("medium keywords = %q, want %q", got, wantMedium)
	}
}

func TestClassifyAnnotationsOnlyRaise(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name  string
		hints Hints
		want  Level
	}{
		{"get_issue", Hints{}, Low},
		{"get_issue", Hints{ReadOnly: &yes}, Low},
		{"get_issue", Hints{ReadOnly: &no}, Medium},
		{"get_issue", Hints{Destructive: &yes}, High},
		{"get_issue", Hints{ReadOnly: &no, Destructive: &no}, Medium},
		// A server claiming a destructive name is read-only does not lower it.
		{"delete_issue", Hints{ReadOnly: &yes, Destructive: &no}, High},
		{"create_issue", Hints{ReadOnly: &yes}, Medium},
		{"create_issue", Hints{Destructive: &yes}, High},
	}
	for _, c := range cases {
		if got := Classify(c.name, c.hints); got != c.want {
			t.Errorf("Classify(%q, %+v) = %s, want %s", c.name, c.hints, got, c.want)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, l := range Levels {
		got, err := ParseLevel(" " + strings.ToUpper(l.String()) + " ")
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := ParseLevel("admin"); err == nil || !strings.Contains(err.Error(), "low, medium or high") {
		t.Errorf("ParseLevel(admin) error = %v, want one listing the levels", err)
	}
	if _, err := Level(0).MarshalText(); err == nil {
		t.Error("the zero level must not marshal")
	}
}

var spiceDBID = regexp.MustCompile(`^[a-zA-Z0-9/_|\-=+]+$`)

func TestEncodeIDRoundTripsAndIsValid(t *testing.T) {
	for _, s := range []string{"create_issue", "foo.bar", "a/b", "=3D", "ünïcode tool", "x|y+z"} {
		enc := EncodeID(s)
		if !spiceDBID.MatchString(enc) || strings.Contains(enc, "/") {
			t.Errorf("EncodeID(%q) = %q: not a valid single id segment", s, enc)
		}
		dec, err := DecodeID(enc)
		if err != nil || dec != s {
			t.Errorf("DecodeID(EncodeID(%q)) = %q, %v", s, dec, err)
		}
	}
	roundTrip := func(s string) bool {
		if s == "" {
			return true
		}
		enc := EncodeID(s)
		dec, err := DecodeID(enc)
		return err == nil && dec == s && !strings.Contains(enc, "/") && spiceDBID.MatchString(enc)
	}
	if err := quick.Check(roundTrip, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
	if _, err := DecodeID("abc=4"); err == nil {
		t.Error("a truncated escape must not decode")
	}
}

func TestRelationshipStringParses(t *testing.T) {
	rels := []Relationship{
		Ceiling("acme", "linear", "a_1", Medium),
		Grant("acme", "linear", "a_1", High),
		ToolLevel("acme", "linear", "create.issue", Medium),
		HostMember("acme", "u_1"),
	}
	rels = append(rels, AgentTuples("acme", "a_1", "u_1")...)
	for _, r := range rels {
		got, err := ParseRelationship(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRelationship(%q) = %+v, %v", r.String(), got, err)
		}
	}
	if want := "mcp_server:acme/linear#ceiling_medium@agent:acme/a_1"; rels[0].String() != want {
		t.Errorf("ceiling tuple = %q, want %q", rels[0].String(), want)
	}
	for _, bad := range []string{"", "tool:x", "tool:x#rel", "x#rel@y:z", "tool:#r@a:b"} {
		if _, err := ParseRelationship(bad); err == nil {
			t.Errorf("ParseRelationship(%q) succeeded", bad)
		}
	}
}

// toolIDExample is a tool object id written as an example in the docs: `acme/linear/create_issue`
// or `tool:acme/linear/create_issue`.
var toolIDExample = regexp.MustCompile("`(?:tool:)?[a-z0-9-]+/[a-z0-9_-]+/([^`/ ]+)`")

// TestDocumentedToolIDsAreEncodedAsTrustgateEncodesThem: every tool id the schema's comments
// and the README show is what EncodeID really produces (the schema once showed
// `create=5Fissue`, an id trustgate never writes).
func TestDocumentedToolIDsAreEncodedAsTrustgateEncodesThem(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for name, text := range map[string]string{"schema.zed": Text, "README.md": string(readme)} {
		for _, m := range toolIDExample.FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(filepath.Join("..", strings.Trim(m[0], "`"))); err == nil {
				continue // a file of the repository (`tests/ts/package.json`), not a tool id
			}
			found++
			dec, err := DecodeID(m[1])
			if err != nil {
				t.Errorf("%s shows %s, which does not decode: %v", name, m[0], err)
				continue
			}
			if enc := EncodeID(dec); enc != m[1] {
				t.Errorf("%s shows %s, but the tool %q is encoded as %q", name, m[0], dec, enc)
			}
		}
	}
	if found == 0 {
		t.Fatal("no documented tool id found: the pattern no longer matches the docs")
	}
}
