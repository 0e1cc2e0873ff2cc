// Package protectedmcp runs, for tests, an upstream MCP server protected by its own OAuth 2.1
// authorization server, as an upstream that trustgate signs humans in to looks: the
// authorization server is real fosite (composed like trustgate's: authorization code with PKCE
// S256, refresh tokens, introspection) on fosite's in-memory storage, with RFC 8414 metadata
// and, optionally, RFC 7591 registration; the MCP server (the official Go SDK, internal/testkit/mcpserver's
// issue tracker) answers 401 with an RFC 9728 resource_metadata challenge unless the request
// carries an access token the authorization server issued.
package protectedmcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// Options configure Start.
type Options struct {
	// DCR offers RFC 7591 registration at /register.
	DCR bool
	// AccessTokenTTL is the lifetime of access tokens (default one hour).
	AccessTokenTTL time.Duration
}

// AS is the running authorization server and the MCP server it protects.
type AS struct {
	t        testing.TB
	URL      string // the authorization server's issuer
	MCPURL   string // the protected MCP server's endpoint
	Upstream *mcpserver.Upstream

	provider fosite.OAuth2Provider
	store    *memStore

	// Counters and switches a test reads and sets.
	Registrations atomic.Int64 // clients registered with DCR
	Refreshes     atomic.Int64 // refresh-token grants answered (successfully or not)
	FailRefresh   atomic.Bool  // refuse every refresh with invalid_grant
	// MCPTokens counts MCP requests by the access token they carried ("" when none).
	mu         sync.Mutex
	revoked    map[string]bool
	mcpTokens  map[string]int
	resources  []string // the resource parameters of authorization requests
	tokenUsers []string // client ids seen at the token endpoint
}

// memStore is fosite's in-memory storage with clients registered at run time kept apart
// (fosite's map is guarded by a lock of its own that registration cannot take).
type memStore struct {
	*storage.MemoryStore
	clients sync.Map // id → fosite.Client
}

func (s *memStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if c, ok := s.clients.Load(id); ok {
		return c.(fosite.Client), nil
	}
	return s.MemoryStore.GetClient(ctx, id)
}

type strategy struct {
	oauth2.AccessTokenStrategy
	oauth2.RefreshTokenStrategy
	oauth2.AuthorizeCodeStrategy
}

// Scope is the scope the upstream advertises and grants.
const Scope = "issues"

// Start runs the authorization server and the protected MCP server.
func Start(t testing.TB, opts Options) *AS {
	t.Helper()
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	config := &fosite.Config{
		AccessTokenLifespan:      opts.AccessTokenTTL,
		AuthorizeCodeLifespan:    5 * time.Minute,
		RefreshTokenLifespan:     24 * time.Hour,
		GlobalSecret:             secret,
		EnforcePKCE:              true,
		RefreshTokenScopes:       []string{},
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:      plainHasher{},
	}
	hmac := compose.NewOAuth2HMACStrategy(config)
	as := &AS{t: t, store: &memStore{MemoryStore: storage.NewMemoryStore()}, mcpTokens: map[string]int{}, revoked: map[string]bool{}}
	as.provider = compose.Compose(config, as.store,
		&strategy{AccessTokenStrategy: hmac, RefreshTokenStrategy: hmac, AuthorizeCodeStrategy: hmac},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
	)

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	as.URL = srv.URL
	config.TokenURL = srv.URL + "/token"
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		md := map[string]any{
			"issuer": as.URL, "authorization_endpoint": as.URL + "/authorize", "token_endpoint": as.URL + "/token",
			"response_types_supported": []string{"code"}, "grant_types_supported": []string{"authorization_code", "refresh_token"},
			"code_challenge_methods_supported":      []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
			"scopes_supported":                      []string{Scope},
		}
		if opts.DCR {
			md["registration_endpoint"] = as.URL + "/register"
		}
		writeJSON(w, http.StatusOK, md)
	})
	if opts.DCR {
		mux.HandleFunc("POST /register", as.register)
	}
	mux.HandleFunc("GET /authorize", as.authorize)
	mux.HandleFunc("POST /token", as.token)

	// The protected MCP server.
	as.Upstream = mcpserver.Start(t, "")
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return as.Upstream.Server }, nil)
	umux := http.NewServeMux()
	up := httptest.NewServer(umux)
	t.Cleanup(up.Close)
	as.MCPURL = up.URL + "/mcp"
	prm := up.URL + "/.well-known/oauth-protected-resource/mcp"
	umux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"resource": as.MCPURL, "authorization_servers": []string{as.URL}, "scopes_supported": []string{Scope}})
	})
	umux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		tok := fosite.AccessTokenFromRequest(r)
		as.mu.Lock()
		as.mcpTokens[tok]++
		as.mu.Unlock()
		as.mu.Lock()
		revoked := as.revoked[tok]
		as.mu.Unlock()
		if tok == "" || revoked || !as.Valid(r.Context(), tok) {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+prm+`", scope="`+Scope+`"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r)
	})
	return as
}

// plainHasher compares client secrets as stored (the test's secrets are random and in memory).
type plainHasher struct{}

func (plainHasher) Compare(_ context.Context, hash, data []byte) error {
	if string(hash) != string(data) {
		return fosite.ErrInvalidClient
	}
	return nil
}
func (plainHasher) Hash(_ context.Context, data []byte) ([]byte, error) { return data, nil }

// AddClient registers a client directly (as an administrator of the upstream would) and
// returns its id; secret "" makes a public client.
func (as *AS) AddClient(id, secret, redirectURI string) {
	as.store.clients.Store(id, &fosite.DefaultClient{
		ID: id, Secret: []byte(secret), Public: secret == "", RedirectURIs: []string{redirectURI},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{Scope},
	})
}

func (as *AS) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
		AuthMethod   string   `json:"token_endpoint_auth_method"`
		ClientName   string   `json:"client_name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil || len(req.RedirectURIs) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata"})
		return
	}
	id := "dcr-" + randomHex()
	secret := ""
	if req.AuthMethod != "none" {
		secret = randomHex()
	}
	as.AddClient(id, secret, req.RedirectURIs[0])
	as.Registrations.Add(1)
	out := map[string]any{"client_id": id, "redirect_uris": req.RedirectURIs, "token_endpoint_auth_method": req.AuthMethod, "client_name": req.ClientName}
	if secret != "" {
		out["client_secret"] = secret
	}
	writeJSON(w, http.StatusCreated, out)
}

// authorize approves at once, as a human who is signed in at the upstream and consents.
func (as *AS) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := as.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		as.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	as.mu.Lock()
	as.resources = append(as.resources, r.URL.Query().Get("resource"))
	as.mu.Unlock()
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	resp, err := as.provider.NewAuthorizeResponse(ctx, ar, &fosite.DefaultSession{Subject: "upstream-human"})
	if err != nil {
		as.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	as.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (as *AS) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	isRefresh := r.PostFormValue("grant_type") == "refresh_token"
	if isRefresh {
		as.Refreshes.Add(1)
	}
	req, err := as.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
	if err == nil && isRefresh && as.FailRefresh.Load() {
		err = fosite.ErrInvalidGrant.WithHint("The refresh token was revoked.")
	}
	if err != nil {
		as.provider.WriteAccessError(ctx, w, req, err)
		return
	}
	as.mu.Lock()
	as.tokenUsers = append(as.tokenUsers, req.GetClient().GetID())
	as.mu.Unlock()
	for _, s := range req.GetRequestedScopes() {
		req.GrantScope(s)
	}
	resp, err := as.provider.NewAccessResponse(ctx, req)
	if err != nil {
		as.provider.WriteAccessError(ctx, w, req, err)
		return
	}
	as.provider.WriteAccessResponse(ctx, w, req, resp)
}

// Valid reports whether the authorization server issued tok and it is active.
func (as *AS) Valid(ctx context.Context, tok string) bool {
	_, _, err := as.provider.IntrospectToken(ctx, tok, fosite.AccessToken, &fosite.DefaultSession{})
	return err == nil
}

// Revoke makes the MCP server refuse tok from now on (as an upstream revoking a grant does).
func (as *AS) Revoke(tok string) {
	as.mu.Lock()
	as.revoked[tok] = true
	as.mu.Unlock()
}

// MCPRequests is how many MCP requests carried tok.
func (as *AS) MCPRequests(tok string) int {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.mcpTokens[tok]
}

// MCPTokens are the distinct access tokens MCP requests carried (without "").
func (as *AS) MCPTokens() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	var out []string
	for k := range as.mcpTokens {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Resources are the resource parameters of the authorization requests so far.
func (as *AS) Resources() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.resources...)
}

// TokenClients are the client ids that obtained tokens so far.
func (as *AS) TokenClients() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.tokenUsers...)
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
