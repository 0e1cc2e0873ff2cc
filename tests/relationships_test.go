package tests

import (
	"context"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// spicedbClient is what an operator with zed has: the exposed gRPC API and its key.
func spicedbClient(t *testing.T, addr, key string) *authzed.Client {
	t.Helper()
	c, err := authzed.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func canCall(t *testing.T, c *authzed.Client, tool schema.ObjectRef, agent schema.ObjectRef) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: tool.Type, ObjectId: tool.ID},
		Permission:  schema.PermToolCall,
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: agent.Type, ObjectId: agent.ID}},
	})
	if err != nil {
		t.Fatalf("check through the exposed API: %v", err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seed writes a host, a human with a ceiling, an agent with a consent and a tool of each level.
func seed(t *testing.T, st store.Store, consent schema.Level) (agentID string) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"})
	must(err)
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: "alice@acme.test"})
	must(err)
	_, err = st.CreateServer(ctx, store.Server{Host: "acme", Key: "linear", Name: "Linear", URL: "https://mcp.linear.test/mcp"})
	must(err)
	for _, name := range []string{"list_issues", "create_issue", "delete_issue"} {
		_, err = st.PutTool(ctx, store.Tool{Host: "acme", Server: "linear", Name: name, Level: schema.ClassifyName(name), Enabled: true})
		must(err)
	}
	_, err = st.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: u.ID, Ceiling: schema.High})
	must(err)
	a, err := st.CreateAgent(ctx, store.Agent{Host: "acme", UserID: u.ID, ClientID: "client-1", Name: "Cursor"})
	must(err)
	_, err = st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: a.ID, Server: "linear", Level: consent})
	must(err)
	return a.ID
}

// testRestartKeepsRelationships writes grants through the store while the gateway runs, checks
// them through the exposed SpiceDB API, restarts the gateway on the same data, and checks again.
func testRestartKeepsRelationships(t *testing.T, storeCfg store.Config, serveArgs []string) {
	key := "e2e-key"
	grpcAddr := freeAddr(t)
	args := append([]string{"--spicedb-grpc-listen", grpcAddr, "--spicedb-preshared-key", key}, serveArgs...)
	p := start(t, args...)

	st, err := store.Open(context.Background(), storeCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	agentID := seed(t, st, schema.Medium)
	agent := schema.Agent("acme", agentID)
	create := schema.Tool("acme", "linear", "create_issue")
	del := schema.Tool("acme", "linear", "delete_issue")

	c := spicedbClient(t, grpcAddr, key)
	// The running gateway applies changes other processes commit to the store.
	eventually(t, "consent written by another process enforced", func() bool { return canCall(t, c, create, agent) })
	if canCall(t, c, del, agent) {
		t.Fatal("a medium consent allows a high tool")
	}
	p.stopCleanly(t)

	p = start(t, args...)
	c = spicedbClient(t, grpcAddr, key)
	if !canCall(t, c, create, agent) {
		t.Fatal("after a restart the consented agent can no longer call create_issue")
	}
	if canCall(t, c, del, agent) {
		t.Fatal("after a restart a medium consent allows a high tool")
	}

	// A revocation committed while the gateway is down is enforced as soon as it is back.
	p.stopCleanly(t)
	if err := st.DeleteConsent(context.Background(), "acme", agentID, "linear"); err != nil {
		t.Fatal(err)
	}
	start(t, args...)
	c = spicedbClient(t, grpcAddr, key)
	if canCall(t, c, create, agent) {
		t.Fatal("a consent revoked while the gateway was down is still honoured after start")
	}
}

func TestRestartKeepsRelationshipsSQLite(t *testing.T) {
	dir := t.TempDir()
	testRestartKeepsRelationships(t, store.Config{DataDir: dir}, []string{"--data-dir", dir})
}

func TestRestartKeepsRelationshipsPostgres(t *testing.T) {
	url := services.Postgres(t)
	testRestartKeepsRelationships(t, store.Config{URL: url}, []string{"--database", url, "--data-dir", t.TempDir()})
}
