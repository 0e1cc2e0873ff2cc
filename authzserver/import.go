package authzserver

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/trustgate/trustgate/schema"
)

// Import is a bulk import in progress (SpiceDB's ImportBulkRelationships): one stream and one
// transaction on the datastore's bulk path (PostgreSQL: COPY), for loading relationships that do
// not exist yet much faster than WriteRelationships. Close commits all of them; when a
// relationship already exists, or Abort is called, none is created. SpiceDB ends a stream
// after its streaming timeout (30 s by default): import large sets in several imports (the
// sweep's loader sends 2×10^4 relationships per import).
type Import struct {
	stream v1.PermissionsService_ImportBulkRelationshipsClient
	cancel context.CancelFunc
}

// StartImport begins a bulk import.
func (s *SpiceDB) StartImport(ctx context.Context) (*Import, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := s.permissions.ImportBulkRelationships(ctx)
	if err != nil {
		cancel()
		return nil, wrapRPC("import relationships", err)
	}
	return &Import{stream: stream, cancel: cancel}, nil
}

// Send adds relationships to the import.
func (i *Import) Send(rels []schema.Relationship) error {
	if len(rels) == 0 {
		return nil
	}
	req := &v1.ImportBulkRelationshipsRequest{Relationships: make([]*v1.Relationship, 0, len(rels))}
	for _, r := range rels {
		rel, err := toRelationship(r)
		if err != nil {
			return fmt.Errorf("import relationships: %w", err)
		}
		req.Relationships = append(req.Relationships, rel)
	}
	if err := i.stream.Send(req); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream: its status says why.
			_, err = i.stream.CloseAndRecv()
		}
		i.cancel()
		return wrapRPC("import relationships", err)
	}
	return nil
}

// Close commits the import and returns how many relationships it created. SpiceDB returns no
// revision for an import: a write made after it returns one that contains it.
func (i *Import) Close() (int, error) {
	defer i.cancel()
	resp, err := i.stream.CloseAndRecv()
	if err != nil {
		return 0, wrapRPC("import relationships", err)
	}
	return int(resp.GetNumLoaded()), nil
}

// Abort ends the import without creating anything.
func (i *Import) Abort() { i.cancel() }
