package authzserver

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trustgate/trustgate/schema"
)

// RemoveLegacyCeilings deletes the ceilings of the schema before per-agent ceilings
// (mcp_server#ceiling_<level>@user:…#agent) from a datastore that holds them, and returns how many
// it removed. SpiceDB refuses a schema that drops a subject type relationships still use, so it
// runs before WriteSchema; the start-up reconciliation then writes each consenting agent's copy of
// its human's ceiling. Until then checks of those agents are denied: it fails closed.
//
// A datastore without a schema, or whose schema never allowed user#agent ceilings, is left alone.
func (s *SpiceDB) RemoveLegacyCeilings(ctx context.Context) (int, error) {
	resp, err := s.schemas.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return 0, nil // nothing written yet
	}
	if err != nil {
		return 0, fmt.Errorf("remove legacy ceilings: %w", wrapRPC("read schema", err))
	}
	compiled, err := compileSchema(resp.GetSchemaText())
	if err != nil {
		return 0, fmt.Errorf("remove legacy ceilings: the schema SpiceDB holds: %w", err)
	}
	removed := 0
	for _, l := range schema.Levels {
		relation := "ceiling_" + l.String()
		if !allowsSubject(compiled, schema.TypeServer, relation, schema.TypeUser, schema.RelUserAgent) {
			continue
		}
		for {
			resp, err := s.permissions.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
				RelationshipFilter: &v1.RelationshipFilter{
					ResourceType:     schema.TypeServer,
					OptionalRelation: relation,
					OptionalSubjectFilter: &v1.SubjectFilter{
						SubjectType:      schema.TypeUser,
						OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: schema.RelUserAgent},
					},
				},
				OptionalLimit:                 maxUpdatesPerWrite,
				OptionalAllowPartialDeletions: true,
			})
			if err != nil {
				return removed, fmt.Errorf("remove legacy ceilings: %w", wrapRPC("delete relationships", err))
			}
			s.advance(resp.GetDeletedAt())
			removed += int(resp.GetRelationshipsDeletedCount())
			if resp.GetDeletionProgress() != v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL {
				break
			}
		}
	}
	return removed, nil
}
