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

// An image without alternative text and an input without a label: critical violations.
const inaccessiblePage = `<!DOCTYPE html><html lang="en"><head><title>Broken</title></head>
<body><main><h1>Broken</h1><img src="/pixel.png"><input name="unlabelled"></main></body></html>`

// TestBrowserFormsAndAxe drives Chromium through a form post and reads the answer, and shows
// that axe-core finds a page's critical violations and none on an accessible page.
func TestBrowserFormsAndAxe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, accessiblePage)
		case "/hello":
			fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>Hello</title></head><body><main><h1 id="greeting">Hello, %s</h1></main></body></html>`,
				strings.ReplaceAll(r.PostFormValue("name"), "<", "&lt;"))
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

	b.Navigate(srv.URL + "/broken")
	violations, err := b.Axe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, v := range violations {
		found[v.ID] = v.Impact
	}
	if found["image-alt"] != "critical" || found["label"] != "critical" {
		t.Fatalf("axe-core on the broken page found %v, want image-alt and label (critical)", found)
	}
}
