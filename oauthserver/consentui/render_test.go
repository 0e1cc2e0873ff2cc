package consentui

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// everyPage is one zero value of each page type this package declares.
var everyPage = []any{
	SignInPage{}, SignUpPage{}, ContinuePage{}, InvitationPage{}, AccountPage{},
	ChooseServerPage{}, TrustLevelPage{}, ErrorPage{},
	EmailCodeRequestPage{}, EmailCodeEntryPage{}, NewPasswordPage{},
}

// TestEveryPageTypeRenders renders each page type, as a value and as a pointer, so that a page
// type added to the package without a template or a spec fails here rather than at a person's
// browser; the list is checked against the package's declarations.
func TestEveryPageTypeRenders(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok && strings.HasSuffix(ts.Name.Name, "Page") {
				if _, isStruct := ts.Type.(*ast.StructType); isStruct {
					declared = append(declared, ts.Name.Name)
				}
			}
			return true
		})
	}
	var listed []string
	for _, p := range everyPage {
		listed = append(listed, reflect.TypeOf(p).Name())
	}
	sort.Strings(declared)
	sort.Strings(listed)
	if strings.Join(declared, " ") != strings.Join(listed, " ") {
		t.Fatalf("page types declared %v, tested %v: add the new one to everyPage", declared, listed)
	}
	for _, p := range everyPage {
		ptr := reflect.New(reflect.TypeOf(p))
		ptr.Elem().Set(reflect.ValueOf(p))
		for _, page := range []any{p, ptr.Interface()} {
			rp := renderAnyPage(t, http.StatusOK, page)
			if rp.status != http.StatusOK || len(rp.tag("h1")) == 0 {
				t.Errorf("%T: status %d, %d headings", page, rp.status, len(rp.tag("h1")))
			}
		}
	}
	if err := Render(nil, 0, (*ErrorPage)(nil)); err == nil {
		t.Error("a nil page rendered")
	}
	if err := Render(nil, 0, struct{}{}); err == nil {
		t.Error("an unknown page type rendered")
	}
}

// TestNewPasswordFields: the pages that set a password show the same two fields, each error
// beside its field and in the summary, linked to the field.
func TestNewPasswordFields(t *testing.T) {
	const short, differ = "Use at least 12 characters.", "The passwords do not match."
	for _, page := range []any{
		InvitationPage{Email: "a@example.com", PasswordError: short, ConfirmError: differ},
		NewPasswordPage{Email: "a@example.com", PasswordError: short, ConfirmError: differ},
		SignUpPage{Email: "a@example.com", PasswordError: short, ConfirmError: differ},
	} {
		rp := renderAnyPage(t, http.StatusUnprocessableEntity, page)
		for _, field := range []struct{ id, message string }{{"password", short}, {"password_confirm", differ}} {
			inputs := rp.all(func(n *html.Node) bool { v, _ := attr(n, "id"); return n.Data == "input" && v == field.id })
			if len(inputs) != 1 {
				t.Fatalf("%T: %d inputs #%s", page, len(inputs), field.id)
			}
			if v, _ := attr(inputs[0], "autocomplete"); v != "new-password" {
				t.Errorf("%T: #%s autocomplete %q", page, field.id, v)
			}
			if v, _ := attr(inputs[0], "aria-invalid"); v != "true" {
				t.Errorf("%T: #%s not marked invalid", page, field.id)
			}
			if !strings.Contains(rp.body, `<a href="#`+field.id+`">`+field.message+`</a>`) {
				t.Errorf("%T: the summary does not link %q to #%s", page, field.message, field.id)
			}
			if !strings.Contains(rp.body, `id="`+field.id+`-error">`+field.message) {
				t.Errorf("%T: %q is not shown beside #%s", page, field.message, field.id)
			}
		}
	}
}

// renderAnyPage renders a page of any kind: the pages outside the OAuth flow (invitation,
// account, password setting) carry no state reference, which render's common checks require.
func renderAnyPage(t *testing.T, status int, page any) rendered {
	t.Helper()
	w := httptest.NewRecorder()
	if err := Render(w, status, page); err != nil {
		t.Fatalf("Render %T: %v", page, err)
	}
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("parsing the page: %v", err)
	}
	if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("%T: Content-Security-Policy %q", page, got)
	}
	if strings.Contains(w.Body.String(), "ZgotmplZ") {
		t.Errorf("%T: a template value was rejected by html/template (ZgotmplZ)", page)
	}
	return rendered{status: w.Code, header: w.Header(), body: w.Body.String(), doc: doc}
}
