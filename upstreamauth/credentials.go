package upstreamauth

// Credentials are the sealed form of an MCP server's upstream credentials (a static header, or
// the OAuth client the gateway uses at the upstream's authorization server): the one format the
// admin API writes and the admin API's sync, the consent flow and the proxy read. The plaintext
// exists only in memory; at rest it is sealed with the master key and bound to its server, so
// a sealed value copied to another server's row does not open.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// Kinds of stored credentials (store.Server.CredentialKind).
const (
	CredentialKindNone        = ""
	CredentialKindHeader      = "header"
	CredentialKindOAuthClient = "oauth_client"
)

// CredentialHeader is a static header sent to the upstream with every call.
type CredentialHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// OAuthClient is a client registered at the upstream's authorization server.
type OAuthClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// Credentials are a server's upstream credentials: at most one of the two.
type Credentials struct {
	Header      *CredentialHeader `json:"header,omitempty"`
	OAuthClient *OAuthClient      `json:"oauth_client,omitempty"`
}

// Kind names what c holds.
func (c Credentials) Kind() string {
	switch {
	case c.OAuthClient != nil:
		return CredentialKindOAuthClient
	case c.Header != nil:
		return CredentialKindHeader
	}
	return CredentialKindNone
}

// credentialsAAD binds a sealed value to its server.
func credentialsAAD(host, server string) string { return "server-credentials:" + host + "/" + server }

// SealCredentials returns the kind and the sealed bytes to store for the server (nil for no credentials).
func SealCredentials(keys *secrets.Keyring, host, server string, c Credentials) (kind string, sealed []byte, err error) {
	if c.Kind() == CredentialKindNone {
		return CredentialKindNone, nil, nil
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return "", nil, fmt.Errorf("encode credentials: %w", err)
	}
	return c.Kind(), keys.Seal(plain, credentialsAAD(host, server)), nil
}

// OpenCredentials unseals the server's stored credentials (zero Credentials when it has none).
func OpenCredentials(keys *secrets.Keyring, s store.Server) (Credentials, error) {
	if s.CredentialKind == CredentialKindNone {
		return Credentials{}, nil
	}
	if keys == nil {
		return Credentials{}, errors.New("no keyring to unseal the credentials")
	}
	plain, err := keys.Open(s.Credentials, credentialsAAD(s.Host, s.Key))
	if err != nil {
		return Credentials{}, fmt.Errorf("unseal: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(plain, &c); err != nil || c.Kind() != s.CredentialKind ||
		(c.Header != nil && c.Header.Name == "") {
		return Credentials{}, errors.New("stored credentials are malformed")
	}
	return c, nil
}

// HeaderOf returns the canonical name and the value of a header credential (ok false when c
// holds none).
func (c Credentials) HeaderOf() (name, value string, ok bool) {
	if c.Header == nil {
		return "", "", false
	}
	return http.CanonicalHeaderKey(c.Header.Name), c.Header.Value, true
}
