package oauthserver

import (
	"context"
	"time"

	"github.com/trustgate/trustgate/store"
)

// Store is what the OAuth server needs of the store: its clients, codes and tokens, pending
// authorization requests and invitations; the host's sign-in methods; the humans who sign in
// (and sign up) and their passwords; the
// host, servers, tools and grants a consent is given on, and the agents and consents it
// records; and the transactions of the catalog it builds when ServerConfig.Catalog is nil.
type Store interface {
	store.OAuth
	store.AuthorizeRequests
	store.Invitations
	store.UsedOnce // SAML assertions and requests, used once
	store.SSOStates
	store.BrowserSessions
	store.EmailCodes // one-time codes sent by email (emailcode.go)
	store.Passkeys
	store.Transactor

	GetHost(ctx context.Context, key string) (store.Host, error)

	ListAuthMethods(ctx context.Context, host string) ([]store.AuthMethod, error)

	CreateUser(ctx context.Context, u store.User) (store.User, error)
	GetUser(ctx context.Context, host, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, host, email string) (store.User, error)
	GetUserPasswordHash(ctx context.Context, host, id string) (string, error)
	SetUserPassword(ctx context.Context, host, id, phc string) error
	TouchUser(ctx context.Context, host, id string, at time.Time) error

	GetServer(ctx context.Context, host, key string) (store.Server, error)
	ListServers(ctx context.Context, host string) ([]store.Server, error)
	ListTools(ctx context.Context, host, server string) ([]store.Tool, error)
	GetGrant(ctx context.Context, host, server, userID string) (store.Grant, error)
	ListGrants(ctx context.Context, host, userID string) ([]store.Grant, error)

	CreateAgent(ctx context.Context, a store.Agent) (store.Agent, error)
	GetAgent(ctx context.Context, host, id string) (store.Agent, error)
	ListAgents(ctx context.Context, host, userID string) ([]store.Agent, error)
	SetConsent(ctx context.Context, c store.Consent) (store.Consent, error)
}
