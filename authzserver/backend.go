// Package authzserver is trustgate's relationship-based authorization service: the Backend
// interface every authorization engine implements, the SpiceDB implementation (embedded in
// process or remote), decorators over a Backend (NewDecisionCache, NewMetrics), and the
// relationship writer that keeps SpiceDB equal to the store.
package authzserver

import (
	"context"
	"errors"

	"github.com/trustgate/trustgate/schema"
)

// ErrUnavailable marks a failure to reach the authorization engine. Callers deny (fail closed).
var ErrUnavailable = errors.New("authorization backend unavailable")

// ErrRefused marks a write the authorization engine refuses for good: asking again will not
// help (SpiceDB: a relationship its schema does not accept, a failed precondition; Permit: a
// request it answers 400 or 422, or a relationship it cannot represent). The relationship
// writer sets such changes aside (Writer.Sync) so that the changes behind them are applied.
var ErrRefused = errors.New("authorization backend refused the change")

// Revision identifies a point in the backend's history (SpiceDB: a ZedToken). A check made at
// least as fresh as the revision of a write sees that write.
type Revision string

// Operation is what an Update does to its relationship.
type Operation int

const (
	// OpTouch makes the relationship exist (idempotent).
	OpTouch Operation = iota + 1
	// OpDelete makes the relationship not exist (idempotent).
	OpDelete
)

func (o Operation) String() string {
	switch o {
	case OpTouch:
		return "touch"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Update is one relationship change.
type Update struct {
	Op           Operation
	Relationship schema.Relationship
}

// CheckRequest asks whether subject has permission on resource.
type CheckRequest struct {
	Resource   schema.ObjectRef
	Permission string
	Subject    schema.SubjectRef
	// AtLeastAsFresh, when set, makes the check see every write up to that revision. When
	// empty the backend uses the newest revision it wrote itself (or full consistency).
	AtLeastAsFresh Revision
	// Context is the caveat context of the check (a tool with argument conditions: the call's
	// arguments, schema.ArgumentConditions.CheckContext); nil for none. A check whose answer
	// depends on context it was not given is a "no".
	Context map[string]any
}

// Backend is an authorization engine. It knows relationships and answers checks; it knows
// nothing of HTTP, OAuth or the store. Implementations must be safe for concurrent use and must
// return errors wrapping ErrUnavailable when the engine cannot be reached.
type Backend interface {
	// WriteRelationships applies the updates and returns the revision that contains them all.
	// A batch that fits in one request of the engine (SpiceDB: 1000 updates) is applied
	// atomically; a larger one is applied in order, one request at a time. A batch must not
	// name the same relationship twice.
	WriteRelationships(ctx context.Context, updates []Update) (Revision, error)
	// DeleteRelationships removes the relationships (those absent are ignored).
	DeleteRelationships(ctx context.Context, rels []schema.Relationship) (Revision, error)
	// ReadRelationships calls fn for every relationship whose resource is of resourceType.
	ReadRelationships(ctx context.Context, resourceType string, fn func(schema.Relationship) error) error
	// Check answers one permission question.
	Check(ctx context.Context, req CheckRequest) (bool, error)
	// CallableTools lists the names of the tools of one server that the agent may call, in
	// one request to the engine (not one check per tool).
	CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error)
	// Ready reports whether the engine answers and holds trustgate's schema.
	Ready(ctx context.Context) error
	// Close releases the backend's connections.
	Close() error
}
