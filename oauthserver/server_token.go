package oauthserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	foauth2 "github.com/ory/fosite/handler/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/store"
)

// The token side: fosite's token, revocation and introspection endpoints, and the access-token
// strategy that makes access tokens RFC 9068 JWTs signed by the key set. Codes and refresh
// tokens stay fosite's HMAC tokens.

func (s *Server) token(w http.ResponseWriter, r *http.Request, h store.Host) {
	ctx := r.Context()
	// The agent of a refresh token, read before fosite, which deletes the row of a revoked one.
	refreshAgent := s.refreshAgent(ctx, r, h.Key)
	ar, err := s.provider.NewAccessRequest(ctx, r, &fositestore.Session{})
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, s.refreshRefusal(ctx, h.Key, refreshAgent, err))
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if errors.Is(err, errResourceNotGranted) {
		err = errInvalidTarget("The resource must be the one the authorization was granted for; authorize again for another.")
	}
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// refreshSigner gives the signature of a refresh token or a code, the key of its stored row.
type refreshSigner interface {
	RefreshTokenSignature(ctx context.Context, token string) string
	AuthorizeCodeSignature(ctx context.Context, token string) string
}

// errAgentDisabledRefresh is the refusal of a refresh by an agent an administrator disabled.
var errAgentDisabledRefresh = fosite.ErrInvalidGrant.WithHint(
	"This app was disabled by an administrator; reconnecting will not help until an administrator enables it again.")

// refreshAgent is the agent of the refresh token a refresh request presents ("" for any other
// request, or when the token is unknown).
func (s *Server) refreshAgent(ctx context.Context, r *http.Request, host string) string {
	if s.refreshSigs == nil || r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		return ""
	}
	sig := s.refreshSigs.RefreshTokenSignature(ctx, r.PostForm.Get("refresh_token"))
	if sig == "" {
		return ""
	}
	row, err := s.cfg.Store.GetOAuthRequest(ctx, store.OAuthRefresh, sig)
	if err != nil || row.Host != host {
		return ""
	}
	return row.AgentID
}

// refreshRefusal is err, the refusal of a token request, or, when it refused the refresh token
// of an agent an administrator disabled (the kill switch revokes its tokens), a refusal that
// says so instead of fosite's generic "already used".
func (s *Server) refreshRefusal(ctx context.Context, host, agentID string, err error) error {
	if agentID == "" || !errors.Is(err, fosite.ErrInvalidGrant) {
		return err
	}
	if a, aerr := s.cfg.Store.GetAgent(ctx, host, agentID); aerr == nil && a.Disabled {
		return errAgentDisabledRefresh.WithWrap(err)
	}
	return err
}

// revoke is RFC 7009: public clients identify themselves with client_id, confidential ones
// authenticate.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request, h store.Host) {
	ctx := r.Context()
	err := s.provider.NewRevocationRequest(ctx, r)
	if err == nil {
		err = s.revokeAccessJWT(ctx, r, h.Key)
	}
	s.provider.WriteRevocationResponse(ctx, w, err)
}

// revokeAccessJWT revokes the grant of a presented access token that fosite found no row of:
// fosite finds a token by its stored row, and an access token's row is deleted when the refresh
// token issued with it is rotated, while the JWT stays valid until it expires. A token that is
// this host's, verifies, and was issued to the client that authenticated (fosite has checked
// that client already) has its grant revoked. Anything else is left alone: RFC 7009 answers 200
// for tokens the server does not know.
func (s *Server) revokeAccessJWT(ctx context.Context, r *http.Request, host string) error {
	token := r.PostForm.Get("token")
	aud, ok := unverifiedAudience(token)
	if !ok {
		return nil
	}
	c, err := s.cfg.KeySet.Verify(token, accesstoken.Expect{Issuer: s.issuer(host), Audience: aud})
	if err != nil {
		return nil
	}
	clientID := r.PostForm.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		if clientID, err = url.QueryUnescape(user); err != nil {
			return nil
		}
	}
	grant := c.Grant
	if grant == "" || c.ClientID != clientID {
		return nil
	}
	if err := s.clients.RevokeRefreshToken(ctx, grant); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if err := s.clients.RevokeAccessToken(ctx, grant); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

// unverifiedAudience reads the first audience of a compact JWS's payload, unverified (Verify
// then checks the token against it).
func unverifiedAudience(token string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(token) > 8<<10 || len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", false
	}
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil && one != "" {
		return one, true
	}
	var many []string
	if json.Unmarshal(claims.Aud, &many) == nil && len(many) > 0 && many[0] != "" {
		return many[0], true
	}
	return "", false
}

// introspect is RFC 7662. It requires client authentication (a confidential client of the
// host, HTTP Basic, as the metadata advertises; fosite also accepts an active access token as
// a bearer credential), so that tokens cannot be probed anonymously.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request, _ store.Host) {
	ctx := r.Context()
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, &fositestore.Session{})
	if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// errResourceNotGranted: the token request names a resource the grant is not for; the token
// endpoint answers invalid_target.
var errResourceNotGranted = errors.New("the resource was not granted")

// jwtAccessTokens is the access-token strategy: RFC 9068 JWTs minted by the key set, with iss
// the host's issuer, sub the human, aud the granted resources, client_id, scope, jti, and the
// claims host, agent_id and sid (the grant: revoking it revokes every access token carrying
// it, see store.OAuth.OAuthTokenRevoked). The jti is recorded in the session (and so in the
// access token's stored row) so that revoking the row revokes the JWT. Their lifetime is the
// host's AccessTokenTTLSeconds (default one hour, at most accesstoken.DefaultMaxTokenLifetime).
//
// The signature fosite stores the token under is the JWS signature (the third part), as fosite's
// own DefaultJWTStrategy does: introspection and revocation compute it from the presented token
// with AccessTokenSignature and load the stored request by it, so a revoked JWT is inactive at
// introspection even though its signature still verifies.
type jwtAccessTokens struct {
	s *Server
}

var _ foauth2.AccessTokenStrategy = (*jwtAccessTokens)(nil)

func (j *jwtAccessTokens) AccessTokenSignature(_ context.Context, token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	return parts[2]
}

func (j *jwtAccessTokens) GenerateAccessToken(ctx context.Context, requester fosite.Requester) (string, string, error) {
	sess, ok := requester.GetSession().(*fositestore.Session)
	if !ok || sess.Host == "" || sess.UserID == "" {
		return "", "", errors.New("oauthserver: access token for a request without a trustgate session")
	}
	aud := slices.Clone(requester.GetGrantedAudience())
	if len(aud) == 0 {
		return "", "", fosite.ErrServerError.WithDebug("the grant has no audience")
	}
	// RFC 8707: a resource named at the token endpoint must be one the grant was for (the
	// token's audience is always the grant's). fosite grants a code's audience only just
	// before it mints the token, so this is the first place it is known; nothing is used up
	// yet (the code is marked used, or the refresh token rotated, only after this).
	for _, res := range requester.GetRequestForm()["resource"] {
		if !slices.Contains(aud, res) {
			return "", "", errResourceNotGranted
		}
	}
	ttl := j.s.accessTokenTTL(ctx, sess.Host)
	now := j.s.now().UTC().Truncate(time.Second)
	exp := now.Add(ttl)
	if requester.GetID() == "" {
		return "", "", fosite.ErrServerError.WithDebug("the grant has no id")
	}
	// fosite computes expires_in and the stored row's expiry from the session, after this, and
	// stores the row with it.
	sess.SetExpiresAt(fosite.AccessToken, exp)
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails
	sess.TokenID = base64.RawURLEncoding.EncodeToString(jti[:])
	tok, err := j.s.cfg.KeySet.Mint(accesstoken.AccessClaims{
		Issuer:   j.s.issuer(sess.Host),
		Subject:  sess.UserID,
		Audience: aud,
		ClientID: requester.GetClient().GetID(),
		Scope:    strings.Join(requester.GetGrantedScopes(), " "),
		IssuedAt: now,
		Expiry:   exp,
		JTI:      sess.TokenID,
		Host:     sess.Host,
		AgentID:  sess.AgentID,
		Grant:    requester.GetID(),
	})
	if err != nil {
		return "", "", fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return tok, j.AccessTokenSignature(ctx, tok), nil
}

// ValidateAccessToken verifies the JWT against the stored request it was loaded by (its
// issuer and first audience).
func (j *jwtAccessTokens) ValidateAccessToken(_ context.Context, requester fosite.Requester, token string) error {
	sess, ok := requester.GetSession().(*fositestore.Session)
	aud := requester.GetGrantedAudience()
	if !ok || len(aud) == 0 {
		return fosite.ErrTokenSignatureMismatch
	}
	_, err := j.s.cfg.KeySet.Verify(token, accesstoken.Expect{Issuer: j.s.issuer(sess.Host), Audience: aud[0]})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, accesstoken.ErrExpired):
		return fosite.ErrTokenExpired
	case errors.Is(err, accesstoken.ErrMalformed):
		return fosite.ErrInvalidTokenFormat
	default:
		return fosite.ErrTokenSignatureMismatch
	}
}

// accessTokenTTL is host's access-token lifetime.
func (s *Server) accessTokenTTL(ctx context.Context, host string) time.Duration {
	ttl := fositestore.DefaultAccessTokenLifespan
	if h, err := s.cfg.Store.GetHost(ctx, host); err == nil && h.Settings.AccessTokenTTLSeconds > 0 {
		ttl = time.Duration(h.Settings.AccessTokenTTLSeconds) * time.Second
	}
	return min(ttl, maxAccessTokenTTL)
}

// sessionLimits are host's gateway-session limits (SessionIdleTTLSeconds and
// SessionMaxTTLSeconds; zero is fositestore's default, 30 and 90 days).
func (s *Server) sessionLimits(ctx context.Context, host string) (idle, max time.Duration) {
	h, err := s.cfg.Store.GetHost(ctx, host)
	if err != nil {
		s.log.Error("oauthserver: load host for its session limits", "host", host, "err", err)
		return 0, 0
	}
	return time.Duration(h.Settings.SessionIdleTTLSeconds) * time.Second, time.Duration(h.Settings.SessionMaxTTLSeconds) * time.Second
}

// redirectOverlay is the store as fosite's client lookups see it. An authorization request
// whose redirect_uri matches a registered one by MatchRedirectURI (trustgate's rule: exact, or
// a loopback URI with any port, "localhost" included) has that redirect_uri added to the
// client it loads (see withRedirectURI), because fosite's own loopback rule knows only IP
// literals. Nothing is written: the addition lives in that request's context.
type redirectOverlay struct {
	store.OAuth
}

type redirectKey struct{}

// withRedirectURI makes client lookups in ctx accept uri when MatchRedirectURI does.
func withRedirectURI(ctx context.Context, uri string) context.Context {
	return context.WithValue(ctx, redirectKey{}, uri)
}

func (o redirectOverlay) GetOAuthClient(ctx context.Context, host, id string) (store.OAuthClient, error) {
	c, err := o.OAuth.GetOAuthClient(ctx, host, id)
	if err != nil {
		return c, err
	}
	if uri, _ := ctx.Value(redirectKey{}).(string); uri != "" && !slices.Contains(c.RedirectURIs, uri) && MatchRedirectURI(c.RedirectURIs, uri) {
		c.RedirectURIs = append(slices.Clone(c.RedirectURIs), uri)
	}
	return c, nil
}
