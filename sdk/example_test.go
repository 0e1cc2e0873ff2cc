package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/trustgate/trustgate/sdk"
)

// An administrator's script: grant a human a ceiling, and list the host's agents with their
// effective levels. (It needs a running gateway and an admin token.)
func ExampleClient() {
	ctx := context.Background()
	c, err := sdk.NewClient("http://127.0.0.1:8080", os.Getenv("TRUSTGATE_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.SetGrant(ctx, "acme", "alice@acme.com", "linear", "medium"); err != nil {
		var apiErr *sdk.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			log.Fatalf("no such human or server: %s", apiErr.Detail)
		}
		log.Fatal(err)
	}
	for agent, err := range c.Agents(ctx, "acme", "alice@acme.com") {
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range agent.Servers {
			fmt.Printf("%s on %s: %s\n", agent.Name, s.Server, s.Effective)
		}
	}
}

// A service asks the gateway whether an agent may call a tool, with a token of scope check
// (trustgate admin token create --host acme --scope check).
func ExampleClient_Check() {
	ctx := context.Background()
	c, err := sdk.NewClient("http://127.0.0.1:8080", os.Getenv("TRUSTGATE_CHECK_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	d, err := c.Check(ctx, "acme", "a_1234", "linear", "delete_issue")
	if err != nil {
		log.Fatal(err) // the gateway could not decide: deny
	}
	if !d.Allowed {
		fmt.Printf("denied (%s): %s\n", d.Reason, d.Message)
	}
	tools, err := c.CallableTools(ctx, "acme", "a_1234", "linear")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the agent may call", tools)
}

// A service accepts agents' access tokens: the handler learns the human and the agent. A
// request without a token gets the challenge that sends an MCP client to the gateway's OAuth
// server.
func ExampleResourceServer_Middleware() {
	rs, err := sdk.NewResourceServer(sdk.ResourceServerConfig{
		Issuer:   "https://gw.example.com/h/acme",
		Audience: "https://gw.example.com/h/acme/mcp/tracker",
		Host:     "acme",
	})
	if err != nil {
		log.Fatal(err)
	}
	handler := rs.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := sdk.TokenFromContext(r.Context())
		fmt.Fprintf(w, "hello %s, acting through agent %s\n", tok.Human, tok.Agent)
	}))

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/issues", nil))
	fmt.Println(rec.Code)
	fmt.Println(rec.Header().Get("WWW-Authenticate"))
	// Output:
	// 401
	// Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/h/acme/mcp/tracker"
}

// Every list is an iterator over all its pages; Collect gathers one.
func ExampleCollect() {
	c, err := sdk.NewClient("http://127.0.0.1:8080", os.Getenv("TRUSTGATE_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	servers, err := sdk.Collect(c.Servers(context.Background(), "acme"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(servers), "servers")
}
