package fositestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/store"
)

// storedRequest is what a row's Data holds: the parts of a fosite.Requester the token endpoint,
// introspection and revocation need, and the session. The client is not stored but read again
// on load.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *Session   `json:"session"`
	// AccessSignature, on a refresh token's row: the access token issued with it.
	AccessSignature string `json:"access_signature,omitempty"`
}

// storedFormKeys are the request parameters kept with a request. fosite already sanitizes what
// it hands to storage; this is a second, explicit allow-list, so that no credential (code,
// code_verifier, refresh_token, client_secret, client_assertion) is ever written: the PKCE
// row needs only the challenge, and the code exchange the redirect URI.
var storedFormKeys = []string{
	"grant_type", "response_type", "scope", "client_id", "redirect_uri",
	"code_challenge", "code_challenge_method", "audience", "resource",
}

func sanitizeForm(form url.Values) url.Values {
	var out url.Values
	for _, k := range storedFormKeys {
		if v, ok := form[k]; ok {
			if out == nil {
				out = url.Values{}
			}
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// expiryOf is the session expiry that bounds a row of kind.
func expiryOf(kind string) fosite.TokenType {
	switch kind {
	case store.OAuthAccess:
		return fosite.AccessToken
	case store.OAuthRefresh:
		return fosite.RefreshToken
	default: // code, pkce
		return fosite.AuthorizeCode
	}
}

// create stores r as a row of kind. r's session must be a *Session naming its host.
func (s *Store) create(ctx context.Context, kind, signature string, r fosite.Requester, accessSignature string) error {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess == nil {
		return fmt.Errorf("fositestore: store %s: the session is a %T, want a *fositestore.Session", kind, r.GetSession())
	}
	if sess.Host == "" {
		return fmt.Errorf("fositestore: store %s: the session names no host", kind)
	}
	if host, ok := HostFromContext(ctx); ok && host != sess.Host {
		return fmt.Errorf("fositestore: store %s: the session's host %q is not the request's %q", kind, sess.Host, host)
	}
	client := r.GetClient()
	if client == nil {
		return fmt.Errorf("fositestore: store %s: the request has no client", kind)
	}
	if sess.ConsentedAt.IsZero() || kind == store.OAuthRefresh {
		// The stored copy gets the session's times; fosite's session is left as it is.
		sess = sess.Clone().(*Session)
		now := s.now()
		if sess.ConsentedAt.IsZero() {
			sess.ConsentedAt = now
		}
		if kind == store.OAuthRefresh {
			sess.LastUsedAt = now
			// The row expires with the session, or with fosite's lifespan when that is earlier.
			end := s.sessionEnd(ctx, sess, now)
			if exp := sess.GetExpiresAt(fosite.RefreshToken); exp.IsZero() || end.Before(exp) {
				sess.SetExpiresAt(fosite.RefreshToken, end)
			}
		}
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt().UTC(),
		ClientID:          client.GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              sanitizeForm(r.GetRequestForm()),
		Session:           sess,
		AccessSignature:   accessSignature,
	}
	data, err := json.Marshal(sr)
	if err != nil {
		return fmt.Errorf("fositestore: encode %s: %w", kind, err)
	}
	var tokenID string
	if kind == store.OAuthAccess {
		tokenID = sess.TokenID
	}
	err = s.st.CreateOAuthRequest(ctx, store.OAuthRequest{
		Kind:        kind,
		Signature:   signature,
		RequestID:   sr.ID,
		Host:        sess.Host,
		ClientID:    sr.ClientID,
		Subject:     sess.UserID,
		AgentID:     sess.AgentID,
		Data:        string(data),
		RequestedAt: sr.RequestedAt,
		ExpiresAt:   sess.GetExpiresAt(expiryOf(kind)),
		TokenID:     tokenID,
	})
	return storeErr(err)
}

// load reads a row of kind and rebuilds its request, with its client read again from the
// store. A row of another host than the context's, or of a deleted client, is
// fosite.ErrNotFound.
func (s *Store) load(ctx context.Context, kind, signature string) (*fosite.Request, store.OAuthRequest, error) {
	row, err := s.st.GetOAuthRequest(ctx, kind, signature)
	if err != nil {
		return nil, store.OAuthRequest{}, storeErr(err)
	}
	if host, ok := HostFromContext(ctx); ok && host != row.Host {
		return nil, store.OAuthRequest{}, fmt.Errorf("%s of another host: %w", kind, fosite.ErrNotFound)
	}
	var sr storedRequest
	if err := decode(row.Data, &sr); err != nil {
		return nil, store.OAuthRequest{}, fmt.Errorf("fositestore: decode %s: %w", kind, err)
	}
	client, err := s.client(ctx, row.Host, row.ClientID)
	if err != nil {
		return nil, store.OAuthRequest{}, err
	}
	sess := sr.Session
	if sess == nil {
		sess = &Session{}
	}
	id := sr.ID
	if id == "" {
		id = row.RequestID
	}
	form := sr.Form
	if form == nil {
		form = url.Values{}
	}
	return &fosite.Request{
		ID:                id,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    args(sr.RequestedScope),
		GrantedScope:      args(sr.GrantedScope),
		RequestedAudience: args(sr.RequestedAudience),
		GrantedAudience:   args(sr.GrantedAudience),
		Form:              form,
		Session:           sess,
	}, row, nil
}

func args(l []string) fosite.Arguments {
	if l == nil {
		return fosite.Arguments{}
	}
	return fosite.Arguments(l)
}

func decode(data string, v any) error {
	if data == "" {
		return errors.New("empty")
	}
	return json.Unmarshal([]byte(data), v)
}
