package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const clientTestToken = "tgat_testtokenthatmustneverappearinerrors"

// newClientForTest serves handler and returns a client of it.
func newClientForTest(t *testing.T, handler http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, clientTestToken, WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientTestProblem answers like the admin API does on errors.
func clientTestProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: "urn:trustgate:request:r1"})
}

// clientDecodeStrict decodes a request body into a new value of want's type, refusing unknown
// fields and trailing data.
func clientDecodeStrict(r io.Reader, want any) (any, error) {
	v := reflect.New(reflect.TypeOf(want))
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON document")
	}
	return v.Elem().Interface(), nil
}

var (
	clientT0   = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clientStr  = func(s string) *string { return &s }
	clientBool = func(b bool) *bool { return &b }
)

// TestClientRoutes calls every method once against a fake API that checks the method, the
// exact (escaped) request URI, the Authorization header and the strictly decoded JSON body,
// and answers with a fixed document the method must return.
func TestClientRoutes(t *testing.T) {
	host := Host{Key: "acme", Name: "Acme", MCPURL: "http://gw/mcp/acme", CreatedAt: clientT0,
		Settings: HostSettings{AllowedEmailDomains: []string{"acme.com"}, ToolVisibility: "callable", AccessTokenTTLSeconds: 3600},
		Clients:  map[string]ClientConfig{"claude_code": {Where: "shell", Snippet: "claude mcp add x"}}}
	server := Server{Key: "lin ear", Name: "Linear", URL: "https://mcp.linear.app/mcp", Tools: 2, EnabledTools: 1, CreatedAt: clientT0, UpdatedAt: clientT0}
	tool := Tool{Server: "lin ear", Name: "a/b c", Description: "d", InputSchema: json.RawMessage(`{"type":"object"}`), Level: "high", Enabled: true, UpdatedAt: clientT0}
	human := Human{ID: "u_1", Email: "ann+x@acme.com", Name: "Ann", Grants: []Grant{{Server: "lin ear", Ceiling: "medium", UpdatedAt: clientT0}}, Agents: []AgentSummary{}, CreatedAt: clientT0}
	agent := Agent{ID: "a_1", Name: "Cursor", ClientID: "c_1", HumanID: "u_1", HumanEmail: "ann+x@acme.com", RedirectURIs: []string{"http://127.0.0.1/cb"}, Type: "chat",
		Servers: []AgentServer{{Server: "lin ear", Level: "low", Ceiling: "medium", Effective: "low"}}, CreatedAt: clientT0, LastActiveAt: &clientT0}
	token := Token{ID: "t_1", Name: "ci", Host: "acme", Prefix: "tgat_abcdef", CreatedAt: clientT0}
	created := TokenCreated{Token: token, Secret: "tgat_secret"}
	decision := Decision{Agent: "a_1", Server: "lin ear", Tool: "a/b c", Allowed: false, Reason: "level_too_low",
		Message: "trustgate denied …", RequiredLevel: "high", AgentLevel: "low", Ceiling: "high"}
	aside := SetAsideChange{ID: 42, Op: "touch", Relationship: "server:acme/tracker#no_such_relation@agent:acme/a_1", CreatedAt: clientT0, SetAsideAt: clientT0, Reason: "refused"}
	ctx := context.Background()

	cases := []struct {
		name   string
		method string
		uri    string // the exact RequestURI the API must receive
		req    any    // the request body (nil: none)
		status int
		resp   any // the response body (nil: none)
		call   func(c *Client) (any, error)
	}{
		{"ListHosts", "GET", "/api/v1/hosts?cursor=abc&limit=10", nil, 200, Page[Host]{Items: []Host{host}, NextCursor: "n"},
			func(c *Client) (any, error) { return c.ListHosts(ctx, PageRequest{Limit: 10, Cursor: "abc"}) }},
		{"CreateHost", "POST", "/api/v1/hosts", HostCreate{Key: "acme", Exact: true, Name: "Acme"}, 201, host,
			func(c *Client) (any, error) {
				return c.CreateHost(ctx, HostCreate{Key: "acme", Exact: true, Name: "Acme"})
			}},
		{"GetHost", "GET", "/api/v1/hosts/acme", nil, 200, host,
			func(c *Client) (any, error) { return c.GetHost(ctx, "acme") }},
		{"UpdateHost", "PATCH", "/api/v1/hosts/acme", HostUpdate{Name: clientStr("New"), Settings: &HostSettingsPatch{DynamicMCPs: clientBool(false)}}, 200, host,
			func(c *Client) (any, error) {
				return c.UpdateHost(ctx, "acme", HostUpdate{Name: clientStr("New"), Settings: &HostSettingsPatch{DynamicMCPs: clientBool(false)}})
			}},
		{"DeleteHost", "DELETE", "/api/v1/hosts/acme", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteHost(ctx, "acme") }},

		{"ListServers", "GET", "/api/v1/hosts/acme/servers", nil, 200, Page[Server]{Items: []Server{server}},
			func(c *Client) (any, error) { return c.ListServers(ctx, "acme", PageRequest{}) }},
		{"ImportServer", "POST", "/api/v1/hosts/acme/servers",
			ServerImport{URL: "https://mcp.linear.app/mcp", Key: "lin ear", Header: &CredentialHeader{Name: "Authorization", Value: "Bearer x"}, EnableTools: clientBool(false), DryRun: true},
			200, ImportResult{Server: server, Tools: []Tool{tool}, DryRun: true},
			func(c *Client) (any, error) {
				return c.ImportServer(ctx, "acme", ServerImport{URL: "https://mcp.linear.app/mcp", Key: "lin ear",
					Header: &CredentialHeader{Name: "Authorization", Value: "Bearer x"}, EnableTools: clientBool(false), DryRun: true})
			}},
		{"GetServer", "GET", "/api/v1/hosts/acme/servers/lin%20ear", nil, 200, server,
			func(c *Client) (any, error) { return c.GetServer(ctx, "acme", "lin ear") }},
		{"UpdateServer", "PATCH", "/api/v1/hosts/acme/servers/lin%20ear", ServerUpdate{Description: clientStr(""), ClearCredentials: true}, 200, server,
			func(c *Client) (any, error) {
				return c.UpdateServer(ctx, "acme", "lin ear", ServerUpdate{Description: clientStr(""), ClearCredentials: true})
			}},
		{"DeleteServer", "DELETE", "/api/v1/hosts/acme/servers/lin%20ear", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteServer(ctx, "acme", "lin ear") }},
		{"SyncServer", "POST", "/api/v1/hosts/acme/servers/lin%20ear/sync", nil, 200,
			SyncResult{Added: []string{"new"}, Changed: []string{}, Removed: []string{"old"}, Unchanged: 3, Tools: []Tool{tool}},
			func(c *Client) (any, error) { return c.SyncServer(ctx, "acme", "lin ear") }},

		{"ListTools", "GET", "/api/v1/hosts/acme/servers/lin%20ear/tools?limit=2", nil, 200, Page[Tool]{Items: []Tool{tool}},
			func(c *Client) (any, error) { return c.ListTools(ctx, "acme", "lin ear", PageRequest{Limit: 2}) }},
		{"CreateTool", "POST", "/api/v1/hosts/acme/servers/lin%20ear/tools", ToolCreate{Name: "a/b c", Level: "low", Enabled: true}, 201, tool,
			func(c *Client) (any, error) {
				return c.CreateTool(ctx, "acme", "lin ear", ToolCreate{Name: "a/b c", Level: "low", Enabled: true})
			}},
		{"GetTool", "GET", "/api/v1/hosts/acme/servers/lin%20ear/tools/a%2Fb%20c", nil, 200, tool,
			func(c *Client) (any, error) { return c.GetTool(ctx, "acme", "lin ear", "a/b c") }},
		{"UpdateTool", "PATCH", "/api/v1/hosts/acme/servers/lin%20ear/tools/a%2Fb%20c", ToolUpdate{Level: clientStr("medium"), Enabled: clientBool(false), Approve: true}, 200, tool,
			func(c *Client) (any, error) {
				return c.UpdateTool(ctx, "acme", "lin ear", "a/b c", ToolUpdate{Level: clientStr("medium"), Enabled: clientBool(false), Approve: true})
			}},
		{"DeleteTool", "DELETE", "/api/v1/hosts/acme/servers/lin%20ear/tools/a%2Fb%20c", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteTool(ctx, "acme", "lin ear", "a/b c") }},

		{"ListHumans", "GET", "/api/v1/hosts/acme/humans", nil, 200, Page[Human]{Items: []Human{human}},
			func(c *Client) (any, error) { return c.ListHumans(ctx, "acme", PageRequest{}) }},
		{"CreateHuman", "POST", "/api/v1/hosts/acme/humans", HumanCreate{Email: "ann+x@acme.com", Admin: true}, 201, human,
			func(c *Client) (any, error) {
				return c.CreateHuman(ctx, "acme", HumanCreate{Email: "ann+x@acme.com", Admin: true})
			}},
		{"GetHuman", "GET", "/api/v1/hosts/acme/humans/ann+x@acme.com", nil, 200, human,
			func(c *Client) (any, error) { return c.GetHuman(ctx, "acme", "ann+x@acme.com") }},
		{"UpdateHuman", "PATCH", "/api/v1/hosts/acme/humans/u_1", HumanUpdate{Admin: clientBool(false)}, 200, human,
			func(c *Client) (any, error) {
				return c.UpdateHuman(ctx, "acme", "u_1", HumanUpdate{Admin: clientBool(false)})
			}},
		{"DeleteHuman", "DELETE", "/api/v1/hosts/acme/humans/u_1", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteHuman(ctx, "acme", "u_1") }},
		{"SetGrant", "PUT", "/api/v1/hosts/acme/humans/ann+x@acme.com/grants/lin%20ear", GrantSet{Ceiling: "medium"}, 200, human,
			func(c *Client) (any, error) { return c.SetGrant(ctx, "acme", "ann+x@acme.com", "lin ear", "medium") }},
		{"DeleteGrant", "DELETE", "/api/v1/hosts/acme/humans/u_1/grants/lin%20ear", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteGrant(ctx, "acme", "u_1", "lin ear") }},

		{"ListAgents", "GET", "/api/v1/hosts/acme/agents?human=ann%2Bx%40acme.com&limit=5", nil, 200, Page[Agent]{Items: []Agent{agent}},
			func(c *Client) (any, error) {
				return c.ListAgents(ctx, "acme", "ann+x@acme.com", PageRequest{Limit: 5})
			}},
		{"GetAgent", "GET", "/api/v1/hosts/acme/agents/a_1", nil, 200, agent,
			func(c *Client) (any, error) { return c.GetAgent(ctx, "acme", "a_1") }},
		{"UpdateAgent", "PATCH", "/api/v1/hosts/acme/agents/a_1", AgentUpdate{Type: clientStr("ambient")}, 200, agent,
			func(c *Client) (any, error) {
				return c.UpdateAgent(ctx, "acme", "a_1", AgentUpdate{Type: clientStr("ambient")})
			}},
		{"SetAgentLevel", "PUT", "/api/v1/hosts/acme/agents/a_1/servers/lin%20ear", AgentLevel{Level: "low"}, 200, agent,
			func(c *Client) (any, error) { return c.SetAgentLevel(ctx, "acme", "a_1", "lin ear", "low") }},
		{"DeleteAgentLevel", "DELETE", "/api/v1/hosts/acme/agents/a_1/servers/lin%20ear", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteAgentLevel(ctx, "acme", "a_1", "lin ear") }},
		{"KillAgent", "POST", "/api/v1/hosts/acme/agents/a_1/kill", nil, 200, agent,
			func(c *Client) (any, error) { return c.KillAgent(ctx, "acme", "a_1") }},

		{"ListHostTokens", "GET", "/api/v1/hosts/acme/tokens", nil, 200, Page[Token]{Items: []Token{token}},
			func(c *Client) (any, error) { return c.ListHostTokens(ctx, "acme", PageRequest{}) }},
		{"CreateHostToken", "POST", "/api/v1/hosts/acme/tokens", TokenCreate{Name: "ci"}, 201, created,
			func(c *Client) (any, error) { return c.CreateHostToken(ctx, "acme", TokenCreate{Name: "ci"}) }},
		{"DeleteHostToken", "DELETE", "/api/v1/hosts/acme/tokens/t_1", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteHostToken(ctx, "acme", "t_1") }},
		{"ListGlobalTokens", "GET", "/api/v1/tokens", nil, 200, Page[Token]{Items: []Token{token}},
			func(c *Client) (any, error) { return c.ListGlobalTokens(ctx, PageRequest{}) }},
		{"CreateGlobalToken", "POST", "/api/v1/tokens", TokenCreate{Name: "root"}, 201, created,
			func(c *Client) (any, error) { return c.CreateGlobalToken(ctx, TokenCreate{Name: "root"}) }},
		{"DeleteGlobalToken", "DELETE", "/api/v1/tokens/t_1", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DeleteGlobalToken(ctx, "t_1") }},
		{"CreateCheckToken", "POST", "/api/v1/hosts/acme/tokens", TokenCreate{Name: "svc", Scope: ScopeCheck}, 201, created,
			func(c *Client) (any, error) {
				return c.CreateHostToken(ctx, "acme", TokenCreate{Name: "svc", Scope: ScopeCheck})
			}},

		{"Check", "POST", "/api/v1/hosts/acme/check", CheckRequest{Agent: "a_1", Server: "lin ear", Tool: "a/b c"}, 200, decision,
			func(c *Client) (any, error) { return c.Check(ctx, "acme", "a_1", "lin ear", "a/b c") }},
		{"CallableTools", "POST", "/api/v1/hosts/acme/callable-tools", CallableToolsRequest{Agent: "a_1", Server: "lin ear"}, 200,
			CallableTools{Agent: "a_1", Server: "lin ear", Tools: []string{"a/b c", "list"}},
			func(c *Client) (any, error) {
				tools, err := c.CallableTools(ctx, "acme", "a_1", "lin ear")
				return CallableTools{Agent: "a_1", Server: "lin ear", Tools: tools}, err
			}},

		{"ListSetAsideChanges", "GET", "/api/v1/hosts/acme/set-aside-changes?limit=5", nil, 200, Page[SetAsideChange]{Items: []SetAsideChange{aside}},
			func(c *Client) (any, error) { return c.ListSetAsideChanges(ctx, "acme", PageRequest{Limit: 5}) }},
		{"RetrySetAsideChange", "POST", "/api/v1/hosts/acme/set-aside-changes/42/retry", nil, 200, SetAsideRetry{Change: aside, Queued: "delete", SetAsideAgain: &aside},
			func(c *Client) (any, error) { return c.RetrySetAsideChange(ctx, "acme", 42) }},
		{"DiscardSetAsideChange", "DELETE", "/api/v1/hosts/acme/set-aside-changes/42", nil, 204, nil,
			func(c *Client) (any, error) { return nil, c.DiscardSetAsideChange(ctx, "acme", 42) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != tc.method || r.RequestURI != tc.uri {
					clientTestProblem(w, http.StatusNotFound, "unexpected "+r.Method+" "+r.RequestURI)
					return
				}
				if got := r.Header.Get("Authorization"); got != "Bearer "+clientTestToken {
					clientTestProblem(w, http.StatusUnauthorized, "bad Authorization header "+got)
					return
				}
				if tc.req == nil {
					if b, _ := io.ReadAll(r.Body); len(b) != 0 {
						clientTestProblem(w, http.StatusBadRequest, "unexpected body "+string(b))
						return
					}
				} else {
					if ct := r.Header.Get("Content-Type"); ct != "application/json" {
						clientTestProblem(w, http.StatusUnsupportedMediaType, "content type "+ct)
						return
					}
					got, err := clientDecodeStrict(r.Body, tc.req)
					if err != nil {
						clientTestProblem(w, http.StatusBadRequest, err.Error())
						return
					}
					if !reflect.DeepEqual(got, tc.req) {
						clientTestProblem(w, http.StatusBadRequest, "body mismatch")
						t.Errorf("request body = %#v, want %#v", got, tc.req)
						return
					}
				}
				if tc.resp == nil {
					w.WriteHeader(tc.status)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_ = json.NewEncoder(w).Encode(tc.resp)
			}))
			got, err := tc.call(c)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.resp) {
				t.Errorf("%s returned %#v, want %#v", tc.name, got, tc.resp)
			}
		})
	}
}

// TestClientPathEscaping routes through a real ServeMux, as the API does: path parameters with
// slashes, spaces and URL syntax reach the handler intact.
func TestClientPathEscaping(t *testing.T) {
	names := []string{"a/b c", "50% off?#frag", "../../hosts", "ann+x@acme.com", "é/ü"}
	mux := http.NewServeMux()
	var gotHost, gotServer, gotTool string
	mux.HandleFunc("GET /api/v1/hosts/{host}/servers/{server}/tools/{tool}", func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotServer, gotTool = r.PathValue("host"), r.PathValue("server"), r.PathValue("tool")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Tool{Name: gotTool})
	})
	c := newClientForTest(t, mux)
	for _, name := range names {
		tool, err := c.GetTool(context.Background(), "h "+name, "s"+name, name)
		if err != nil {
			t.Fatalf("GetTool(%q): %v", name, err)
		}
		if gotHost != "h "+name || gotServer != "s"+name || gotTool != name || tool.Name != name {
			t.Errorf("GetTool(%q) reached host=%q server=%q tool=%q (returned %q)", name, gotHost, gotServer, gotTool, tool.Name)
		}
	}
}

func TestClientProblemErrors(t *testing.T) {
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/hosts/missing":
			clientTestProblem(w, http.StatusNotFound, `no host "missing"`)
		case "/api/v1/hosts/echo":
			// A misbehaving server (or proxy) that echoes the credential back.
			clientTestProblem(w, http.StatusUnauthorized, "token "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+" is not valid")
		case "/api/v1/hosts/proxy":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>\n<body>"+strings.Repeat("upstream down ", 100)+r.Header.Get("Authorization")+"</body></html>")
		case "/api/v1/hosts/empty":
			w.WriteHeader(http.StatusTeapot)
		case "/api/v1/hosts/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"title":"Conflict","detail":"server \"linear\" exists","extra":1}`)
		}
	}))
	ctx := context.Background()

	_, err := c.GetHost(ctx, "missing")
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("GetHost(missing) error = %T %v, want *Error", err, err)
	}
	if apiErr.Status != 404 || apiErr.Problem.Detail != `no host "missing"` || apiErr.Problem.Instance != "urn:trustgate:request:r1" {
		t.Errorf("Error = %+v", apiErr)
	}
	if got, want := err.Error(), `Not Found: no host "missing"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	_, err = c.GetHost(ctx, "echo")
	if err == nil || strings.Contains(err.Error(), clientTestToken) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("echoed token: error = %v, want it redacted", err)
	}

	_, err = c.GetHost(ctx, "proxy")
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway || apiErr.Problem.Title != "Bad Gateway" {
		t.Fatalf("non-problem 502: error = %#v", err)
	}
	if !strings.HasPrefix(apiErr.Problem.Detail, "<html> <body>upstream down") || len([]rune(apiErr.Problem.Detail)) > clientMaxErrorSnippet+1 {
		t.Errorf("non-problem detail = %q, want a short one-line snippet", apiErr.Problem.Detail)
	}
	if strings.Contains(err.Error(), clientTestToken) {
		t.Errorf("error %q contains the token", err)
	}

	err = c.DeleteHost(ctx, "empty")
	if !errors.As(err, &apiErr) || err.Error() != "I'm a teapot" {
		t.Errorf("empty error body: error = %v", err)
	}

	_, err = c.GetHost(ctx, "json")
	if !errors.As(err, &apiErr) || err.Error() != `Conflict: server "linear" exists` || apiErr.Problem.Status != 409 {
		t.Errorf("application/json problem: error = %v (%+v)", err, apiErr)
	}
}

func TestClientBoundsResponses(t *testing.T) {
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"key":"`)
		_, _ = io.Copy(w, io.LimitReader(clientZeros{}, clientMaxResponseBytes+10))
		_, _ = io.WriteString(w, `"}`)
	}))
	_, err := c.GetHost(context.Background(), "big")
	if err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("huge response: error = %v", err)
	}
}

type clientZeros struct{}

func (clientZeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

func TestClientFollowsCursors(t *testing.T) {
	var requests []string
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("cursor") {
		case "":
			_ = json.NewEncoder(w).Encode(Page[Human]{Items: []Human{{ID: "1"}, {ID: "2"}}, NextCursor: "c2"})
		case "c2":
			_ = json.NewEncoder(w).Encode(Page[Human]{Items: []Human{{ID: "3"}}, NextCursor: "c3"})
		case "c3":
			_ = json.NewEncoder(w).Encode(Page[Human]{Items: []Human{}})
		}
	}))
	humans, err := Collect(c.Humans(context.Background(), "acme"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range humans {
		ids = append(ids, h.ID)
	}
	if strings.Join(ids, ",") != "1,2,3" {
		t.Errorf("Humans ids = %v, want 1,2,3", ids)
	}
	want := []string{"limit=500", "cursor=c2&limit=500", "cursor=c3&limit=500"}
	if !reflect.DeepEqual(requests, want) {
		t.Errorf("queries = %q, want %q", requests, want)
	}
}

func TestClientIteratorsEmptyAndLoop(t *testing.T) {
	c := newClientForTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/tokens" {
			_, _ = io.WriteString(w, `{"items":null}`)
			return
		}
		_ = json.NewEncoder(w).Encode(Page[Host]{Items: []Host{{Key: "a"}}, NextCursor: "same"})
	}))
	tokens, err := Collect(c.GlobalTokens(context.Background()))
	if err != nil || tokens == nil || len(tokens) != 0 {
		t.Errorf("GlobalTokens = %#v, %v; want an empty, non-nil slice", tokens, err)
	}
	if _, err := Collect(c.Hosts(context.Background())); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("repeating cursor: error = %v", err)
	}
}

func TestNewClient(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://gw", "/api", "http://", "http://u:p@gw", "http://gw/?x=1", "http://gw/#f"} {
		if _, err := NewClient(bad, ""); err == nil {
			t.Errorf("NewClient(%q) succeeded, want an error", bad)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("NewClient(%q) error %q repeats the credentials", bad, err)
		}
	}
	if _, err := NewClient("http://gw", "tgat_a b"); err == nil || strings.Contains(err.Error(), "tgat_a") {
		t.Errorf("token with a space: error = %v, want one not quoting the token", err)
	}
	c, err := NewClient("HTTPS://gw.example:8443/prefix/", "t")
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "https://gw.example:8443/prefix" {
		t.Errorf("BaseURL = %q", c.BaseURL())
	}
	if c.http.Timeout != DefaultClientTimeout {
		t.Errorf("default timeout = %v, want %v", c.http.Timeout, DefaultClientTimeout)
	}
}

func TestClientKeepsPathPrefixAndOmitsEmptyToken(t *testing.T) {
	var uri, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri, auth = r.RequestURI, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"items":[],"unknown_field_from_a_newer_server":true}`)
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL+"/gw/", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListHosts(context.Background(), PageRequest{}); err != nil {
		t.Fatal(err)
	}
	if uri != "/gw/api/v1/hosts" || auth != "" {
		t.Errorf("request %q with Authorization %q; want /gw/api/v1/hosts and none", uri, auth)
	}
}

func TestClientTransportErrorOmitsToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := NewClient(srv.URL, clientTestToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListHosts(context.Background(), PageRequest{})
	if err == nil || strings.Contains(err.Error(), clientTestToken) {
		t.Errorf("unreachable server: error = %v", err)
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		t.Errorf("transport error is an *Error: %v", err)
	}
}
