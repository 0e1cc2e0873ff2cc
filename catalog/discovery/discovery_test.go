package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
)

type repoInput struct {
	Repo  string `json:"repo" jsonschema:"the repository, as owner/name"`
	State string `json:"state,omitempty" jsonschema:"open or closed"`
}

type createInput struct {
	Repo  string `json:"repo"`
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
}

type numberInput struct {
	Repo   string `json:"repo"`
	Number int    `json:"number"`
}

func TestDiscoverClassifiesTools(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "issues", Version: "1.2.3"},
		&mcp.ServerOptions{Instructions: "Call list_issues first."})
	addTool[repoInput](srv, &mcp.Tool{Name: "list_issues", Title: "List issues", Description: "List the issues of a repository."})
	addTool[createInput](srv, &mcp.Tool{Name: "create_issue", Description: "Open a new issue."})
	addTool[numberInput](srv, &mcp.Tool{Name: "delete_issue", Description: "Delete an issue for good."})
	// Annotations that raise the level the name gives.
	addTool[numberInput](srv, &mcp.Tool{Name: "get_issue", Description: "Read one issue.",
		Annotations: &mcp.ToolAnnotations{Title: "Get issue", ReadOnlyHint: false}})
	addTool[noInput](srv, &mcp.Tool{Name: "fetch_report", Description: "Fetch a report.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true)}})
	// readOnlyHint true must not lower a destructive name.
	addTool[noInput](srv, &mcp.Tool{Name: "delete_x", Description: "Says it is read-only.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}})
	addTool[noInput](srv, &mcp.Tool{Name: "browse_docs", Description: "Browse the documentation.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}})

	res, err := Discover(context.Background(), startMCP(t, srv, nil), testOptions())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if res.ServerName != "issues" || res.ServerVersion != "1.2.3" || res.Instructions != "Call list_issues first." {
		t.Errorf("server info = %q %q %q", res.ServerName, res.ServerVersion, res.Instructions)
	}
	if res.ProtocolVersion != requestedProtocolVersion {
		t.Errorf("protocol version = %q, want %q", res.ProtocolVersion, requestedProtocolVersion)
	}

	want := []struct {
		name, desc string
		level      schema.Level
		props      []string
	}{
		{"browse_docs", "Browse the documentation.", schema.Low, nil},
		{"create_issue", "Open a new issue.", schema.Medium, []string{"body", "repo", "title"}},
		{"delete_issue", "Delete an issue for good.", schema.High, []string{"number", "repo"}},
		{"delete_x", "Says it is read-only.", schema.High, nil},
		{"fetch_report", "Fetch a report.", schema.High, nil},
		{"get_issue", "Read one issue.", schema.Medium, []string{"number", "repo"}},
		{"list_issues", "List the issues of a repository.", schema.Low, []string{"repo", "state"}},
	}
	if len(res.Tools) != len(want) {
		t.Fatalf("got %d tools, want %d: %+v", len(res.Tools), len(want), res.Tools)
	}
	for i, w := range want {
		got := res.Tools[i]
		if got.Name != w.name || got.Description != w.desc || got.Level != w.level {
			t.Errorf("tool %d = %q %q %v, want %q %q %v", i, got.Name, got.Description, got.Level, w.name, w.desc, w.level)
		}
		var s struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(got.InputSchema, &s); err != nil || s.Type != "object" {
			t.Errorf("%s: input schema %s is not an object schema (%v)", got.Name, got.InputSchema, err)
		}
		props := make([]string, 0, len(s.Properties))
		for p := range s.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		if len(w.props) > 0 && !slices.Equal(props, w.props) {
			t.Errorf("%s: properties %v, want %v", got.Name, props, w.props)
		}
		hash, err := DefinitionHash(got.Name, got.Description, got.InputSchema)
		if err != nil || got.LegacyHash != hash || len(got.LegacyHash) != 64 {
			t.Errorf("%s: legacy hash %q, DefinitionHash gives %q (%v)", got.Name, got.LegacyHash, hash, err)
		}
		if !IsCompleteHash(got.Hash) || len(got.Hash) != len("v2:")+64 {
			t.Errorf("%s: hash %q is not a v2 hash", got.Name, got.Hash)
		}
	}

	byName := map[string]Tool{}
	for _, tool := range res.Tools {
		byName[tool.Name] = tool
	}
	if li := byName["list_issues"]; li.Title != "List issues" || li.Annotations != (Annotations{}) {
		t.Errorf("list_issues: title %q, annotations %+v; want a title and no hints", li.Title, li.Annotations)
	}
	if !strings.Contains(string(byName["list_issues"].InputSchema), "the repository, as owner/name") {
		t.Errorf("list_issues: schema lost the property description: %s", byName["list_issues"].InputSchema)
	}
	gi := byName["get_issue"].Annotations
	if gi.Title != "Get issue" || gi.ReadOnlyHint == nil || *gi.ReadOnlyHint {
		t.Errorf("get_issue annotations = %s", annotationsString(gi))
	}
	bd := byName["browse_docs"].Annotations
	if bd.ReadOnlyHint == nil || !*bd.ReadOnlyHint || bd.IdempotentHint == nil || !*bd.IdempotentHint ||
		bd.OpenWorldHint == nil || *bd.OpenWorldHint || bd.DestructiveHint != nil {
		t.Errorf("browse_docs annotations = %s", annotationsString(bd))
	}
	if fr := byName["fetch_report"].Annotations; fr.DestructiveHint == nil || !*fr.DestructiveHint {
		t.Errorf("fetch_report annotations = %s", annotationsString(fr))
	}
}

func annotationsString(a Annotations) string {
	b, _ := json.Marshal(a)
	return string(b)
}

func TestDiscoverPaginates(t *testing.T) {
	const n, pageSize = 50, 7
	srv := newServer(&mcp.ServerOptions{PageSize: pageSize})
	for i := range n {
		addTool[noInput](srv, &mcp.Tool{Name: fmt.Sprintf("tool_%03d", i), Description: fmt.Sprint("tool ", i)})
	}
	var pages atomic.Int32
	res, err := Discover(context.Background(), startMCP(t, srv, countToolsList(&pages)), testOptions())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if want := int32((n + pageSize - 1) / pageSize); pages.Load() != want {
		t.Errorf("%d tools/list requests, want %d", pages.Load(), want)
	}
	if len(res.Tools) != n {
		t.Fatalf("got %d tools, want %d", len(res.Tools), n)
	}
	for i, tool := range res.Tools {
		if want := fmt.Sprintf("tool_%03d", i); tool.Name != want {
			t.Fatalf("tool %d is %q, want %q (each tool exactly once, sorted)", i, tool.Name, want)
		}
	}
}

func TestDiscoverMaxTools(t *testing.T) {
	srv := newServer(&mcp.ServerOptions{PageSize: 4})
	for i := range 12 {
		addTool[noInput](srv, &mcp.Tool{Name: fmt.Sprintf("tool_%02d", i)})
	}
	o := testOptions()
	o.MaxTools = 10
	_, err := Discover(context.Background(), startMCP(t, srv, nil), o)
	if !errors.Is(err, ErrTooManyTools) || !strings.Contains(err.Error(), "more than 10 tools") {
		t.Fatalf("err = %v, want ErrTooManyTools", err)
	}
}

func TestDiscoverRejectsLongToolName(t *testing.T) {
	srv := newServer(nil)
	long := strings.Repeat("x", MaxToolNameLen+1)
	addTool[noInput](srv, &mcp.Tool{Name: long})
	_, err := Discover(context.Background(), startMCP(t, srv, nil), testOptions())
	if !errors.Is(err, ErrInvalidTool) || !strings.Contains(err.Error(), strings.Repeat("x", 40)) {
		t.Fatalf("err = %v, want ErrInvalidTool naming the tool", err)
	}
}

func TestDiscoverServerWithoutTools(t *testing.T) {
	res, err := Discover(context.Background(), startMCP(t, newServer(nil), nil), testOptions())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if res.Tools == nil || len(res.Tools) != 0 {
		t.Errorf("tools = %#v, want empty", res.Tools)
	}
}

func TestDiscoverStaticHeader(t *testing.T) {
	srv := newServer(nil)
	addTool[noInput](srv, &mcp.Tool{Name: "list_things"})
	url := startMCP(t, srv, requireBearer("s3cret"))

	_, err := Discover(context.Background(), url, testOptions())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "needs credentials") {
		t.Errorf("without header: err = %v, want ErrUnauthorized saying credentials are needed", err)
	}

	wrong := testOptions()
	wrong.Header = http.Header{"Authorization": {"Bearer wr0ng-token"}}
	_, err = Discover(context.Background(), url, wrong)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("wrong header: err = %v, want ErrUnauthorized saying credentials were refused", err)
	}
	if err != nil && strings.Contains(err.Error(), "wr0ng-token") {
		t.Errorf("error text contains the credential: %v", err)
	}

	right := testOptions()
	right.Header = http.Header{"Authorization": {"Bearer s3cret"}}
	res, err := Discover(context.Background(), url, right)
	if err != nil {
		t.Fatalf("with header: %v", err)
	}
	if len(res.Tools) != 1 || res.Tools[0].Name != "list_things" {
		t.Errorf("tools = %+v", res.Tools)
	}

	// The right credential for another server is refused, and not quoted either.
	other := startMCP(t, srv, requireBearer("another"))
	_, err = Discover(context.Background(), other, right)
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("other server: err = %v, want ErrUnauthorized without the credential", err)
	}
}

func requireBearer(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", `Bearer realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// A redirect to another host must not carry the static headers there.
func TestDiscoverHeaderStaysWithHost(t *testing.T) {
	srv := newServer(nil)
	addTool[noInput](srv, &mcp.Tool{Name: "list_things"})
	var leaked atomic.Bool
	target := startMCP(t, srv, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				leaked.Store(true)
			}
			next.ServeHTTP(w, r)
		})
	})
	redirector := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	})
	o := testOptions()
	o.Header = http.Header{"Authorization": {"Bearer s3cret"}}
	res, err := Discover(context.Background(), redirector, o)
	if err != nil {
		t.Fatalf("Discover through redirect: %v", err)
	}
	if len(res.Tools) != 1 {
		t.Errorf("tools = %+v", res.Tools)
	}
	if leaked.Load() {
		t.Error("the Authorization header was sent to the redirect target")
	}
}

// A caller's HTTP client is used (through a wrapping transport) and left unmodified.
func TestDiscoverUsesHTTPClient(t *testing.T) {
	srv := newServer(nil)
	addTool[noInput](srv, &mcp.Tool{Name: "list_things"})
	url := startMCP(t, srv, nil)
	counter := &countingTransport{base: http.DefaultTransport}
	client := &http.Client{Transport: counter}
	o := testOptions()
	o.HTTPClient = client
	if _, err := Discover(context.Background(), url, o); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if counter.n.Load() == 0 {
		t.Error("the caller's transport was not used")
	}
	if client.Transport != counter {
		t.Error("the caller's client was modified")
	}
}

type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// TestDiscoverDeclaresClientCapabilities: discovery declares roots, sampling and elicitation
// as agents' clients do, so a tool the server lists only to such clients (a real Go SDK server
// hiding one tool from clients without elicitation) is discovered; with CompareClients the
// result names it as client-dependent. Discovery used to declare roots only and miss it.
func TestDiscoverDeclaresClientCapabilities(t *testing.T) {
	up := mcpserver.Start(t, "")
	up.AddElicitationTool()
	endpoint := up.URL
	res, err := Discover(context.Background(), endpoint, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	if !slices.Contains(names, mcpserver.ElicitTool) || len(names) != len(mcpserver.Tools)+1 {
		t.Fatalf("discovered %v, want the issue tools and %s", names, mcpserver.ElicitTool)
	}
	if res.ClientCompared || res.ClientDependentTools != nil {
		t.Errorf("without CompareClients: compared %v, dependent %v", res.ClientCompared, res.ClientDependentTools)
	}

	opts := testOptions()
	opts.CompareClients = true
	res, err = Discover(context.Background(), endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.ClientCompared || fmt.Sprint(res.ClientDependentTools) != "["+mcpserver.ElicitTool+"]" {
		t.Fatalf("client-dependent tools = %v (compared %v), want [%s]", res.ClientDependentTools, res.ClientCompared, mcpserver.ElicitTool)
	}

	// A server that lists the same tools to every client has none.
	plain := mcpserver.Start(t, "")
	res, err = Discover(context.Background(), plain.URL, opts)
	if err != nil || !res.ClientCompared || res.ClientDependentTools != nil {
		t.Fatalf("plain server: dependent %v, compared %v, err %v", res.ClientDependentTools, res.ClientCompared, err)
	}
}
