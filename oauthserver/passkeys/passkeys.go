// Package passkeys runs the WebAuthn ceremonies of one host (github.com/go-webauthn/webauthn):
// registering a passkey for a signed-in human, and signing in with a passkey alone (a
// discoverable credential, no email typed). It is the relying party; the HTTP side (cookies,
// the store, audit) is the OAuth server's.
//
// The relying party ID is the host name of the host's issuer URL and the only accepted origin
// is the issuer's scheme://host[:port]: a passkey made for one gateway name answers no other,
// and an answer collected by another origin is refused. Passkeys must verify their user
// (PIN, biometrics) since they are the only factor; a signature counter that did not grow is
// refused as a sign of a cloned authenticator.
package passkeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/trustgate/trustgate/store"
)

// Limits of a ceremony.
const (
	// CeremonyTTL is how long a ceremony's options stay valid (the browser's timeout too).
	CeremonyTTL = 5 * time.Minute
	// MaxResponseBytes bounds the browser's answer (attestation statements included).
	MaxResponseBytes = 64 << 10
)

// Errors a ceremony ends with; each wraps the library's reason where there is one.
var (
	// ErrUnavailable: the issuer's URL cannot be a relying party (an IP address, or plain
	// http on a name other than localhost: browsers offer WebAuthn on neither).
	ErrUnavailable = errors.New("passkeys are not available at this address")
	// ErrRefused: the answer does not verify (wrong challenge, origin or relying party, bad
	// signature, no user verification, malformed).
	ErrRefused = errors.New("the passkey's answer was refused")
	// ErrUnknownPasskey: no passkey of the host has the answer's credential id, or it is not
	// the human's that the answer names.
	ErrUnknownPasskey = errors.New("this passkey is not registered here")
	// ErrCloned: the signature counter did not grow.
	ErrCloned = errors.New("the passkey's signature counter went backwards")
)

// RelyingParty is one host's WebAuthn relying party.
type RelyingParty struct {
	wa     *webauthn.WebAuthn
	id     string
	origin string
}

// ForIssuer is the relying party of the host whose issuer URL is issuer; displayName is how
// authenticators name it. ErrUnavailable when the URL cannot be one.
func ForIssuer(issuer, displayName string) (*RelyingParty, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: issuer %q is not an http(s) URL", ErrUnavailable, issuer)
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("%w: %s is an IP address; passkeys need a domain name", ErrUnavailable, host)
	}
	if u.Scheme == "http" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		return nil, fmt.Errorf("%w: browsers offer passkeys only over https (or on localhost)", ErrUnavailable)
	}
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	if displayName == "" {
		displayName = host
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         displayName,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: relying party %s: %w", host, err)
	}
	return &RelyingParty{wa: wa, id: host, origin: origin}, nil
}

// ID is the relying party ID (the issuer's host name).
func (rp *RelyingParty) ID() string { return rp.id }

// Origin is the one origin answers may come from.
func (rp *RelyingParty) Origin() string { return rp.origin }

// Human is a human of the host with their passkeys, as the ceremonies see them.
type Human struct {
	ID       string // the store's user id, also the WebAuthn user handle
	Email    string
	Passkeys []store.Passkey
}

func (h Human) WebAuthnID() []byte          { return []byte(h.ID) }
func (h Human) WebAuthnName() string        { return h.Email }
func (h Human) WebAuthnDisplayName() string { return h.Email }
func (h Human) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(h.Passkeys))
	for _, p := range h.Passkeys {
		transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
		for i, t := range p.Transports {
			transports[i] = protocol.AuthenticatorTransport(t)
		}
		out = append(out, webauthn.Credential{
			ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: p.AttestationType, Transport: transports,
			Flags:         webauthn.CredentialFlags{BackupEligible: p.BackupEligible, BackupState: p.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
		})
	}
	return out
}

// Ceremony is the state of a ceremony between its options and the browser's answer: the
// caller keeps it where only this browser can bring it back, once (it holds no secret, but
// it must not be replayed).
type Ceremony []byte

// BeginRegistration returns the options of navigator.credentials.create for a new passkey of
// h (JSON, with h's passkeys excluded so an authenticator is not registered twice) and the
// ceremony's state.
func (rp *RelyingParty) BeginRegistration(h Human) (options json.RawMessage, state Ceremony, err error) {
	creation, session, err := rp.wa.BeginRegistration(h,
		webauthn.WithExclusions(webauthn.Credentials(h.WebAuthnCredentials()).CredentialDescriptors()),
		webauthn.WithExtensions(protocol.AuthenticationExtensions{"credProps": true}))
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: begin registration: %w", err)
	}
	return encode(creation, session)
}

// FinishRegistration verifies the browser's answer to BeginRegistration's options for h and
// returns the new passkey (not yet stored).
func (rp *RelyingParty) FinishRegistration(h Human, state Ceremony, response []byte) (store.Passkey, error) {
	session, err := decodeState(state)
	if err != nil {
		return store.Passkey{}, err
	}
	if len(response) > MaxResponseBytes {
		return store.Passkey{}, fmt.Errorf("%w: the answer is larger than %d bytes", ErrRefused, MaxResponseBytes)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return store.Passkey{}, refused(err)
	}
	cred, err := rp.wa.CreateCredential(h, session, parsed)
	if err != nil {
		return store.Passkey{}, refused(err)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	aaguid := cred.Authenticator.AAGUID
	if bytes.Equal(aaguid, make([]byte, 16)) {
		aaguid = nil
	}
	return store.Passkey{
		UserID: h.ID, CredentialID: cred.ID, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		SignCount: cred.Authenticator.SignCount, Transports: transports, AAGUID: aaguid,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
	}, nil
}

// BeginSignIn returns the options of navigator.credentials.get for a sign-in with any
// passkey of the host (no credentials listed: the authenticator offers its discoverable
// ones) and the ceremony's state.
func (rp *RelyingParty) BeginSignIn() (options json.RawMessage, state Ceremony, err error) {
	assertion, session, err := rp.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: begin sign-in: %w", err)
	}
	return encode(assertion, session)
}

// Lookup finds the human whose passkey has credentialID; userHandle is the human id the
// authenticator gave. It returns ErrUnknownPasskey (wrapped) when there is none.
type Lookup func(credentialID, userHandle []byte) (Human, error)

// FinishSignIn verifies the browser's answer to BeginSignIn's options. It returns the human
// and the passkey with its new signature counter and backup state (for store.UsePasskey).
func (rp *RelyingParty) FinishSignIn(state Ceremony, response []byte, lookup Lookup) (Human, store.Passkey, error) {
	session, err := decodeState(state)
	if err != nil {
		return Human{}, store.Passkey{}, err
	}
	if len(response) > MaxResponseBytes {
		return Human{}, store.Passkey{}, fmt.Errorf("%w: the answer is larger than %d bytes", ErrRefused, MaxResponseBytes)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Human{}, store.Passkey{}, refused(err)
	}
	var found Human
	var lookupErr error
	user, cred, err := rp.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		found, lookupErr = lookup(rawID, userHandle)
		if lookupErr != nil {
			return nil, lookupErr
		}
		return found, nil
	}, session, parsed)
	if lookupErr != nil {
		return Human{}, store.Passkey{}, lookupErr
	}
	if err != nil {
		return Human{}, store.Passkey{}, refused(err)
	}
	h := user.(Human)
	var pk store.Passkey
	for _, p := range h.Passkeys {
		if bytes.Equal(p.CredentialID, cred.ID) {
			pk = p
		}
	}
	if pk.CredentialID == nil {
		return Human{}, store.Passkey{}, ErrUnknownPasskey
	}
	if cred.Authenticator.CloneWarning {
		return Human{}, store.Passkey{}, fmt.Errorf("%w: %d after %d", ErrCloned, parsed.Response.AuthenticatorData.Counter, pk.SignCount)
	}
	pk.SignCount, pk.BackupState = cred.Authenticator.SignCount, cred.Flags.BackupState
	return h, pk, nil
}

func encode(options any, session *webauthn.SessionData) (json.RawMessage, Ceremony, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: encode options: %w", err)
	}
	s, err := json.Marshal(session)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: encode ceremony: %w", err)
	}
	return o, s, nil
}

func decodeState(state Ceremony) (webauthn.SessionData, error) {
	var s webauthn.SessionData
	if err := json.Unmarshal(state, &s); err != nil || s.Challenge == "" {
		return webauthn.SessionData{}, fmt.Errorf("passkeys: the ceremony's state is unreadable")
	}
	return s, nil
}

// refused wraps the library's error in ErrRefused with its details (never a secret: the
// answer carries none).
func refused(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return fmt.Errorf("%w: %s", ErrRefused, pe.Details)
	}
	return fmt.Errorf("%w: %v", ErrRefused, err)
}
