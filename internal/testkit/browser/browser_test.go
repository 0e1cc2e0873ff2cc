package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const accessiblePage = `<!DOCTYPE html><html lang="en"><head><title>Greeting</title></head>
<body><main><h1>Greeting</h1><form method="post" action="/hello">
<label for="name">Name</label><input id="name" name="name">
<button type="submit">Say hello</button></form></main></body></html>`

// Readable in the light scheme; in the dark one the text is nearly the background's colour.
const darkUnreadablePage = `<!DOCTYPE html><html lang="en"><head><title>Schemes</title>
<link rel="stylesheet" href="/schemes.css"></head><body><main><h1>Schemes</h1><p>Some text.</p></main></body></html>`

const schemesCSS = `body { color: #111; background: #fff; }
@media (prefers-color-scheme: dark) { body { color: #333; background: #222; } }`

// An image without alternative text and an input without a label: critical violations.
const inaccessiblePage = `<!DOCTYPE html><html lang="en"><head><title>Broken</title></head>
<body><main><h1>Broken</h1><img src="/pixel.png"><input name="unlabelled"></main></body></html>`

// TestBrowserFormsAndAxe drives Chromium through a form post and reads the answer, and shows
// that axe-core finds a page's critical violations, none on an accessible page, and the
// contrast a page has in the dark color scheme only.
func TestBrowserFormsAndAxe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, accessiblePage)
		case "/hello":
			fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>Hello</title></head><body><main><h1 id="greeting">Hello, %s</h1></main></body></html>`,
				strings.ReplaceAll(r.PostFormValue("name"), "<", "&lt;"))
		case "/schemes":
			fmt.Fprint(w, darkUnreadablePage)
		case "/schemes.css":
			w.Header().Set("Content-Type", "text/css")
			fmt.Fprint(w, schemesCSS)
		case "/broken":
			fmt.Fprint(w, inaccessiblePage)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	b := Start(t)
	if status := b.Navigate(srv.URL + "/"); status != http.StatusOK {
		t.Fatalf("open / = %d", status)
	}
	b.RequireAccessible("form page")
	b.Fill(map[string]string{"name": "Ada"})
	if status := b.ClickAndWait(`button[type=submit]`); status != http.StatusOK {
		t.Fatalf("submit = %d", status)
	}
	if got := b.Text("#greeting"); got != "Hello, Ada" {
		t.Fatalf("after submit the page says %q, want Hello, Ada", got)
	}
	if loc := b.Location(); loc != srv.URL+"/hello" {
		t.Fatalf("location after submit = %s", loc)
	}

	b.Navigate(srv.URL + "/schemes")
	if found := impacts(t, b); len(found) != 0 {
		t.Fatalf("axe-core on the light scheme found %v, want nothing", found)
	}
	b.PreferColorScheme("dark")
	if found := impacts(t, b); found["color-contrast"] != "serious" {
		t.Fatalf("axe-core on the dark scheme found %v, want color-contrast (serious)", found)
	}
	b.PreferColorScheme("")

	// RequireAccessible checks both schemes: on the dark one it fails.
	var rec recorder
	(&Browser{t: &rec, tab: b.tab}).RequireAccessible("schemes page")
	if !rec.failed || !strings.Contains(rec.msg, "dark color scheme") || !strings.Contains(rec.msg, "color-contrast") {
		t.Fatalf("RequireAccessible on a page unreadable in the dark scheme: failed=%v %q", rec.failed, rec.msg)
	}

	b.Navigate(srv.URL + "/broken")
	if found := impacts(t, b); found["image-alt"] != "critical" || found["label"] != "critical" {
		t.Fatalf("axe-core on the broken page found %v, want image-alt and label (critical)", found)
	}
}

// impacts runs axe-core and returns the rules broken, with their impact.
func impacts(t *testing.T, b *Browser) map[string]string {
	t.Helper()
	violations, err := b.Axe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, v := range violations {
		found[v.ID] = v.Impact
	}
	return found
}

// recorder is a testing.TB that records the failures RequireAccessible reports.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Logf(string, ...any)       {}
func (r *recorder) Errorf(f string, a ...any) { r.failed = true; r.msg += fmt.Sprintf(f, a...) }
