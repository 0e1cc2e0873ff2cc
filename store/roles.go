package store

import (
	"context"

	"github.com/trustgate/trustgate/schema"
)

// The role interfaces below are the parts of Store one consumer needs; Store embeds them, so
// an opened store satisfies every one of them. A consumer takes the narrowest that serves it.

// HotReads are the control-plane reads of the MCP hot path: what the proxy reads to decide on
// a message, audit it and check the token that carries it. Package cache decorates them.
type HotReads interface {
	// ControlGeneration is Store.ControlGeneration: equal numbers mean these reads are unchanged.
	ControlGeneration(ctx context.Context) (int64, error)

	GetHost(ctx context.Context, key string) (Host, error)
	GetUser(ctx context.Context, host, id string) (User, error)
	GetServer(ctx context.Context, host, key string) (Server, error)
	GetTool(ctx context.Context, host, server, name string) (Tool, error)
	ListTools(ctx context.Context, host, server string) ([]Tool, error)
	GetGrant(ctx context.Context, host, server, userID string) (Grant, error)
	ListGrants(ctx context.Context, host, userID string) ([]Grant, error)
	GetAgent(ctx context.Context, host, id string) (Agent, error)
	GetConsent(ctx context.Context, host, agentID, server string) (Consent, error)
	ListConsents(ctx context.Context, host, agentID string) ([]Consent, error)

	// OAuthTokenRevoked is OAuth.OAuthTokenRevoked.
	OAuthTokenRevoked(ctx context.Context, tokenID, grantID string) (bool, error)
}

// RelationshipSource is what the relationship writer reads: the relationships the data
// implies and the outbox of their changes.
type RelationshipSource interface {
	Relationships(ctx context.Context, fn func(schema.Relationship) error) error
	DrainRelationshipChanges(ctx context.Context, limit int, apply func(ctx context.Context, changes []RelationshipChange) error) (int, error)
	PendingRelationshipHosts(ctx context.Context) ([]PendingHost, error)
}

// Quarantine is what resolves the relationship changes the authorization backend refused for
// good (see SetAside): the CLI's trustgate admin outbox and the admin API.
type Quarantine interface {
	ListQuarantinedChanges(ctx context.Context, host string) ([]QuarantinedChange, error)
	DiscardQuarantinedChange(ctx context.Context, id int64) (QuarantinedChange, error)
	RetryQuarantinedChange(ctx context.Context, id int64) (QuarantinedChange, ChangeOp, error)
}

// Store satisfies every role.
var (
	_ HotReads           = Store(nil)
	_ RelationshipSource = Store(nil)
	_ Quarantine         = Store(nil)
)
