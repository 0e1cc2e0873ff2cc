package fositestore

import (
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/trustgate/trustgate/store"
)

// Lifespans of what the provider issues.
const (
	DefaultAccessTokenLifespan = time.Hour
	AuthorizeCodeLifespan      = 5 * time.Minute
	// RefreshTokenLifespan is fosite's lifespan of a refresh token, a backstop: the store stores
	// a refresh token with the end of its session (see SessionLimits) when that is earlier, as
	// it is with any limits up to a year.
	RefreshTokenLifespan = 366 * 24 * time.Hour
)

// ProviderConfig configures NewProvider.
type ProviderConfig struct {
	// GlobalSecret is the HMAC key of codes and refresh tokens (and, until the JWT strategy is
	// plugged in, access tokens): at least 32 bytes.
	GlobalSecret []byte
	// RotatedGlobalSecrets still validate codes and tokens made with them.
	RotatedGlobalSecrets [][]byte
	// AccessTokenLifespan defaults to DefaultAccessTokenLifespan.
	AccessTokenLifespan time.Duration
	// DefaultScopes, Audience, Now and SessionLimits: see Options.
	DefaultScopes []string
	Audience      func(host string) []string
	Now           func() time.Time
	SessionLimits SessionLimits
	// TokenURL is the token endpoint's URL (the audience of client assertions, unused today).
	TokenURL string
	// AccessTokenStrategy, when set, makes the access tokens (JWTs): it gets the provider's
	// fosite configuration and its HMAC strategy (which keeps making codes and refresh tokens).
	AccessTokenStrategy func(config *fosite.Config, hmac *oauth2.HMACSHAStrategy) oauth2.AccessTokenStrategy
}

// strategy is the CoreStrategy handed to fosite: access tokens from one strategy, codes and
// refresh tokens from the HMAC strategy.
type strategy struct {
	oauth2.AccessTokenStrategy
	oauth2.RefreshTokenStrategy
	oauth2.AuthorizeCodeStrategy
}

// NewProvider composes trustgate's OAuth 2.1 provider over st: the authorization code grant
// with PKCE (S256 only, required of every client), the refresh token grant (refresh tokens
// always issued, rotated on every use, a second use revoking the grant), token introspection (RFC 7662) and
// revocation (RFC 7009). No implicit, password or client credentials grant.
//
// Requests must carry their host in the context (WithHost). The store keeps client secrets as
// hex SHA-256, which the provider's SHA256Hasher compares.
func NewProvider(st store.OAuth, cfg ProviderConfig) (fosite.OAuth2Provider, error) {
	if len(cfg.GlobalSecret) < 32 {
		return nil, fmt.Errorf("fositestore: the global secret has %d bytes, want at least 32", len(cfg.GlobalSecret))
	}
	for i, s := range cfg.RotatedGlobalSecrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("fositestore: rotated global secret %d has %d bytes, want at least 32", i+1, len(s))
		}
	}
	atLifespan := cfg.AccessTokenLifespan
	if atLifespan <= 0 {
		atLifespan = DefaultAccessTokenLifespan
	}
	config := &fosite.Config{
		AccessTokenLifespan:            atLifespan,
		AuthorizeCodeLifespan:          AuthorizeCodeLifespan,
		RefreshTokenLifespan:           RefreshTokenLifespan,
		GlobalSecret:                   cfg.GlobalSecret,
		RotatedGlobalSecrets:           cfg.RotatedGlobalSecrets,
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{}, // every grant gets a refresh token
		SendDebugMessagesToClients:     false,
		ClientSecretsHasher:            SHA256Hasher{},
		// Set rather than left to fosite's getters, which set their defaults lazily (a data
		// race under concurrent requests).
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		TokenURL:                 cfg.TokenURL,
	}
	hmacStrategy := compose.NewOAuth2HMACStrategy(config)
	var access oauth2.AccessTokenStrategy = hmacStrategy
	if cfg.AccessTokenStrategy != nil {
		access = cfg.AccessTokenStrategy(config, hmacStrategy)
	}
	storage := New(st, Options{
		DefaultScopes: cfg.DefaultScopes,
		Audience:      cfg.Audience,
		Now:           cfg.Now,
		SessionLimits: cfg.SessionLimits,
	})
	return compose.Compose(config, storage,
		&strategy{AccessTokenStrategy: access, RefreshTokenStrategy: refreshStrategy{hmacStrategy, storage}, AuthorizeCodeStrategy: hmacStrategy},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory, // after the code handler: it needs the code
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	), nil
}
