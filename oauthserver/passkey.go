package oauthserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/passkeys"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// Passkeys (package passkeys runs the WebAuthn ceremonies). A signed-in human adds a passkey on
// the account page (POST /account/passkeys/options for the browser's prompt, then POST
// /account/passkeys with its answer) and removes one there (POST /account/passkeys/remove).
// On a host that enables the "passkey" method, the sign-in page offers signing in with the
// passkey alone (POST /auth/passkey/options, then POST /auth/passkey), which continues the
// pending authorization request exactly as a password sign-in does; the host's allowed
// domains apply to the human's address.
//
// A ceremony's state is kept in the store (a sign-in in progress, store.SSOState, sealed with
// the master key) under the hash of a random token that only this browser holds, in a
// short-lived cookie: it is taken once, by any replica, and never after passkeys.CeremonyTTL.

// Paths of the passkey routes, relative to the issuer.
const (
	passkeySignInPath         = AuthRoutePrefix + store.AuthPasskey
	passkeySignInOptionsPath  = passkeySignInPath + "/options"
	accountPasskeysPath       = accountPath + "/passkeys"
	accountPasskeyOptionsPath = accountPasskeysPath + "/options"
	accountPasskeyRemovePath  = accountPasskeysPath + "/remove"
)

// passkeyCookiePrefix + host is the cookie of a passkey ceremony in progress.
const passkeyCookiePrefix = "tg_passkey_"

// The kinds of ceremony, as store.SSOState.Method.
const (
	ceremonySignIn   = "passkey"
	ceremonyRegister = "passkey_register"
)

// Messages of the passkey pages that tests and documentation refer to.
const (
	MsgPasskeyRefused = "That passkey could not sign you in. If you removed it from your account, sign in another way."
	MsgPasskeyAdded   = "Your passkey is added. You can sign in with it from now on."
	MsgPasskeyRemoved = "The passkey is removed. It no longer signs you in."
	MsgPasskeysOff    = "Your administrator has not turned on signing in with passkeys for this gateway."
)

// maxPasskeyFormBytes bounds the forms that carry a passkey's answer.
const maxPasskeyFormBytes = 2*passkeys.MaxResponseBytes + maxFormBytes

// passkeyRelyingParty is the host's relying party when the gateway can run passkeys for it
// (the master keyring seals the ceremonies; the issuer's address must be one WebAuthn
// accepts), else why not, in words for the pages.
func (s *Server) passkeyRelyingParty(h store.Host) (*passkeys.RelyingParty, string) {
	if s.cfg.Keys == nil {
		return nil, "Passkeys are not available on this gateway."
	}
	rp, err := passkeys.ForIssuer(s.issuer(h.Key), frame(h).Site())
	if err != nil {
		return nil, "Passkeys are not available at this gateway's address: " + strings.TrimPrefix(err.Error(), passkeys.ErrUnavailable.Error()+": ") + "."
	}
	return rp, ""
}

// signInPasskeyForm is the sign-in page's passkey button, when the host offers it.
func (s *Server) signInPasskeyForm(h store.Host, p signinpolicy.Policy) *consentui.PasskeyForm {
	if _, ok := p.Method(store.AuthPasskey); !ok {
		return nil
	}
	if rp, _ := s.passkeyRelyingParty(h); rp == nil {
		return nil
	}
	return &consentui.PasskeyForm{
		Action: s.issuer(h.Key) + passkeySignInPath, OptionsURL: s.issuer(h.Key) + passkeySignInOptionsPath,
		Label: "Sign in with a passkey",
	}
}

// checkPasskeyConfig checks the passkey method's settings: it has none beyond its domains, so a
// config or a secret is refused rather than kept unread.
func checkPasskeyConfig(config json.RawMessage, secretSet bool) error {
	if c := bytes.TrimSpace(config); len(c) > 0 {
		var settings map[string]json.RawMessage
		if err := json.Unmarshal(c, &settings); err != nil || len(settings) > 0 {
			return errors.New("passkey: the method has no settings: its config must be {} (domains are set with allowed_domains)")
		}
	}
	if secretSet {
		return errors.New("passkey: the method has no secret")
	}
	return nil
}

// ceremonyRecord is what the store keeps of a ceremony, sealed.
type ceremonyRecord struct {
	UserID string            `json:"user,omitempty"` // the signed-in human (registration)
	State  passkeys.Ceremony `json:"state"`
}

func ceremonyAAD(hash, kind string) string {
	return "trustgate/passkey-ceremony/v1|" + kind + "|" + hash
}

// beginCeremony keeps the ceremony's state in the store and binds it to this browser.
func (s *Server) beginCeremony(ctx context.Context, w http.ResponseWriter, h store.Host, kind, ref, uid string, state passkeys.Ceremony) error {
	token := randomToken()
	hash := sessionIDHash(token)
	plain, err := json.Marshal(ceremonyRecord{UserID: uid, State: state})
	if err != nil {
		return err
	}
	if err := s.cfg.Store.CreateSSOState(ctx, store.SSOState{
		StateHash: hash, Host: h.Key, Method: kind, PendingRef: ref,
		Sealed: s.cfg.Keys.Seal(plain, ceremonyAAD(hash, kind)), ExpiresAt: s.now().Add(passkeys.CeremonyTTL),
	}); err != nil {
		return fmt.Errorf("save the passkey ceremony: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: passkeyCookiePrefix + h.Key, Value: token, Path: s.cookiePath(h.Key),
		MaxAge: int(passkeys.CeremonyTTL / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode,
	})
	return nil
}

// errNoCeremony: the browser brought no ceremony of this kind that is still valid.
var errNoCeremony = errors.New("no passkey ceremony in progress in this browser (expired, used, or begun elsewhere)")

// takeCeremony takes the ceremony of kind this browser began; it can be taken once.
func (s *Server) takeCeremony(ctx context.Context, w http.ResponseWriter, r *http.Request, h store.Host, kind string) (ceremonyRecord, string, error) {
	c, err := r.Cookie(passkeyCookiePrefix + h.Key)
	http.SetCookie(w, &http.Cookie{Name: passkeyCookiePrefix + h.Key, Value: "", Path: s.cookiePath(h.Key), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	if err != nil || c.Value == "" || len(c.Value) > 64 {
		return ceremonyRecord{}, "", errNoCeremony
	}
	hash := sessionIDHash(c.Value)
	st, err := s.cfg.Store.TakeSSOState(ctx, hash, s.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && (st.Host != h.Key || st.Method != kind)) {
		return ceremonyRecord{}, "", errNoCeremony
	}
	if err != nil {
		return ceremonyRecord{}, "", err
	}
	plain, err := s.cfg.Keys.Open(st.Sealed, ceremonyAAD(hash, kind))
	if err != nil {
		return ceremonyRecord{}, "", fmt.Errorf("open the passkey ceremony: %w", err)
	}
	var rec ceremonyRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return ceremonyRecord{}, "", fmt.Errorf("read the passkey ceremony: %w", err)
	}
	return rec, st.PendingRef, nil
}

// writeJSONError answers a script's request with a message it shows.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// scriptForm bounds and parses a form the passkey script posts and checks its CSRF token.
func (s *Server) scriptForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSONError(w, http.StatusBadRequest, "The request could not be read.")
		return false
	}
	if err := s.csrf.Verify(r); err != nil {
		writeJSONError(w, http.StatusForbidden, consentui.CSRFMessage)
		return false
	}
	return true
}

// passkeySignInOptions begins a sign-in with a passkey for a pending authorization request.
func (s *Server) passkeySignInOptions(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.scriptForm(w, r) {
		return
	}
	ctx := r.Context()
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.log.Error("oauthserver: load sign-in methods", "host", h.Key, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "The gateway could not start the passkey prompt.")
		return
	}
	if _, ok := p.Method(store.AuthPasskey); !ok {
		writeJSONError(w, http.StatusNotFound, "Signing in with a passkey is not turned on here.")
		return
	}
	rp, why := s.passkeyRelyingParty(h)
	if rp == nil {
		writeJSONError(w, http.StatusServiceUnavailable, why)
		return
	}
	ref := r.PostFormValue("state_ref")
	if _, err := s.getPending(ctx, h.Key, ref); err != nil {
		writeJSONError(w, http.StatusBadRequest, "This sign-in has expired. Start again from your app.")
		return
	}
	options, state, err := rp.BeginSignIn()
	if err == nil {
		err = s.beginCeremony(ctx, w, h, ceremonySignIn, ref, "", state)
	}
	if err != nil {
		s.log.Error("oauthserver: begin a passkey sign-in", "host", h.Key, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "The gateway could not start the passkey prompt.")
		return
	}
	writeJSON(w, http.StatusOK, options)
}

// passkeySignIn signs a human in with a passkey's answer.
func (s *Server) passkeySignIn(w http.ResponseWriter, r *http.Request, h store.Host) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPasskeyFormBytes)
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	ctx := r.Context()
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	if _, enabled := p.Method(store.AuthPasskey); !enabled {
		s.signInRefused(w, r, h, ref, "", p.Allow(store.AuthPasskey, ""))
		return
	}
	rp, why := s.passkeyRelyingParty(h)
	if rp == nil {
		s.renderSignIn(w, r, h, ref, "", why, http.StatusServiceUnavailable)
		return
	}
	refuse := func(reason, email, userID string) {
		s.auditSignIn(ctx, h.Key, store.AuthPasskey, userID, email, false, reason)
		s.renderSignIn(w, r, h, ref, "", MsgPasskeyRefused, http.StatusUnauthorized)
	}
	now := s.now()
	addrKey := s.addressKey(r)
	if ok, retry := s.addrLimiter.Allow(addrKey, now); !ok {
		s.renderSignIn(w, r, h, ref, "", consentui.TooManyAttemptsMessage(retry), http.StatusTooManyRequests)
		return
	}
	rec, ceremonyRef, err := s.takeCeremony(ctx, w, r, h, ceremonySignIn)
	if err != nil {
		if !errors.Is(err, errNoCeremony) {
			s.internalError(w, h, "take the passkey ceremony", err)
			return
		}
		refuse(err.Error(), "", "")
		return
	}
	if ceremonyRef != ref {
		refuse("the passkey ceremony was begun for another authorization request", "", "")
		return
	}
	human, used, err := rp.FinishSignIn(rec.State, []byte(r.PostFormValue("credential")), s.passkeyLookup(ctx, h))
	if err != nil {
		if !isPasskeyRefusal(err) {
			s.internalError(w, h, "check a passkey", err)
			return
		}
		refuse(err.Error(), human.Email, human.ID)
		return
	}
	if err := p.Allow(store.AuthPasskey, human.Email); err != nil {
		s.auditSignIn(ctx, h.Key, store.AuthPasskey, human.ID, human.Email, false, err.Error())
		s.signInRefused(w, r, h, ref, "", err)
		return
	}
	if err := s.cfg.Store.UsePasskey(ctx, h.Key, used.CredentialID, used.SignCount, used.BackupState, now); err != nil {
		switch {
		case errors.Is(err, store.ErrSignCountRegressed):
			refuse(passkeys.ErrCloned.Error(), human.Email, human.ID)
		case errors.Is(err, store.ErrNotFound):
			refuse(passkeys.ErrUnknownPasskey.Error(), human.Email, human.ID)
		default:
			s.internalError(w, h, "record a passkey's use", err)
		}
		return
	}
	s.addrLimiter.Refund(addrKey, now)
	if !s.auditSignIn(ctx, h.Key, store.AuthPasskey, human.ID, human.Email, true, "") {
		s.internalError(w, h, "write the audit entry of a sign-in", errors.New("audit log unavailable"))
		return
	}
	s.signedIn(w, r, h, human.ID, store.AuthPasskey, ref)
}

func isPasskeyRefusal(err error) bool {
	return errors.Is(err, passkeys.ErrRefused) || errors.Is(err, passkeys.ErrUnknownPasskey) || errors.Is(err, passkeys.ErrCloned)
}

// passkeyLookup finds the human of a passkey of host h by its credential id; the user handle
// the authenticator gave must be that human's.
func (s *Server) passkeyLookup(ctx context.Context, h store.Host) passkeys.Lookup {
	return func(credentialID, userHandle []byte) (passkeys.Human, error) {
		pk, err := s.cfg.Store.GetPasskey(ctx, h.Key, credentialID)
		if errors.Is(err, store.ErrNotFound) {
			return passkeys.Human{}, passkeys.ErrUnknownPasskey
		}
		if err != nil {
			return passkeys.Human{}, err
		}
		if pk.UserID != string(userHandle) {
			return passkeys.Human{}, fmt.Errorf("%w: the authenticator names another human", passkeys.ErrUnknownPasskey)
		}
		u, err := s.cfg.Store.GetUser(ctx, h.Key, pk.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return passkeys.Human{}, passkeys.ErrUnknownPasskey
		}
		if err != nil {
			return passkeys.Human{}, err
		}
		return passkeys.Human{ID: u.ID, Email: u.Email, Passkeys: []store.Passkey{pk}}, nil
	}
}

// accountPasskeys fills the passkeys section of the account page of uid.
func (s *Server) accountPasskeys(ctx context.Context, h store.Host, uid string, page *consentui.AccountPage) error {
	list, err := s.cfg.Store.ListPasskeys(ctx, h.Key, uid)
	if err != nil {
		return err
	}
	page.Passkeys = page.Passkeys[:0]
	for _, pk := range list {
		page.Passkeys = append(page.Passkeys, consentui.PasskeyRow{
			ID: base64.RawURLEncoding.EncodeToString(pk.CredentialID), Name: pk.Name, Created: pk.CreatedAt, LastUsed: pk.LastUsedAt,
		})
	}
	page.RemovePasskeyAction = s.issuer(h.Key) + accountPasskeyRemovePath
	page.AddPasskey, page.PasskeysOff = nil, ""
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		return err
	}
	if _, ok := p.Method(store.AuthPasskey); !ok {
		if len(list) > 0 {
			page.PasskeysOff = MsgPasskeysOff
		}
		return nil
	}
	if rp, why := s.passkeyRelyingParty(h); rp == nil {
		page.PasskeysOff = why
		return nil
	}
	if len(list) >= store.MaxPasskeysPerHuman {
		page.PasskeysOff = fmt.Sprintf("You have %d passkeys, the most an account may have. Remove one to add another.", len(list))
		return nil
	}
	page.AddPasskey = &consentui.PasskeyForm{
		Action: s.issuer(h.Key) + accountPasskeysPath, OptionsURL: s.issuer(h.Key) + accountPasskeyOptionsPath,
		Label: "Add a passkey", Register: true,
	}
	return nil
}

// passkeyHuman is the signed-in human with their passkeys, as the ceremonies see them.
func (s *Server) passkeyHuman(ctx context.Context, h store.Host, uid string) (passkeys.Human, error) {
	u, err := s.cfg.Store.GetUser(ctx, h.Key, uid)
	if err != nil {
		return passkeys.Human{}, err
	}
	list, err := s.cfg.Store.ListPasskeys(ctx, h.Key, uid)
	if err != nil {
		return passkeys.Human{}, err
	}
	return passkeys.Human{ID: u.ID, Email: u.Email, Passkeys: list}, nil
}

// accountPasskeyOptions begins adding a passkey to the signed-in human's account.
func (s *Server) accountPasskeyOptions(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.scriptForm(w, r) {
		return
	}
	ctx := r.Context()
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, "This browser is not signed in any more. Reload the page.")
		return
	}
	var page consentui.AccountPage
	if err := s.accountPasskeys(ctx, h, uid, &page); err != nil {
		s.log.Error("oauthserver: load passkeys", "host", h.Key, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "The gateway could not start the passkey prompt.")
		return
	}
	if page.AddPasskey == nil {
		writeJSONError(w, http.StatusConflict, page.PasskeysOff)
		return
	}
	rp, _ := s.passkeyRelyingParty(h)
	human, err := s.passkeyHuman(ctx, h, uid)
	if err != nil {
		s.log.Error("oauthserver: load the human of a passkey", "host", h.Key, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "The gateway could not start the passkey prompt.")
		return
	}
	options, state, err := rp.BeginRegistration(human)
	if err == nil {
		err = s.beginCeremony(ctx, w, h, ceremonyRegister, "", uid, state)
	}
	if err != nil {
		s.log.Error("oauthserver: begin a passkey registration", "host", h.Key, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "The gateway could not start the passkey prompt.")
		return
	}
	writeJSON(w, http.StatusOK, options)
}

// accountAddPasskey adds the passkey the browser made to the signed-in human's account.
func (s *Server) accountAddPasskey(w http.ResponseWriter, r *http.Request, h store.Host) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPasskeyFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form could not be read."})
		return
	}
	if !s.accountForm(w, r, h) {
		return
	}
	ctx := r.Context()
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		s.notSignedIn(w, h)
		return
	}
	fail := func(status int, msg, reason string) {
		s.auditAccountAction(ctx, h.Key, uid, "passkey.register.failure", reason)
		s.accountPageWith(w, r, h, uid, status, func(p *consentui.AccountPage) { p.PasskeyError = msg })
	}
	rec, _, err := s.takeCeremony(ctx, w, r, h, ceremonyRegister)
	if err != nil {
		if !errors.Is(err, errNoCeremony) {
			s.internalError(w, h, "take the passkey ceremony", err)
			return
		}
		fail(http.StatusBadRequest, "The passkey prompt expired. Try again.", err.Error())
		return
	}
	if rec.UserID != uid {
		fail(http.StatusBadRequest, "The passkey prompt was started by another account. Try again.", "ceremony of another human")
		return
	}
	rp, why := s.passkeyRelyingParty(h)
	if rp == nil {
		fail(http.StatusServiceUnavailable, why, why)
		return
	}
	human, err := s.passkeyHuman(ctx, h, uid)
	if err != nil {
		s.internalError(w, h, "load the human of a passkey", err)
		return
	}
	pk, err := rp.FinishRegistration(human, rec.State, []byte(r.PostFormValue("credential")))
	if err != nil {
		if !isPasskeyRefusal(err) {
			s.internalError(w, h, "check a new passkey", err)
			return
		}
		fail(http.StatusBadRequest, "The passkey could not be added: the browser's answer did not check out. Try again.", err.Error())
		return
	}
	pk.Host, pk.Name = h.Key, r.PostFormValue("name")
	if _, err := s.cfg.Store.CreatePasskey(ctx, pk); err != nil {
		switch {
		case errors.Is(err, store.ErrInvalid):
			fail(http.StatusBadRequest, fmt.Sprintf("The passkey's name must be at most %d characters, on one line.", store.MaxPasskeyNameLen), err.Error())
		case errors.Is(err, store.ErrConflict):
			fail(http.StatusConflict, "That passkey is already registered, or you have as many passkeys as an account may have.", err.Error())
		default:
			s.internalError(w, h, "store a passkey", err)
		}
		return
	}
	s.auditAccountAction(ctx, h.Key, uid, "passkey.register", "")
	s.accountPageWith(w, r, h, uid, http.StatusOK, func(p *consentui.AccountPage) { p.Notice = MsgPasskeyAdded })
}

// accountRemovePasskey removes one of the signed-in human's passkeys.
func (s *Server) accountRemovePasskey(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.accountForm(w, r, h) {
		return
	}
	ctx := r.Context()
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		s.notSignedIn(w, h)
		return
	}
	notFound := func() {
		s.accountPageWith(w, r, h, uid, http.StatusNotFound, func(p *consentui.AccountPage) {
			p.PasskeyError = "That passkey is not on your account (it may be removed already)."
		})
	}
	id, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("credential_id"))
	if err != nil || len(id) == 0 {
		notFound()
		return
	}
	if err := s.cfg.Store.DeletePasskey(ctx, h.Key, uid, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			notFound()
			return
		}
		s.internalError(w, h, "remove a passkey", err)
		return
	}
	s.auditAccountAction(ctx, h.Key, uid, "passkey.remove", "")
	s.accountPageWith(w, r, h, uid, http.StatusOK, func(p *consentui.AccountPage) { p.Notice = MsgPasskeyRemoved })
}

// accountPageWith shows uid's account page changed by edit.
func (s *Server) accountPageWith(w http.ResponseWriter, r *http.Request, h store.Host, uid string, status int, edit func(*consentui.AccountPage)) {
	page, err := s.accountOf(r.Context(), h, uid)
	if err != nil {
		s.internalError(w, h, "load account", err)
		return
	}
	edit(&page)
	s.accountPage(w, r, h, page, status)
}
