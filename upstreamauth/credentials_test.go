package upstreamauth

import (
	"bytes"
	"errors"
	"testing"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

func TestSealOpen(t *testing.T) {
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{3}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	kind, sealed, err := SealCredentials(keys, "acme", "linear", Credentials{Header: &CredentialHeader{Name: "authorization", Value: "Bearer s3cret"}})
	if err != nil || kind != CredentialKindHeader || bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatalf("seal: kind %q, plaintext visible %v, err %v", kind, bytes.Contains(sealed, []byte("s3cret")), err)
	}
	c, err := OpenCredentials(keys, store.Server{Host: "acme", Key: "linear", CredentialKind: kind, Credentials: sealed})
	if err != nil {
		t.Fatal(err)
	}
	if name, value, ok := c.HeaderOf(); !ok || name != "Authorization" || value != "Bearer s3cret" {
		t.Fatalf("header = %q %q %v", name, value, ok)
	}
	// Copied to another server's row, the value does not open.
	if _, err := OpenCredentials(keys, store.Server{Host: "acme", Key: "github", CredentialKind: kind, Credentials: sealed}); !errors.Is(err, secrets.ErrOpen) {
		t.Fatalf("opened under another server: %v", err)
	}
	// A row claiming another kind than the sealed value holds is malformed.
	if _, err := OpenCredentials(keys, store.Server{Host: "acme", Key: "linear", CredentialKind: CredentialKindOAuthClient, Credentials: sealed}); err == nil {
		t.Fatal("kind mismatch accepted")
	}
	if kind, sealed, err := SealCredentials(keys, "acme", "linear", Credentials{}); kind != CredentialKindNone || sealed != nil || err != nil {
		t.Fatalf("no credentials sealed to %q %v %v", kind, sealed, err)
	}
	kind, sealed, _ = SealCredentials(keys, "acme", "linear", Credentials{OAuthClient: &OAuthClient{ClientID: "id", ClientSecret: "sec"}})
	c, err = OpenCredentials(keys, store.Server{Host: "acme", Key: "linear", CredentialKind: kind, Credentials: sealed})
	if err != nil || kind != CredentialKindOAuthClient || c.OAuthClient.ClientSecret != "sec" {
		t.Fatalf("oauth client: %q %+v %v", kind, c, err)
	}
}
