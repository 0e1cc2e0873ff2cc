package route

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAnswersAsServeMux: a router built with this package answers what no handler decides as
// net/http's ServeMux does: redirects to the clean path, HEAD with GET, 405 with Allow, 404, a
// slash added to a tree's root, escaped slashes kept.
func TestAnswersAsServeMux(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok " + r.PathValue("id"))) }

	std := http.NewServeMux()
	std.HandleFunc("GET /items/{id}", ok)
	std.HandleFunc("POST /items/{id}", ok)
	std.HandleFunc("/any", ok)
	std.HandleFunc("/tree/", ok)

	r := NewRouter()
	r.Methods(Methods(http.MethodGet)...).Path("/items/{id}").Handler(PathValues(http.HandlerFunc(ok)))
	r.Methods(Methods(http.MethodPost)...).Path("/items/{id}").Handler(PathValues(http.HandlerFunc(ok)))
	r.Path("/any").HandlerFunc(ok)
	r.Path("/tree").Handler(AddSlash())
	r.PathPrefix("/tree/").HandlerFunc(ok)
	CatchAll(r)
	ours := CleanPaths(r)

	for _, c := range []struct{ method, target string }{
		{"GET", "/items/1"},
		{"HEAD", "/items/1"},
		{"POST", "/items/1"},
		{"PUT", "/items/1"},
		{"DELETE", "/any"},
		{"GET", "/items/a%2Fb"},
		{"GET", "/items/a%2F..%2Fb"},
		{"GET", "/items/caf%C3%A9"},
		{"GET", "/items/1/"},
		{"GET", "/items/"},
		{"GET", "//items/1?q=1"},
		{"GET", "/x/../items/1"},
		{"POST", "/./any"},
		{"GET", "/tree"},
		{"GET", "/tree?q=1"},
		{"GET", "/tree/x/y"},
		{"GET", "/nowhere"},
		{"GET", "/"},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		std.ServeHTTP(want, httptest.NewRequest(c.method, c.target, nil))
		ours.ServeHTTP(got, httptest.NewRequest(c.method, c.target, nil))
		name := c.method + " " + c.target
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("%s: %d %q, ServeMux %d %q", name, got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Location", "Allow", "Content-Type"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("%s: %s %q, ServeMux %q", name, h, got.Header().Get(h), want.Header().Get(h))
			}
		}
	}
}

func TestPathValuesExcept(t *testing.T) {
	r := NewRouter()
	var host, id string
	r.Path("/h/{host}/items/{id}").Handler(PathValuesExcept("host")(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		host, id = r.PathValue("host"), r.PathValue("id")
	})))
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/h/acme/items/a%2Fb", nil))
	if host != "" || id != "a/b" {
		t.Errorf("path values host %q id %q, want none and a/b", host, id)
	}
}
