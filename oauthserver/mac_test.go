package oauthserver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMACPurposesArePrefixFree: no purpose's label is a prefix of another's, so no payload can
// make a value signed for one purpose (a browser session, a password ticket, an external
// sign-in's state) verify as another's.
func TestMACPurposesArePrefixFree(t *testing.T) {
	seen := map[macPurpose]bool{}
	for _, a := range macPurposes {
		if seen[a] {
			t.Errorf("purpose %q is listed twice", a)
		}
		seen[a] = true
		if !strings.HasSuffix(string(a), "|") || strings.Count(string(a), "|") != 1 {
			t.Errorf("purpose %q: want one label ending in '|'", a)
		}
		for _, b := range macPurposes {
			if a != b && strings.HasPrefix(string(b), string(a)) {
				t.Errorf("purpose %q is a prefix of %q", a, b)
			}
		}
	}
	// Every purpose declared in this package's source is listed.
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "macPurpose" {
				return true
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Errorf("%s: a macPurpose that is not a literal", fset.Position(v.Pos()))
					continue
				}
				declared++
				if label, err := strconv.Unquote(lit.Value); err != nil || !seen[macPurpose(label)] {
					t.Errorf("%s: purpose %s is not in macPurposes", fset.Position(lit.Pos()), lit.Value)
				}
			}
			return true
		})
	}
	if declared != len(macPurposes) {
		t.Errorf("%d purposes declared, %d listed", declared, len(macPurposes))
	}
}
