package oauthserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/store"
)

// Pending authorization requests live in the store (store.AuthorizeRequests), so that the
// flow's pages may reach any replica: no sticky sessions. A request is known to the browser by
// its reference, state_ref: 32 random bytes, base64url (43 characters). The store keeps only
// the reference's SHA-256, so a database dump cannot continue anyone's flow. Other packages may
// key state of their own by the reference string; its format is stable.

// maxRefLen bounds a state_ref before it is hashed (a reference is 43 characters).
const maxRefLen = 64

// maxUpstreamMCPLen bounds the kept upstream_mcp parameter; a longer one is ignored.
const maxUpstreamMCPLen = 2048

// pendingFormKeys are the authorization request's parameters kept with it: what fosite's code
// and PKCE handlers read when the consent completes the request.
var pendingFormKeys = []string{
	"response_type", "response_mode", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method", "resource", "audience",
}

// pending is an authorization request between /authorize and the consent decision. It is kept
// in the store (see pending.go), so that any replica can serve the flow's next page.
type pending struct {
	host        string
	ar          fosite.AuthorizeRequester
	resource    string
	server      string // the server consented to: from the resource, or chosen
	fromRes     bool   // server came from the resource: no choice
	upstreamMCP string
	clientName  string
	agentType   string
	// portal, when set, makes this a sign-in for another part of the gateway (portal.go): no
	// authorization request (ar is nil), it ends at the sign-in.
	portal *portalRequest
}

// storedPending is a pending request as stored (JSON).
type storedPending struct {
	Resource    string `json:"resource"`
	Server      string `json:"server,omitempty"`
	FromRes     bool   `json:"from_resource,omitempty"`
	UpstreamMCP string `json:"upstream_mcp,omitempty"`
	ClientName  string `json:"client_name,omitempty"`
	AgentType   string `json:"agent_type,omitempty"`
	// The fosite authorization request, without its client (read again on load).
	ID                  string     `json:"id"`
	RequestedAt         time.Time  `json:"requested_at"`
	ClientID            string     `json:"client_id"`
	ResponseTypes       []string   `json:"response_types"`
	RedirectURI         string     `json:"redirect_uri"`
	State               string     `json:"state,omitempty"`
	ResponseMode        string     `json:"response_mode,omitempty"`
	DefaultResponseMode string     `json:"default_response_mode,omitempty"`
	RequestedScope      []string   `json:"requested_scope,omitempty"`
	RequestedAudience   []string   `json:"requested_audience,omitempty"`
	Form                url.Values `json:"form,omitempty"`
	// Portal is a sign-in for another part of the gateway (no authorization request).
	Portal *portalRequest `json:"portal,omitempty"`
}

// refHash is the stored form of a reference.
func refHash(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(h[:])
}

func encodePending(p *pending) (string, error) {
	if p.portal != nil {
		b, err := json.Marshal(storedPending{Portal: p.portal})
		return string(b), err
	}
	ar, ok := p.ar.(*fosite.AuthorizeRequest)
	if !ok {
		return "", fmt.Errorf("authorization request is a %T", p.ar)
	}
	if ar.RedirectURI == nil || ar.Client == nil {
		return "", errors.New("authorization request without a redirect URI or client")
	}
	sp := storedPending{
		Resource: p.resource, Server: p.server, FromRes: p.fromRes, ClientName: p.clientName, AgentType: p.agentType,
		ID: ar.ID, RequestedAt: ar.RequestedAt.UTC(), ClientID: ar.Client.GetID(),
		ResponseTypes: ar.ResponseTypes, RedirectURI: ar.RedirectURI.String(), State: ar.State,
		ResponseMode: string(ar.ResponseMode), DefaultResponseMode: string(ar.DefaultResponseMode),
		RequestedScope: ar.RequestedScope, RequestedAudience: ar.RequestedAudience,
	}
	if len(p.upstreamMCP) <= maxUpstreamMCPLen {
		sp.UpstreamMCP = p.upstreamMCP
	}
	for _, k := range pendingFormKeys {
		if v, ok := ar.Form[k]; ok {
			if sp.Form == nil {
				sp.Form = url.Values{}
			}
			sp.Form[k] = v
		}
	}
	b, err := json.Marshal(sp)
	return string(b), err
}

// decodePending rebuilds a pending request, its client read again from the store.
func (s *Server) decodePending(ctx context.Context, host, data string) (*pending, error) {
	var sp storedPending
	if err := json.Unmarshal([]byte(data), &sp); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if sp.Portal != nil {
		return &pending{host: host, portal: sp.Portal}, nil
	}
	redirect, err := url.Parse(sp.RedirectURI)
	if err != nil {
		return nil, fmt.Errorf("decode the redirect URI: %w", err)
	}
	client, err := s.clients.GetClient(withRedirectURI(fositestore.WithHost(ctx, host), sp.RedirectURI), sp.ClientID)
	if err != nil {
		return nil, fmt.Errorf("load client: %w", err)
	}
	ar := fosite.NewAuthorizeRequest()
	ar.ID = sp.ID
	ar.RequestedAt = sp.RequestedAt
	ar.Client = client
	ar.ResponseTypes = fosite.Arguments(sp.ResponseTypes)
	ar.RedirectURI = redirect
	ar.State = sp.State
	ar.ResponseMode = fosite.ResponseModeType(sp.ResponseMode)
	ar.DefaultResponseMode = fosite.ResponseModeType(sp.DefaultResponseMode)
	ar.RequestedScope = fosite.Arguments(sp.RequestedScope)
	ar.RequestedAudience = fosite.Arguments(sp.RequestedAudience)
	if sp.Form != nil {
		ar.Form = sp.Form
	}
	return &pending{
		host: host, ar: ar, resource: sp.Resource, server: sp.Server, fromRes: sp.FromRes,
		upstreamMCP: sp.UpstreamMCP, clientName: sp.ClientName, agentType: sp.AgentType,
	}, nil
}

// SignInsBegunPerClientAddress is how many pending requests (an authorization request, a
// sign-in for the dashboard or for the account page) one client address (an IPv4 address or an
// IPv6 /64) may make the store keep per 15 minutes, in a burst or spread out: each is a row
// written for a stranger, kept until it expires. One more is refused (TooManySignInsError).
const SignInsBegunPerClientAddress = 300

// TooManySignInsError: the client address began SignInsBegunPerClientAddress sign-ins within
// 15 minutes; it may begin another after RetryAfter.
type TooManySignInsError struct{ RetryAfter time.Duration }

func (e TooManySignInsError) Error() string {
	return fmt.Sprintf("too many sign-ins begun from this address; retry after %s", e.RetryAfter.Round(time.Second))
}

// putPending stores a new pending request begun from the client address addrKey (see
// addressKey) and returns its reference; TooManySignInsError when the address is over its budget.
func (s *Server) putPending(ctx context.Context, addrKey string, p *pending) (string, error) {
	if ok, retry := s.beginLimiter.Allow(addrKey, s.now()); !ok {
		return "", TooManySignInsError{RetryAfter: retry}
	}
	ref := randomToken()
	if err := s.createPending(ctx, ref, p); err != nil {
		return "", err
	}
	return ref, nil
}

// restorePending stores a used request again under its reference, for a decision the store
// refused (a level above the ceiling): the human may choose again. It expires
// PendingAuthorizeTTL from now.
func (s *Server) restorePending(ctx context.Context, ref string, p *pending) error {
	return s.createPending(ctx, ref, p)
}

func (s *Server) createPending(ctx context.Context, ref string, p *pending) error {
	data, err := encodePending(p)
	if err != nil {
		return err
	}
	_, err = s.cfg.Store.CreateAuthorizeRequest(ctx, store.AuthorizeRequest{
		Host: p.host, RefHash: refHash(ref), Data: data, ExpiresAt: s.now().Add(PendingAuthorizeTTL),
	})
	return err
}

// getPending loads the host's pending request ref; store.ErrNotFound when it is unknown,
// expired, used, or of another host.
func (s *Server) getPending(ctx context.Context, host, ref string) (*pending, error) {
	if ref == "" || len(ref) > maxRefLen {
		return nil, store.ErrNotFound
	}
	row, err := s.cfg.Store.GetAuthorizeRequest(ctx, host, refHash(ref), s.now())
	if err != nil {
		return nil, err
	}
	p, err := s.decodePending(ctx, host, row.Data)
	if err != nil {
		// A client deleted since, or a row this version cannot read: start again.
		s.log.Info("oauthserver: unusable pending authorization request", "host", host, "err", err)
		return nil, store.ErrNotFound
	}
	return p, nil
}

// savePending stores a changed pending request (the server chosen).
func (s *Server) savePending(ctx context.Context, ref string, p *pending) error {
	data, err := encodePending(p)
	if err != nil {
		return err
	}
	return s.cfg.Store.UpdateAuthorizeRequest(ctx, p.host, refHash(ref), data, s.now())
}

// usePending deletes the pending request ref: it is used. When it is gone already (another
// decision used it), it shows the "expired" page and returns false.
func (s *Server) usePending(w http.ResponseWriter, r *http.Request, h store.Host, ref string) bool {
	err := s.cfg.Store.DeleteAuthorizeRequest(r.Context(), h.Key, refHash(ref))
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		s.expiredPage(w, h)
	default:
		s.internalError(w, h, "use the authorization request", err)
	}
	return false
}
