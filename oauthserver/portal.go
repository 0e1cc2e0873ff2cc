package oauthserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// A sign-in for another part of the gateway (the dashboard) runs through the host's own
// sign-in pages, so that it offers the host's methods under the host's domain rules and
// nothing is implemented twice. BeginSignIn keeps a pending request of its own kind (no OAuth
// client, no consent): the sign-in page, email codes, passkeys, the SSO providers and SAML
// continue it as they continue an authorization request. Where an authorization request goes
// on to the consent, this one ends: the request is used, no browser session of the host
// starts, and the browser goes back to the caller's return URL with a one-time ticket.
// FinishSignIn exchanges the ticket, in the browser that began (the caller keeps the binder
// BeginSignIn gave it, in a cookie of its own), for who signed in and how.

// SignInTicketTTL is how long the ticket of a finished sign-in may be exchanged.
const SignInTicketTTL = time.Minute

// ticketMethod is the store.SSOState.Method of a sign-in ticket.
const ticketMethod = "signin_ticket"

// SignedIn is a person who proved who they are on Host by Method (a store.Auth* method name),
// allowed by the host's domain rules.
type SignedIn struct {
	Host, UserID, Method string
}

// ErrSignInTicket: the ticket is unknown, used, expired, or was begun in another browser.
var ErrSignInTicket = errors.New("the sign-in ticket is not valid in this browser (used, expired, or begun elsewhere)")

// portalRequest is what a pending sign-in of another part of the gateway keeps.
type portalRequest struct {
	Return   string `json:"return"`    // the absolute URL the ticket is sent to
	BindHash string `json:"bind_hash"` // sessionIDHash of the binder
	// Account: a sign-in for the host's own account page (account.go). It ends in a browser
	// session of the host and on the account page; Return and BindHash are unused (the
	// browser that signs in is the one that gets the session, and the way back is fixed).
	Account bool `json:"account,omitempty"`
}

type ticketRecord struct {
	UserID   string `json:"user"`
	Method   string `json:"method"`
	BindHash string `json:"bind_hash"`
}

func ticketAAD(hash string) string { return "trustgate/signin-ticket/v1|" + hash }

// BeginSignIn starts a sign-in on host, asked for from the client address clientAddr (as
// forwarded.Trust.ClientAddr gives it), that returns to returnURL (absolute; the ticket is added
// to its query). It returns the URL of the host's sign-in page and the binder, which the
// caller keeps in the browser and gives FinishSignIn. store.ErrNotFound when the host does
// not exist; TooManySignInsError when the address began too many sign-ins.
func (s *Server) BeginSignIn(ctx context.Context, host, returnURL, clientAddr string) (signInURL, binder string, err error) {
	if s.cfg.Keys == nil {
		return "", "", errors.New("sign-in tickets need the master keyring")
	}
	if _, err := url.Parse(returnURL); err != nil {
		return "", "", fmt.Errorf("return URL: %w", err)
	}
	if _, err := s.cfg.Store.GetHost(ctx, host); err != nil {
		return "", "", err
	}
	binder = randomToken()
	ref, err := s.putPending(ctx, consentui.AddressKey(clientAddr), &pending{host: host, portal: &portalRequest{Return: returnURL, BindHash: sessionIDHash(binder)}})
	if err != nil {
		return "", "", fmt.Errorf("keep the sign-in request: %w", err) // TooManySignInsError stays visible to errors.As
	}
	return s.flowURL(host, loginPath, ref), binder, nil
}

// FinishSignIn exchanges a ticket for the person who signed in; a ticket works once, within
// SignInTicketTTL, and only with the binder of the browser that began the sign-in.
func (s *Server) FinishSignIn(ctx context.Context, ticket, binder string) (SignedIn, error) {
	if s.cfg.Keys == nil || ticket == "" || len(ticket) > maxRefLen || len(binder) > maxRefLen {
		return SignedIn{}, ErrSignInTicket
	}
	hash := sessionIDHash(ticket)
	st, err := s.cfg.Store.TakeSSOState(ctx, hash, s.now())
	if errors.Is(err, store.ErrNotFound) || err == nil && st.Method != ticketMethod {
		return SignedIn{}, ErrSignInTicket
	}
	if err != nil {
		return SignedIn{}, err
	}
	plain, err := s.cfg.Keys.Open(st.Sealed, ticketAAD(hash))
	if err != nil {
		return SignedIn{}, fmt.Errorf("open a sign-in ticket: %w", err)
	}
	var rec ticketRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return SignedIn{}, fmt.Errorf("read a sign-in ticket: %w", err)
	}
	// Taken either way: a ticket that reached another browser is spent.
	if binder == "" || subtle.ConstantTimeCompare([]byte(rec.BindHash), []byte(sessionIDHash(binder))) != 1 {
		return SignedIn{}, ErrSignInTicket
	}
	return SignedIn{Host: st.Host, UserID: rec.UserID, Method: rec.Method}, nil
}

// portalSignedIn ends a sign-in for another part of the gateway: the request is used, and the
// browser goes to the return URL with a ticket.
func (s *Server) portalSignedIn(w http.ResponseWriter, r *http.Request, h store.Host, userID, method, ref string, p *portalRequest) {
	ctx := r.Context()
	if !s.usePending(w, r, h, ref) {
		return
	}
	back, err := url.Parse(p.Return)
	if err != nil {
		s.internalError(w, h, "read the sign-in's return URL", err)
		return
	}
	ticket := randomToken()
	hash := sessionIDHash(ticket)
	plain, err := json.Marshal(ticketRecord{UserID: userID, Method: method, BindHash: p.BindHash})
	if err == nil {
		err = s.cfg.Store.CreateSSOState(ctx, store.SSOState{StateHash: hash, Host: h.Key, Method: ticketMethod,
			Sealed: s.cfg.Keys.Seal(plain, ticketAAD(hash)), ExpiresAt: s.now().Add(SignInTicketTTL)})
	}
	if err != nil {
		s.internalError(w, h, "keep a sign-in ticket", err)
		return
	}
	if s.cfg.Audit != nil {
		u, err := s.cfg.Store.GetUser(ctx, h.Key, userID)
		if err != nil {
			s.internalError(w, h, "load the human signing in", err)
			return
		}
		if err := s.cfg.Audit.Append(ctx, audit.Entry{Host: h.Key, Time: s.now(), Decision: audit.Identity, Method: method,
			Action: "dashboard.signin", UserID: userID, UserEmail: u.Email, Actor: "human", Object: "human/" + userID,
			ClientAddr: forwarded.ClientAddrFrom(ctx)}); err != nil {
			s.internalError(w, h, "write the audit entry of a dashboard sign-in", err)
			return
		}
	}
	q := back.Query()
	q.Set("ticket", ticket)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}

// loginPage shows the sign-in page of a pending request (GET /login?state_ref=…).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.pendingOf(w, r, h, r.URL.Query().Get("state_ref"))
	if !ok {
		return
	}
	s.renderSignIn(w, r, h, ref, "", "", http.StatusOK)
}
