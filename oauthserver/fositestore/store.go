// Package fositestore implements fosite's storage interfaces over trustgate's store.
//
// One Store serves every host: a code's or token's row carries its host, and the client a
// request names is read again from the store whenever the request is loaded, so a deleted
// client makes its codes and tokens unusable. GetClient alone needs the host from the context
// (WithHost); a row of another host than the context's is not found.
//
// Rows and their states (see store.OAuth):
//
//   - code: created active; used (inactive, RotatedAt set) by the exchange; a used code loads
//     with fosite.ErrInvalidatedAuthorizeCode, on which fosite revokes the grant.
//   - pkce: the code's challenge, deleted by the exchange.
//   - access: deleted on revocation and when the refresh token issued with it is rotated.
//   - refresh: rotated (inactive, RotatedAt set) by a refresh. From then on it loads with
//     fosite.ErrInactiveToken, on which fosite revokes the grant (reuse detection). There is no
//     grace window: a second use, however soon, is reuse, so that nobody replaying a refresh
//     token can fork a second token chain beside the first; of concurrent refreshes with one
//     token exactly one gets tokens.
//
// A grant is a gateway session, limited twice (see SessionLimits): it ends when it was not
// refreshed for the idle limit, and at the latest the absolute limit after consent. A refresh
// token's row records both times in its session, and its expiry is the earlier of the two ends;
// a refresh past either end fails with invalid_grant and revokes the grant, after which the
// client must run the authorization flow again.
//
// Revoking a grant (RevokeRefreshToken, RevokeAccessToken, or the store's RevokeOAuthBy…
// methods) deletes its access tokens and revokes its codes and refresh tokens (inactive,
// RotatedAt cleared), after which the store refuses new rows in the grant, so
// that a refresh racing the revocation mints nothing that survives it.
package fositestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"

	"github.com/trustgate/trustgate/store"
)

// Default limits of a gateway session (a grant and its refresh-token family).
const (
	// DefaultSessionIdleTTL ends a session not refreshed for this long.
	DefaultSessionIdleTTL = 30 * 24 * time.Hour
	// DefaultSessionMaxTTL ends a session this long after consent, however often it is used.
	DefaultSessionMaxTTL = 90 * 24 * time.Hour
)

// SessionLimits returns the idle and absolute limits of host's sessions; a value of zero or
// less is its default.
type SessionLimits func(ctx context.Context, host string) (idle, max time.Duration)

// Options configure a Store.
type Options struct {
	// DefaultScopes are the scopes a client may request when its metadata has no "scope".
	DefaultScopes []string
	// Audience returns the audiences (resource URLs) every client of host may be granted;
	// fosite checks a grant's audience against them on every refresh. Nil: none.
	Audience func(host string) []string
	// Now is the clock of rotations and session limits (tests); nil is
	// time.Now.
	Now func() time.Time
	// SessionLimits gives each host's session limits; nil means the defaults for every host.
	SessionLimits SessionLimits
}

// Store implements the fosite storage interfaces trustgate composes: fosite.ClientManager,
// oauth2.AuthorizeCodeStorage, oauth2.AccessTokenStorage, oauth2.RefreshTokenStorage,
// oauth2.TokenRevocationStorage and pkce.PKCERequestStorage.
type Store struct {
	st   store.OAuth
	opts Options
	jtis *jtiCache
}

var (
	_ fosite.ClientManager          = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
)

// New returns a Store over st.
func New(st store.OAuth, opts Options) *Store {
	return &Store{st: st, opts: opts, jtis: newJTICache()}
}

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC()
	}
	return time.Now().UTC()
}

type hostKey struct{}

// WithHost returns a context for requests to host (the tenant the HTTP request was addressed
// to): fosite's GetClient needs it, and codes and tokens of other hosts are not found in it.
func WithHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}

// HostFromContext returns the host WithHost put in ctx.
func HostFromContext(ctx context.Context) (string, bool) {
	h, ok := ctx.Value(hostKey{}).(string)
	return h, ok && h != ""
}

// --- fosite.ClientManager ---

// GetClient loads a client of the context's host.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	host, ok := HostFromContext(ctx)
	if !ok {
		return nil, errors.New("fositestore: no host in the request context (see WithHost)")
	}
	return s.client(ctx, host, id)
}

func (s *Store) client(ctx context.Context, host, id string) (*Client, error) {
	c, err := s.st.GetOAuthClient(ctx, host, id)
	if err != nil {
		return nil, storeErr(err)
	}
	cl := &Client{OAuthClient: c, Scopes: clientScopes(c.Metadata)}
	if cl.Scopes == nil {
		cl.Scopes = s.opts.DefaultScopes
	}
	if s.opts.Audience != nil {
		cl.Audience = s.opts.Audience(host)
	}
	return cl, nil
}

// ClientAssertionJWTValid reports fosite.ErrJTIKnown for a client assertion JTI already seen.
// JTIs are kept in memory (see jtiCache): trustgate's clients do not authenticate with
// private_key_jwt, so fosite never gets this far with one.
func (s *Store) ClientAssertionJWTValid(_ context.Context, jti string) error {
	return s.jtis.valid(jti, s.now())
}

// SetClientAssertionJWT records a client assertion JTI until exp.
func (s *Store) SetClientAssertionJWT(_ context.Context, jti string, exp time.Time) error {
	return s.jtis.set(jti, exp, s.now())
}

// --- authorization codes ---

func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, store.OAuthCode, signature, r, "")
}

// GetAuthorizeCodeSession returns the code's request; for a used or revoked code, the request
// together with fosite.ErrInvalidatedAuthorizeCode (fosite then revokes the grant).
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, row, err := s.load(ctx, store.OAuthCode, signature)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession marks the code used. Of concurrent exchanges of one code only
// the first succeeds; the others get fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	err := s.st.DeactivateOAuthRequest(ctx, store.OAuthCode, signature, s.now())
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", fosite.ErrInvalidatedAuthorizeCode, err)
	}
	return storeErr(err)
}

// --- PKCE ---

func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, store.OAuthPKCE, signature, r, "")
}

func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, _, err := s.load(ctx, store.OAuthPKCE, signature)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePKCERequestSession deletes the challenge; fosite.ErrNotFound when it is gone already
// (a concurrent exchange of the same code took it).
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return storeErr(s.st.DeleteOAuthRequest(ctx, store.OAuthPKCE, signature))
}

// --- access tokens ---

func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, store.OAuthAccess, signature, r, "")
}

func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, _, err := s.load(ctx, store.OAuthAccess, signature)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteAccessTokenSession deletes an access token; deleting one already gone is not an error.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return ignoreNotFound(s.st.DeleteOAuthRequest(ctx, store.OAuthAccess, signature))
}

// --- refresh tokens ---

// CreateRefreshTokenSession stores a refresh token with the signature of the access token
// issued with it, which its rotation deletes.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.create(ctx, store.OAuthRefresh, signature, r, accessSignature)
}

// GetRefreshTokenSession returns the refresh token's request. An inactive (rotated or revoked)
// token loads with fosite.ErrInactiveToken, on which fosite's refresh handler revokes the
// grant.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, row, err := s.load(ctx, store.OAuthRefresh, signature)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// DeleteRefreshTokenSession deletes a refresh token; deleting one already gone is not an error
// (fosite's reuse handling calls it before revoking the grant, which must happen regardless).
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return ignoreNotFound(s.st.DeleteOAuthRequest(ctx, store.OAuthRefresh, signature))
}

// RotateRefreshToken is called by a refresh before it stores the new pair: it makes the used
// refresh token inactive and deletes the access token issued with it (the JWT itself stays
// valid until it expires: a client may still have calls in flight with it). Of concurrent
// rotations of one token only the first succeeds; the others, and any rotation of an inactive
// token, are fosite.ErrInactiveToken.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	row, err := s.st.GetOAuthRequest(ctx, store.OAuthRefresh, signature)
	if err != nil {
		return storeErr(err)
	}
	if row.RequestID != requestID {
		return fmt.Errorf("refresh token of another grant: %w", fosite.ErrNotFound)
	}
	err = s.st.DeactivateOAuthRequest(ctx, store.OAuthRefresh, signature, s.now())
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrInactiveToken
	}
	if err != nil {
		return storeErr(err)
	}
	var sr storedRequest
	if err := decode(row.Data, &sr); err == nil && sr.AccessSignature != "" {
		if err := s.DeleteAccessTokenSession(ctx, sr.AccessSignature); err != nil {
			return err
		}
	}
	return nil
}

// sessionLimits returns host's session limits, defaults applied.
func (s *Store) sessionLimits(ctx context.Context, host string) (idle, max time.Duration) {
	if s.opts.SessionLimits != nil {
		idle, max = s.opts.SessionLimits(ctx, host)
	}
	if idle <= 0 {
		idle = DefaultSessionIdleTTL
	}
	if max <= 0 {
		max = DefaultSessionMaxTTL
	}
	return idle, max
}

// sessionEnd is when the session of a refresh token last used at lastUsed ends.
func (s *Store) sessionEnd(ctx context.Context, sess *Session, lastUsed time.Time) time.Time {
	idle, max := s.sessionLimits(ctx, sess.Host)
	end := lastUsed.Add(idle)
	if !sess.ConsentedAt.IsZero() {
		if abs := sess.ConsentedAt.Add(max); abs.Before(end) {
			end = abs
		}
	}
	return end
}

// checkSession reports whether the session of a loaded refresh token r is still open. When
// it ended, the grant is revoked and the error is fosite.ErrTokenExpired, which fosite's
// refresh handler answers with invalid_grant.
func (s *Store) checkSession(ctx context.Context, r fosite.Requester) error {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess == nil {
		return fosite.ErrTokenExpired.WithDebug("no trustgate session")
	}
	lastUsed := sess.LastUsedAt
	if lastUsed.IsZero() {
		lastUsed = r.GetRequestedAt()
	}
	if s.now().Before(s.sessionEnd(ctx, sess, lastUsed)) {
		return nil
	}
	return s.endSession(ctx, r)
}

// endSession revokes the grant of r, whose session ended, and returns fosite.ErrTokenExpired.
func (s *Store) endSession(ctx context.Context, r fosite.Requester) error {
	if err := s.RevokeRefreshToken(ctx, r.GetID()); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if err := s.RevokeAccessToken(ctx, r.GetID()); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return fosite.ErrTokenExpired.WithHint("The session ended: authorize again.")
}

// refreshStrategy is fosite's refresh-token strategy with the session limits: a refresh token
// whose session ended is expired, and its grant revoked.
type refreshStrategy struct {
	oauth2.RefreshTokenStrategy
	st *Store
}

// ValidateRefreshToken validates the token as fosite does, then its session. A token fosite
// finds expired (its stored expiry is its session's end) has its grant revoked too.
func (r refreshStrategy) ValidateRefreshToken(ctx context.Context, req fosite.Requester, token string) error {
	err := r.RefreshTokenStrategy.ValidateRefreshToken(ctx, req, token)
	if err != nil && !errors.Is(err, fosite.ErrTokenExpired) {
		return err
	}
	if serr := r.st.checkSession(ctx, req); serr != nil {
		return serr
	}
	if err != nil {
		return r.st.endSession(ctx, req)
	}
	return nil
}

// --- revocation ---

// RevokeRefreshToken revokes every refresh token and code of the grant.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := s.st.RevokeOAuthRequestsByRequestID(ctx, store.OAuthRefresh, requestID); err != nil {
		return err
	}
	_, err := s.st.RevokeOAuthRequestsByRequestID(ctx, store.OAuthCode, requestID)
	return err
}

// RevokeAccessToken deletes every access token of the grant.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := s.st.DeleteOAuthRequestsByRequestID(ctx, store.OAuthAccess, requestID)
	return err
}

// --- errors ---

// storeErr maps the store's errors to those fosite tests for.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrOAuthGrantRevoked):
		return fmt.Errorf("%w: %w", fosite.ErrInactiveToken, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	return err
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return storeErr(err)
}

// clientScopes reads the space-separated "scope" of a client's metadata; nil when absent.
func clientScopes(metadata string) []string {
	var m struct {
		Scope *string `json:"scope"`
	}
	if decode(metadata, &m) != nil || m.Scope == nil {
		return nil
	}
	return strings.Fields(*m.Scope)
}
