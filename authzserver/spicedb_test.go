package authzserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

func startEmbedded(t *testing.T, cfg authzserver.EmbeddedConfig) *authzserver.SpiceDB {
	t.Helper()
	ctx := context.Background()
	b, err := authzserver.StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatalf("start embedded SpiceDB: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatalf("write schema: %v", err)
	}
	return b
}

// grantAll writes a complete, allowed path for agent a_1 of user u_1 to call acme/srv/tool at level.
func grantAll(level schema.Level) []authzserver.Update {
	rels := []schema.Relationship{
		schema.HostMember("acme", "u_1"),
		schema.ServerHost("acme", "srv"),
		schema.ToolLevel("acme", "srv", "tool", schema.Low),
		schema.Ceiling("acme", "srv", "a_1", schema.High),
		schema.Grant("acme", "srv", "a_1", level),
	}
	rels = append(rels, schema.AgentTuples("acme", "a_1", "u_1")...)
	var updates []authzserver.Update
	for _, r := range rels {
		updates = append(updates, authzserver.Update{Op: authzserver.OpTouch, Relationship: r})
	}
	return updates
}

var callTool = authzserver.CheckRequest{
	Resource:   schema.Tool("acme", "srv", "tool"),
	Permission: schema.PermToolCall,
	Subject:    schema.SubjectRef{Object: schema.Agent("acme", "a_1")},
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestRevocationIsEnforcedByTheVeryNextCheck(t *testing.T) {
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	ctx := context.Background()
	for i := range 50 {
		if _, err := b.WriteRelationships(ctx, grantAll(schema.Low)); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Check(ctx, callTool); err != nil || !ok {
			t.Fatalf("round %d: granted agent denied (%v)", i, err)
		}
		if _, err := b.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("acme", "srv", "a_1", schema.Low)}); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Check(ctx, callTool); err != nil || ok {
			t.Fatalf("round %d: the check right after the revocation allowed the call (err %v)", i, err)
		}
	}
}

func TestWriteReturnsRevisionUsableByOtherBackends(t *testing.T) {
	key := "test-key-" + t.Name()
	addr := freePort(t)
	exposed := startEmbedded(t, authzserver.EmbeddedConfig{GRPCListen: addr, PresharedKey: key})
	remote, err := authzserver.DialRemote(addr, key, true)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	ctx := context.Background()
	if err := remote.Ready(ctx); err != nil {
		t.Fatalf("remote backend not ready: %v", err)
	}
	rev, err := exposed.WriteRelationships(ctx, grantAll(schema.Medium))
	if err != nil || rev == "" {
		t.Fatalf("write: revision %q, err %v", rev, err)
	}
	req := callTool
	req.AtLeastAsFresh = rev
	if ok, err := remote.Check(ctx, req); err != nil || !ok {
		t.Fatalf("remote check at the write's revision: %v %v", ok, err)
	}
	rev, err = exposed.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("acme", "srv", "a_1", schema.Medium)})
	if err != nil {
		t.Fatal(err)
	}
	req.AtLeastAsFresh = rev
	if ok, err := remote.Check(ctx, req); err != nil || ok {
		t.Fatalf("remote check at the revocation's revision allowed: %v %v", ok, err)
	}
}

func TestExposedGRPCAPIWithPresharedKey(t *testing.T) {
	key := "zed-key-" + t.Name()
	addr := freePort(t)
	b := startEmbedded(t, authzserver.EmbeddedConfig{GRPCListen: addr, PresharedKey: key})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.WriteRelationships(ctx, grantAll(schema.High)); err != nil {
		t.Fatal(err)
	}

	// What zed does: an authzed-go client with the preshared key as bearer token.
	client, err := authzed.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sch, err := client.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatalf("read schema with the key: %v", err)
	}
	if !strings.Contains(sch.GetSchemaText(), "definition mcp_server") || !strings.Contains(sch.GetSchemaText(), "permission call") {
		t.Fatalf("schema read back lacks trustgate's definitions:\n%s", sch.GetSchemaText())
	}
	stream, err := client.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: schema.TypeServer}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read relationships: %v", err)
		}
		r := resp.GetRelationship()
		got = append(got, fmt.Sprintf("%s:%s#%s", r.GetResource().GetObjectType(), r.GetResource().GetObjectId(), r.GetRelation()))
	}
	if strings.Join(got, ",") == "" || !strings.Contains(strings.Join(got, ","), "mcp_server:acme/srv#ceiling_high") {
		t.Fatalf("relationships read back: %v", got)
	}
	check, err := client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: "tool", ObjectId: schema.Tool("acme", "srv", "tool").ID},
		Permission:  "call",
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "agent", ObjectId: "acme/a_1"}},
	})
	if err != nil || check.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("check through the exposed API: %v %v", check.GetPermissionship(), err)
	}

	for name, opts := range map[string][]grpc.DialOption{
		"no key":    {grpc.WithTransportCredentials(insecure.NewCredentials())},
		"wrong key": {grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken("not-the-key")},
	} {
		c, err := authzed.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ReadSchema(ctx, &v1.ReadSchemaRequest{})
		_ = c.Close()
		if code := status.Code(err); code != codes.Unauthenticated && code != codes.PermissionDenied {
			t.Errorf("%s: read schema gave %v (code %s), want Unauthenticated/PermissionDenied", name, err, code)
		}
	}
}

func TestExposingWithoutKeyIsRefused(t *testing.T) {
	_, err := authzserver.StartEmbedded(context.Background(), authzserver.EmbeddedConfig{GRPCListen: freePort(t)})
	if err == nil || !strings.Contains(err.Error(), "preshared key") {
		t.Fatalf("StartEmbedded without key: %v", err)
	}
}

func TestExposedPortInUseIsAClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = authzserver.StartEmbedded(context.Background(), authzserver.EmbeddedConfig{GRPCListen: l.Addr().String(), PresharedKey: "k"})
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("StartEmbedded on a used port: %v", err)
	}
}

func TestUnreachableBackendFailsClosed(t *testing.T) {
	b, err := authzserver.DialRemote(freePort(t), "key", true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ok, err := b.Check(ctx, callTool)
	if ok || !errors.Is(err, authzserver.ErrUnavailable) {
		t.Fatalf("check against a SpiceDB that is down: allowed=%v err=%v, want denied with ErrUnavailable", ok, err)
	}
	if err := b.Ready(ctx); !errors.Is(err, authzserver.ErrUnavailable) {
		t.Fatalf("ready against a SpiceDB that is down: %v", err)
	}
}

func TestRemoteNeedsEndpointAndToken(t *testing.T) {
	if _, err := authzserver.DialRemote("", "k", true); err == nil {
		t.Error("empty endpoint accepted")
	}
	if _, err := authzserver.DialRemote("127.0.0.1:1", "", true); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("empty token: %v", err)
	}
}
