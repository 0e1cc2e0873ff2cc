package authzserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/datalayer"
	"github.com/authzed/spicedb/pkg/zedtoken"

	"github.com/trustgate/trustgate/schema"
)

// Explainer is an optional capability of a Backend: a tool call's check answered together with
// the engine's own trace of it and the relationships the check can rest on, all read at the
// one revision the check was answered at. The SpiceDB backend implements it; a backend that
// cannot trace its checks (Permit) does not, and callers say that an explanation from the
// engine is not available.
type Explainer interface {
	ExplainToolCall(ctx context.Context, hostKey, serverKey, tool, agentID string) (ToolCallTrace, error)
}

// ToolCallTrace is a check of tool#call for an agent with how the engine decided it.
type ToolCallTrace struct {
	Allowed bool
	// Revision is the revision the check and the reads were answered at.
	Revision Revision
	// Trace is the engine's trace of the check: the permission asked, and beneath it each
	// permission and relation it evaluated with its result.
	Trace TraceStep
	// TraceTruncated says the trace had more than MaxTraceSteps steps; the rest are left out.
	TraceTruncated bool
	// Relationships are those the check can rest on, as they are at Revision: the tool's level
	// on its server, the server's host, the agent's owner and host membership, the owner's
	// side of the user#agent link, the agent's grants and its copies of the owner's ceiling on
	// the server.
	Relationships []schema.Relationship
}

// TraceResult is a trace step's result.
type TraceResult string

const (
	TraceHasPermission TraceResult = "has_permission"
	TraceNoPermission  TraceResult = "no_permission"
	TraceConditional   TraceResult = "conditional"
	TraceUnspecified   TraceResult = "unspecified"
)

// TraceStep is one permission or relation the engine evaluated for the check's subject.
type TraceStep struct {
	Resource schema.ObjectRef
	// Name is the permission's or the relation's name; Relation says which it is.
	Name     string
	Relation bool
	Result   TraceResult
	// Cached says the engine reused an earlier result instead of evaluating Steps.
	Cached bool
	Steps  []TraceStep
}

// MaxTraceSteps bounds the steps of a ToolCallTrace kept from the engine's trace (trustgate's
// schema needs a few dozen).
const MaxTraceSteps = 512

var _ Explainer = (*SpiceDB)(nil)

// ExplainToolCall checks tool#call with SpiceDB's tracing on and reads, at the revision that
// answered, the relationships a tool call's check can rest on.
func (s *SpiceDB) ExplainToolCall(ctx context.Context, hostKey, serverKey, tool, agentID string) (ToolCallTrace, error) {
	agent := schema.Agent(hostKey, agentID)
	consistency, err := s.traceConsistency(ctx)
	if err != nil {
		return ToolCallTrace{}, err
	}
	resp, err := s.permissions.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: consistency,
		Resource:    toObject(schema.Tool(hostKey, serverKey, tool)),
		Permission:  schema.PermToolCall,
		Subject:     toSubject(schema.SubjectRef{Object: agent}),
		WithTracing: true,
	})
	if err != nil {
		return ToolCallTrace{}, wrapRPC("explain check", err)
	}
	out := ToolCallTrace{
		Allowed:  resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		Revision: Revision(resp.GetCheckedAt().GetToken()),
	}
	budget := MaxTraceSteps
	if root := resp.GetDebugTrace().GetCheck(); root != nil {
		out.Trace = convertTrace(root, &budget)
	} else {
		out.Trace = TraceStep{Resource: schema.Tool(hostKey, serverKey, tool), Name: schema.PermToolCall, Result: resultOf(out.Allowed)}
	}
	out.TraceTruncated = budget < 0

	at := &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: resp.GetCheckedAt()}}
	if resp.GetCheckedAt() == nil {
		at = fullyConsistent
	}
	server := schema.Server(hostKey, serverKey)
	filters := []*v1.RelationshipFilter{
		{ResourceType: schema.TypeTool, OptionalResourceId: schema.Tool(hostKey, serverKey, tool).ID},
		{ResourceType: schema.TypeServer, OptionalResourceId: server.ID, OptionalRelation: schema.RelServerHost},
		{ResourceType: schema.TypeServer, OptionalResourceId: server.ID, OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: schema.TypeAgent, OptionalSubjectId: agent.ID}},
		{ResourceType: schema.TypeHost, OptionalResourceId: hostKey, OptionalRelation: schema.RelHostAgent, OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: schema.TypeAgent, OptionalSubjectId: agent.ID}},
		{ResourceType: schema.TypeAgent, OptionalResourceId: agent.ID, OptionalRelation: schema.RelAgentOwner},
	}
	for _, f := range filters {
		if out.Relationships, err = s.readFiltered(ctx, at, f, out.Relationships); err != nil {
			return ToolCallTrace{}, err
		}
	}
	// The owner's side: user#agent for this agent (the agent's own relationships on the server,
	// read above, carry its copy of the owner's ceiling).
	for _, r := range out.Relationships {
		if r.Resource != agent || r.Relation != schema.RelAgentOwner {
			continue
		}
		owner := r.Subject.Object
		f := &v1.RelationshipFilter{ResourceType: owner.Type, OptionalResourceId: owner.ID, OptionalRelation: schema.RelUserAgent, OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: schema.TypeAgent, OptionalSubjectId: agent.ID}}
		if out.Relationships, err = s.readFiltered(ctx, at, f, out.Relationships); err != nil {
			return ToolCallTrace{}, err
		}
		break
	}
	return out, nil
}

// traceConsistency is the consistency of an explained check. SpiceDB's dispatch cache keys
// answers by revision, and a check the proxy already made at the head revision would be traced
// as one cached step. On the embedded memory datastore every moment since the head is a valid
// revision holding the same relationships, so the check is asked at the present moment, which
// no check has used yet, and each step is evaluated. Elsewhere it is fully consistent (its
// steps may be cached).
func (s *SpiceDB) traceConsistency(ctx context.Context) (*v1.Consistency, error) {
	if !s.memory || s.ds == nil {
		return fullyConsistent, nil
	}
	head, err := s.ds.HeadRevision(ctx)
	if err != nil {
		return nil, fmt.Errorf("explain: spicedb head revision: %w: %v", ErrUnavailable, err)
	}
	now, err := s.ds.RevisionFromString(strconv.FormatInt(time.Now().UnixNano(), 10))
	if err != nil || !now.GreaterThan(head.Revision) {
		return fullyConsistent, nil
	}
	token, err := zedtoken.NewFromRevision(ctx, now, datalayer.SchemaHash(head.SchemaHash), s.ds)
	if err != nil {
		return nil, fmt.Errorf("explain: revision token: %w", err)
	}
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: token}}, nil
}

// maxExplainRelationships bounds each read of ExplainToolCall: the relationships one check can
// rest on are a handful.
const maxExplainRelationships = 64

// readFiltered appends the relationships matching f at consistency to rels (at most
// maxExplainRelationships of them).
func (s *SpiceDB) readFiltered(ctx context.Context, at *v1.Consistency, f *v1.RelationshipFilter, rels []schema.Relationship) ([]schema.Relationship, error) {
	stream, err := s.permissions.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency: at, RelationshipFilter: f, OptionalLimit: maxExplainRelationships,
	})
	if err != nil {
		return nil, wrapRPC("explain: read relationships", err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rels, nil
		}
		if err != nil {
			return nil, wrapRPC("explain: read relationships", err)
		}
		rels = append(rels, fromRelationship(resp.GetRelationship()))
	}
}

// convertTrace is SpiceDB's trace as trustgate's, spending at most *budget steps (below zero:
// some were left out).
func convertTrace(t *v1.CheckDebugTrace, budget *int) TraceStep {
	*budget--
	step := TraceStep{
		Resource: schema.ObjectRef{Type: t.GetResource().GetObjectType(), ID: t.GetResource().GetObjectId()},
		Name:     t.GetPermission(),
		Relation: t.GetPermissionType() == v1.CheckDebugTrace_PERMISSION_TYPE_RELATION,
		Cached:   t.GetWasCachedResult(),
	}
	switch t.GetResult() {
	case v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION:
		step.Result = TraceHasPermission
	case v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION:
		step.Result = TraceNoPermission
	case v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		step.Result = TraceConditional
	default:
		step.Result = TraceUnspecified
	}
	for _, sub := range t.GetSubProblems().GetTraces() {
		if *budget <= 0 {
			*budget = -1
			break
		}
		step.Steps = append(step.Steps, convertTrace(sub, budget))
	}
	return step
}

func resultOf(allowed bool) TraceResult {
	if allowed {
		return TraceHasPermission
	}
	return TraceNoPermission
}

// String renders a step as resource#name → result.
func (t TraceStep) String() string {
	return fmt.Sprintf("%s#%s → %s", t.Resource, t.Name, t.Result)
}
