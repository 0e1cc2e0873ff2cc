// Package webauthnkey is a software WebAuthn authenticator for tests: a real P-256 key that
// answers a relying party's creation and request options the way a browser and a platform
// authenticator do (attestation "none", user present and verified, a discoverable credential
// that returns its user handle), so that the ceremonies can be tested without a browser. Its
// knobs make the answers a real authenticator must never give: another origin or relying
// party, a counter that goes backwards, no user verification.
package webauthnkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator holds one credential once Create has run.
type Authenticator struct {
	// Origin is the origin the "browser" puts into the client data.
	Origin string
	// RPID, when set, replaces the relying party ID the options name (its hash is in the
	// authenticator data).
	RPID string
	// Counter is the signature counter the next answer carries (Get adds one first).
	Counter uint32
	// SkipUserVerification clears the UV flag.
	SkipUserVerification bool
	// UserHandle, when set, replaces the user handle Get answers with (the one Create was
	// given otherwise).
	UserHandle []byte

	key          *ecdsa.PrivateKey
	credentialID []byte
	userHandle   []byte
}

// New is an authenticator for pages of origin.
func New(origin string) *Authenticator {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &Authenticator{Origin: origin, key: key, credentialID: id}
}

// CredentialID is the credential's id.
func (a *Authenticator) CredentialID() []byte { return a.credentialID }

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	} `json:"publicKey"`
}

var b64 = base64.RawURLEncoding

// Create answers navigator.credentials.create's options (JSON, as the relying party sent
// them) with a new credential, as the JSON a browser's PublicKeyCredential serializes to.
func (a *Authenticator) Create(options []byte) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("webauthnkey: creation options: %w", err)
	}
	user, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil || o.PublicKey.Challenge == "" {
		return nil, errors.New("webauthnkey: creation options without a challenge or user id")
	}
	a.userHandle = user
	clientData := a.clientData("webauthn.create", o.PublicKey.Challenge)
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pad32(a.key.X.Bytes()), -3: pad32(a.key.Y.Bytes())})
	if err != nil {
		return nil, err
	}
	auth := a.authData(o.PublicKey.RP.ID, 0x40)
	auth = append(auth, make([]byte, 16)...) // AAGUID
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(a.credentialID)))
	auth = append(auth, a.credentialID...)
	auth = append(auth, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.credentialID), "rawId": b64.EncodeToString(a.credentialID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(clientData), "attestationObject": b64.EncodeToString(att),
			"transports": []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Get answers navigator.credentials.get's options with a signed assertion of the credential
// (its counter one higher than the last answer's).
func (a *Authenticator) Get(options []byte) ([]byte, error) {
	if a.userHandle == nil {
		return nil, errors.New("webauthnkey: no credential yet (call Create)")
	}
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		return nil, fmt.Errorf("webauthnkey: request options without a challenge (%v)", err)
	}
	a.Counter++
	handle := a.userHandle
	if a.UserHandle != nil {
		handle = a.UserHandle
	}
	clientData := a.clientData("webauthn.get", o.PublicKey.Challenge)
	auth := a.authData(o.PublicKey.RPID, 0)
	sum := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte{}, auth...), sum[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.credentialID), "rawId": b64.EncodeToString(a.credentialID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(clientData), "authenticatorData": b64.EncodeToString(auth),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(handle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

// authData is the authenticator data up to the counter: the relying party ID's hash, the
// flags (user present, user verified unless skipped, plus extra) and the counter.
func (a *Authenticator) authData(rpID string, extra byte) []byte {
	if a.RPID != "" {
		rpID = a.RPID
	}
	h := sha256.Sum256([]byte(rpID))
	flags := byte(0x01) | extra
	if !a.SkipUserVerification {
		flags |= 0x04
	}
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, a.Counter)
}

func pad32(b []byte) []byte {
	if len(b) >= 32 {
		return b
	}
	return append(make([]byte, 32-len(b)), b...)
}
