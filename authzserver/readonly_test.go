package authzserver_test

import (
	"context"
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
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// exposedWithDangerTool starts an embedded SpiceDB exposed on TCP where agent a_1 holds a
// medium consent and tool acme/srv/danger requires high; it returns the backend and a client
// as zed makes one (authzed-go with the preshared key).
func exposedWithDangerTool(t *testing.T, allowWrites bool) (*authzserver.SpiceDB, *authzed.Client) {
	t.Helper()
	key := "zed-key-" + t.Name()
	addr := freePort(t)
	b := startEmbedded(t, authzserver.EmbeddedConfig{GRPCListen: addr, PresharedKey: key, GRPCAllowWrites: allowWrites})
	updates := append(grantAll(schema.Medium), authzserver.Update{Op: authzserver.OpTouch, Relationship: schema.ToolLevel("acme", "srv", "danger", schema.High)})
	// trustgate's own connection writes, whatever the exposed API allows.
	if _, err := b.WriteRelationships(context.Background(), updates); err != nil {
		t.Fatalf("trustgate's own write: %v", err)
	}
	client, err := authzed.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return b, client
}

var callDanger = authzserver.CheckRequest{
	Resource:   schema.Tool("acme", "srv", "danger"),
	Permission: schema.PermToolCall,
	Subject:    schema.SubjectRef{Object: schema.Agent("acme", "a_1")},
}

// grantHigh is what `zed relationship create mcp_server:acme/srv granted_high agent:acme/a_1` sends.
func grantHigh() *v1.WriteRelationshipsRequest {
	return &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: schema.TypeServer, ObjectId: "acme/srv"},
			Relation: "granted_high",
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: schema.TypeAgent, ObjectId: "acme/a_1"}},
		},
	}}}
}

// TestExposedAPIIsReadOnly: a zed-style client of the exposed API reads, checks and watches,
// but its writes (the relationship that once gave a medium agent a high tool at once, a
// deletion, a schema write) are refused with PermissionDenied naming the admin API, and change
// nothing; trustgate's own connection still writes.
func TestExposedAPIIsReadOnly(t *testing.T) {
	b, client := exposedWithDangerTool(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err := client.WriteRelationships(ctx, grantHigh())
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "admin API") || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write through the exposed API = %v, want PermissionDenied naming the admin API", err)
	}
	if ok, err := b.Check(ctx, callDanger); err != nil || ok {
		t.Fatalf("after the refused write the medium agent may call the high tool: %v %v", ok, err)
	}
	_, err = client.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: schema.TypeServer}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("delete through the exposed API = %v, want PermissionDenied", err)
	}
	if ok, err := b.Check(ctx, callTool); err != nil || !ok {
		t.Fatalf("after the refused delete the agent lost its low tool: %v %v", ok, err)
	}
	_, err = client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("schema write through the exposed API = %v, want PermissionDenied", err)
	}
	imp, err := client.ImportBulkRelationships(ctx)
	if err == nil {
		_, err = imp.CloseAndRecv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bulk import through the exposed API = %v, want PermissionDenied", err)
	}

	// Reads still work: schema, check, watch.
	if sch, err := client.ReadSchema(ctx, &v1.ReadSchemaRequest{}); err != nil || !strings.Contains(sch.GetSchemaText(), "definition mcp_server") {
		t.Fatalf("read schema: %v", err)
	}
	check, err := client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: schema.TypeTool, ObjectId: schema.Tool("acme", "srv", "danger").ID},
		Permission:  schema.PermToolCall,
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: schema.TypeAgent, ObjectId: "acme/a_1"}},
	})
	if err != nil || check.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION {
		t.Fatalf("check through the exposed API: %v %v", check.GetPermissionship(), err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	watch, err := client.Watch(wctx, &v1.WatchRequest{OptionalObjectTypes: []string{schema.TypeServer}})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if _, err := b.WriteRelationships(ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: schema.ServerHost("acme", "other")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("watch through the exposed API: %v", err)
	}
	wcancel()
}

// TestExposedAPIWritesWhenAllowed: with GRPCAllowWrites (--spicedb-grpc-allow-writes) the
// operator's client may write, and the write takes effect at once (reconciliation from the store
// removes it at the next start).
func TestExposedAPIWritesWhenAllowed(t *testing.T) {
	b, client := exposedWithDangerTool(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.WriteRelationships(ctx, grantHigh()); err != nil {
		t.Fatalf("write with writes allowed: %v", err)
	}
	if ok, err := b.Check(ctx, callDanger); err != nil || !ok {
		t.Fatalf("the allowed write did not take effect: %v %v", ok, err)
	}
}

// TestEveryMutatingMethodIsRefused calls every method of every authzed.api.v1 service the
// exposed API serves, as found in the protobuf registry (so a method a SpiceDB upgrade adds is
// covered too), with an empty request: those that change something are refused with
// PermissionDenied, the others are not.
func TestEveryMutatingMethodIsRefused(t *testing.T) {
	key := "zed-key-" + t.Name()
	addr := freePort(t)
	startEmbedded(t, authzserver.EmbeddedConfig{GRPCListen: addr, PresharedKey: key})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mutating := func(name string) bool {
		for _, prefix := range []string{"Write", "Delete", "Import", "BulkImport", "ExperimentalRegister", "ExperimentalUnregister"} {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		}
		return false
	}
	methods := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("authzed.api.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				methods++
				full := "/" + string(sd.FullName()) + "/" + string(md.Name())
				err := invokeEmpty(conn, full, md)
				if mutating(string(md.Name())) {
					if status.Code(err) != codes.PermissionDenied {
						t.Errorf("%s (a write) = %v, want PermissionDenied", full, err)
					}
				} else if status.Code(err) == codes.PermissionDenied {
					t.Errorf("%s (a read) is refused: %v", full, err)
				}
			}
		}
		return true
	})
	if methods < 20 {
		t.Fatalf("only %d methods of authzed.api.v1 found in the registry", methods)
	}
}

// invokeEmpty calls method with an empty request and returns the first error (nil when the
// call, or the stream's first message, succeeded).
func invokeEmpty(conn *grpc.ClientConn, method string, md protoreflect.MethodDescriptor) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := dynamicpb.NewMessage(md.Input())
	resp := dynamicpb.NewMessage(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return conn.Invoke(ctx, method, req, resp)
	}
	desc := &grpc.StreamDesc{StreamName: string(md.Name()), ClientStreams: md.IsStreamingClient(), ServerStreams: md.IsStreamingServer()}
	s, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil {
		return s.RecvMsg(resp) // the server's status, when it ended the stream
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	err = s.RecvMsg(resp)
	if status.Code(err) == codes.DeadlineExceeded {
		return nil // a read that streams (Watch) and had nothing to say yet
	}
	return err
}
