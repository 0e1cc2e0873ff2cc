package authzserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	dsapi "github.com/authzed/spicedb/pkg/datastore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trustgate/trustgate/schema"
)

// maxUpdatesPerWrite matches SpiceDB's default limit of updates in one WriteRelationships.
const maxUpdatesPerWrite = 1000

// SpiceDB is the Backend over SpiceDB's v1 gRPC API (authzed-go), for the embedded server and
// for a remote one alike.
type SpiceDB struct {
	conn        *grpc.ClientConn
	permissions v1.PermissionsServiceClient
	schemas     v1.SchemaServiceClient
	// latest is the ZedToken of the newest write made through this backend (returned by
	// WriteRelationships when there is nothing to write).
	latest atomic.Pointer[v1.ZedToken]
	// ds is the embedded server's datastore (nil for a remote SpiceDB): the decision cache
	// reads its head revision.
	ds dsapi.Datastore
	// memory says ds is the memory datastore, whose revisions are moments (explain.go).
	memory bool
	// onClose releases what the backend owns beside the connection (an embedded server).
	onClose func() error
	// postgresURI is the embedded server's PostgreSQL datastore ("" for any other datastore
	// and a remote SpiceDB): RefreshStatistics analyzes its relationship table.
	postgresURI string
	// logger is the embedded server's logger (nil for a remote SpiceDB).
	logger *slog.Logger
	// closeHooks run first on Close: decision caches stop watching the datastore.
	hooksMu    sync.Mutex
	closeHooks []func()
}

var _ Backend = (*SpiceDB)(nil)

// NewSpiceDB makes a backend over an established gRPC connection to SpiceDB. The backend owns
// the connection and closes it on Close.
func NewSpiceDB(conn *grpc.ClientConn) *SpiceDB {
	return &SpiceDB{
		conn:        conn,
		permissions: v1.NewPermissionsServiceClient(conn),
		schemas:     v1.NewSchemaServiceClient(conn),
	}
}

// WriteSchema replaces SpiceDB's schema. It is validated first, so a malformed schema is
// reported with its position and nothing is written.
func (s *SpiceDB) WriteSchema(ctx context.Context, text string) error {
	if err := ValidateSchema(text); err != nil {
		return err
	}
	resp, err := s.schemas.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text})
	if err != nil {
		return wrapRPC("write schema", err)
	}
	s.advance(resp.GetWrittenAt())
	return nil
}

// ReadSchema returns the schema SpiceDB holds.
func (s *SpiceDB) ReadSchema(ctx context.Context) (string, error) {
	resp, err := s.schemas.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return "", wrapRPC("read schema", err)
	}
	return resp.GetSchemaText(), nil
}

func (s *SpiceDB) WriteRelationships(ctx context.Context, updates []Update) (Revision, error) {
	if len(updates) == 0 {
		return s.currentRevision(), nil
	}
	var last Revision
	for start := 0; start < len(updates); start += maxUpdatesPerWrite {
		end := min(start+maxUpdatesPerWrite, len(updates))
		req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, 0, end-start)}
		for _, u := range updates[start:end] {
			op := v1.RelationshipUpdate_OPERATION_TOUCH
			if u.Op == OpDelete {
				op = v1.RelationshipUpdate_OPERATION_DELETE
			} else if u.Op != OpTouch {
				return "", fmt.Errorf("write relationships: unknown operation %d for %s", u.Op, u.Relationship)
			}
			rel, err := toRelationship(u.Relationship)
			if err != nil {
				return "", fmt.Errorf("write relationships: %w: %w", ErrRefused, err)
			}
			req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: rel})
		}
		resp, err := s.permissions.WriteRelationships(ctx, req)
		if err != nil {
			return "", wrapRPC("write relationships", err)
		}
		s.advance(resp.GetWrittenAt())
		last = Revision(resp.GetWrittenAt().GetToken())
	}
	return last, nil
}

func (s *SpiceDB) DeleteRelationships(ctx context.Context, rels []schema.Relationship) (Revision, error) {
	updates := make([]Update, len(rels))
	for i, r := range rels {
		updates[i] = Update{Op: OpDelete, Relationship: r}
	}
	return s.WriteRelationships(ctx, updates)
}

func (s *SpiceDB) ReadRelationships(ctx context.Context, resourceType string, fn func(schema.Relationship) error) error {
	var cursor *v1.Cursor
	for {
		stream, err := s.permissions.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
			Consistency:        s.consistency(""),
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: resourceType},
			OptionalLimit:      1000,
			OptionalCursor:     cursor,
		})
		if err != nil {
			return wrapRPC("read relationships", err)
		}
		n := 0
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return wrapRPC("read relationships", err)
			}
			n++
			cursor = resp.GetAfterResultCursor()
			if err := fn(fromRelationship(resp.GetRelationship())); err != nil {
				return err
			}
		}
		if n < 1000 || cursor == nil {
			return nil
		}
	}
}

func (s *SpiceDB) Check(ctx context.Context, req CheckRequest) (bool, error) {
	return s.checkAt(ctx, req, s.consistency(req.AtLeastAsFresh))
}

// checkAt is Check with the given consistency.
func (s *SpiceDB) checkAt(ctx context.Context, req CheckRequest, consistency *v1.Consistency) (bool, error) {
	var caveatCtx *structpb.Struct
	if req.Context != nil {
		var err error
		if caveatCtx, err = structpb.NewStruct(req.Context); err != nil {
			return false, fmt.Errorf("check permission: caveat context: %w", err)
		}
	}
	resp, err := s.permissions.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: consistency,
		Resource:    toObject(req.Resource),
		Permission:  req.Permission,
		Subject:     toSubject(req.Subject),
		Context:     caveatCtx,
	})
	if err != nil {
		return false, wrapRPC("check permission", err)
	}
	// CONDITIONAL (context missing) is a "no": only HAS_PERMISSION allows.
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, nil
}

func (s *SpiceDB) CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error) {
	return s.callableToolsAt(ctx, hostKey, serverKey, agentID, s.consistency(""))
}

// callableToolsAt is CallableTools with the given consistency.
func (s *SpiceDB) callableToolsAt(ctx context.Context, hostKey, serverKey, agentID string, consistency *v1.Consistency) ([]string, error) {
	stream, err := s.permissions.LookupResources(ctx, &v1.LookupResourcesRequest{
		Consistency:        consistency,
		ResourceObjectType: schema.TypeTool,
		Permission:         schema.PermToolCall,
		Subject:            toSubject(schema.SubjectRef{Object: schema.Agent(hostKey, agentID)}),
	})
	if err != nil {
		return nil, wrapRPC("lookup tools", err)
	}
	prefix := schema.Server(hostKey, serverKey).ID + "/"
	var names []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, wrapRPC("lookup tools", err)
		}
		// A tool with argument conditions is conditional here (no call's arguments are known):
		// it is callable with arguments that meet them, and each call is checked with its own.
		switch resp.GetPermissionship() {
		case v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION, v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		default:
			continue
		}
		encoded, ok := strings.CutPrefix(resp.GetResourceObjectId(), prefix)
		if !ok {
			continue
		}
		name, err := schema.DecodeID(encoded)
		if err != nil {
			return nil, fmt.Errorf("lookup tools: %w", err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func (s *SpiceDB) Ready(ctx context.Context) error {
	text, err := s.ReadSchema(ctx)
	if err != nil {
		return err
	}
	return CheckRequiredDefinitions(text)
}

// datastore is the embedded server's datastore (nil for a remote SpiceDB).
func (s *SpiceDB) datastore() dsapi.Datastore { return s.ds }

// datastoreLogger is the embedded server's logger (nil for a remote SpiceDB).
func (s *SpiceDB) datastoreLogger() *slog.Logger { return s.logger }

// onCloseHook makes Close call fn first.
func (s *SpiceDB) onCloseHook(fn func()) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.closeHooks = append(s.closeHooks, fn)
}

// Close closes the connection and stops an embedded server. Closing twice is harmless.
func (s *SpiceDB) Close() error {
	s.hooksMu.Lock()
	hooks := s.closeHooks
	s.closeHooks = nil
	s.hooksMu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	err := s.conn.Close()
	if status.Code(err) == codes.Canceled {
		err = nil // already closed
	}
	if s.onClose != nil {
		err = errors.Join(err, s.onClose())
	}
	return err
}

// advance records a newer ZedToken. Tokens from one SpiceDB are ordered by the writes that made
// them; the newest write wins, and concurrent writers keep whichever lands last, which is never
// older than either one's own write when that writer checks next.
func (s *SpiceDB) advance(token *v1.ZedToken) {
	if token != nil && token.GetToken() != "" {
		s.latest.Store(token)
	}
}

func (s *SpiceDB) currentRevision() Revision {
	if t := s.latest.Load(); t != nil {
		return Revision(t.GetToken())
	}
	return ""
}

// fullyConsistent reads at the datastore's head revision.
var fullyConsistent = &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}

// consistency is at-least-as-fresh as the given revision when one is given, else fully
// consistent. Being as fresh as this backend's own newest write is not enough: another replica
// on the same datastore may have written since (a revocation made there must deny here too),
// and SpiceDB would otherwise answer at a quantized revision up to seconds old.
func (s *SpiceDB) consistency(rev Revision) *v1.Consistency {
	if rev != "" {
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: string(rev)}}}
	}
	return fullyConsistent
}

func toObject(o schema.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func toSubject(s schema.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: toObject(s.Object), OptionalRelation: s.Relation}
}

func toRelationship(r schema.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{Resource: toObject(r.Resource), Relation: r.Relation, Subject: toSubject(r.Subject)}
	if r.Caveat != "" {
		var ctx map[string]any
		if err := json.Unmarshal([]byte(r.CaveatContext), &ctx); err != nil {
			return nil, fmt.Errorf("relationship %s: caveat context: %w", r.Key(), err)
		}
		st, err := structpb.NewStruct(ctx)
		if err != nil {
			return nil, fmt.Errorf("relationship %s: caveat context: %w", r.Key(), err)
		}
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat, Context: st}
	}
	return out, nil
}

func fromRelationship(r *v1.Relationship) schema.Relationship {
	out := schema.Relationship{
		Resource: schema.ObjectRef{Type: r.GetResource().GetObjectType(), ID: r.GetResource().GetObjectId()},
		Relation: r.GetRelation(),
		Subject: schema.SubjectRef{
			Object:   schema.ObjectRef{Type: r.GetSubject().GetObject().GetObjectType(), ID: r.GetSubject().GetObject().GetObjectId()},
			Relation: r.GetSubject().GetOptionalRelation(),
		},
	}
	if c := r.GetOptionalCaveat(); c != nil && c.GetCaveatName() != "" {
		out.Caveat = c.GetCaveatName()
		// Canonical as the store writes it: encoding/json sorts map keys.
		b, _ := json.Marshal(c.GetContext().AsMap())
		out.CaveatContext = string(b)
	}
	return out
}

// wrapRPC turns a gRPC failure into an error with context; transport failures wrap
// ErrUnavailable so that callers fail closed with a message that says so.
func wrapRPC(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("spicedb %s: %w", op, err)
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
		return fmt.Errorf("spicedb %s: %w: %s: %s", op, ErrUnavailable, st.Code(), st.Message())
	case codes.InvalidArgument, codes.FailedPrecondition:
		return fmt.Errorf("spicedb %s: %w: %s: %s", op, ErrRefused, st.Code(), st.Message())
	}
	return fmt.Errorf("spicedb %s: %s: %s", op, st.Code(), st.Message())
}
