package admin

import (
	"context"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Store is what the admin API needs of the store: the objects of the hosts it manages, their
// API tokens and audit log, the invitations of humans it adds, and the transactions of the
// catalog it builds when Config.Catalog is nil.
type Store interface {
	store.Admin
	store.Transactor
	store.AuthMethods
	store.Approvals
	store.Quarantine

	CreateHost(ctx context.Context, h store.Host) (store.Host, error)
	GetHost(ctx context.Context, key string) (store.Host, error)
	ListHosts(ctx context.Context) ([]store.Host, error)
	DeleteHost(ctx context.Context, key string) error

	CreateUser(ctx context.Context, u store.User) (store.User, error)
	GetUser(ctx context.Context, host, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, host, email string) (store.User, error)
	ListUsers(ctx context.Context, host string) ([]store.User, error)
	DeleteUser(ctx context.Context, host, id string) error

	GetServer(ctx context.Context, host, key string) (store.Server, error)
	ListServers(ctx context.Context, host string) ([]store.Server, error)
	DeleteServer(ctx context.Context, host, key string) error

	GetTool(ctx context.Context, host, server, name string) (store.Tool, error)
	SetToolConditions(ctx context.Context, host, server, name string, c schema.ArgumentConditions) (store.Tool, error)
	ListTools(ctx context.Context, host, server string) ([]store.Tool, error)
	DeleteTool(ctx context.Context, host, server, name string) error

	SetGrant(ctx context.Context, g store.Grant) (store.Grant, error)
	GetGrant(ctx context.Context, host, server, userID string) (store.Grant, error)
	ListGrants(ctx context.Context, host, userID string) ([]store.Grant, error)
	DeleteGrant(ctx context.Context, host, server, userID string) error

	GetAgent(ctx context.Context, host, id string) (store.Agent, error)
	ListAgents(ctx context.Context, host, userID string) ([]store.Agent, error)

	SetConsent(ctx context.Context, c store.Consent) (store.Consent, error)
	GetConsent(ctx context.Context, host, agentID, server string) (store.Consent, error)
	ListConsents(ctx context.Context, host, agentID string) ([]store.Consent, error)
	DeleteConsent(ctx context.Context, host, agentID, server string) error

	ListAudit(ctx context.Context, f audit.Filter, cursor int64, limit int) ([]audit.Entry, error)
	PutInvitation(ctx context.Context, inv store.Invitation) (store.Invitation, error)
}
