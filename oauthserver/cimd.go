package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
)

// OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, which the
// MCP authorization spec recommends from 2025-11-25): a client whose client_id is an https URL
// is not registered; the authorization server fetches its metadata from that URL.

// Limits of Client ID Metadata Documents.
const (
	// CIMDMaxBytes bounds a fetched document (the draft suggests 5 kilobytes).
	CIMDMaxBytes = 5120
	// DefaultCIMDCacheTTL is how long a document is trusted when its response says nothing.
	DefaultCIMDCacheTTL = time.Hour
	// MaxCIMDCacheTTL caps a document's Cache-Control max-age.
	MaxCIMDCacheTTL = 24 * time.Hour
	// maxCIMDRedirectURIs bounds redirect_uris in a document (the size bound would anyway).
	maxCIMDRedirectURIs = 50
	// maxClientIDURLLen bounds a client_id URL.
	maxClientIDURLLen = 2048
)

// Errors of FetchClientMetadata; every error wraps exactly one of them.
var (
	// ErrCIMDFetch: the document could not be retrieved (network, refused address, status
	// other than 200, redirect).
	ErrCIMDFetch = errors.New("cannot fetch client metadata document")
	// ErrCIMDInvalid: the client_id is not a metadata document URL, or the document is
	// oversized, not JSON, or breaks a rule.
	ErrCIMDInvalid = errors.New("invalid client metadata document")
)

// ClientMetadata is a fetched and validated Client ID Metadata Document.
type ClientMetadata struct {
	ClientID                string   // the document's URL, equal to its client_id
	ClientName              string   // optional
	ClientURI               string   // optional, https
	LogoURI                 string   // optional, https
	RedirectURIs            []string // at least one, each valid (ValidateRedirectURI)
	GrantTypes              []string // default [authorization_code]
	ResponseTypes           []string // [code]
	TokenEndpointAuthMethod string   // "none" (absent means none: a document cannot carry a secret)
	Scope                   string   // optional
	// Raw is the document as fetched (at most CIMDMaxBytes), for storing.
	Raw json.RawMessage
	// FetchedAt is when the document was fetched; ExpiresAt when it must be fetched again:
	// FetchedAt plus the response's Cache-Control max-age (capped at MaxCIMDCacheTTL),
	// DefaultCIMDCacheTTL without one, FetchedAt itself with no-store or no-cache.
	FetchedAt time.Time
	ExpiresAt time.Time
}

// IsClientIDMetadataURL reports whether clientID is a Client ID Metadata Document URL, which
// the authorization server fetches instead of looking the client up: an https URL with a host
// and a path other than "/", without fragment, userinfo, or "." / ".." path segments (a query
// and a port are allowed, though the draft discourages them).
func IsClientIDMetadataURL(clientID string) bool { return checkClientIDURL(clientID) == "" }

// checkClientIDURL returns why s is not a client ID metadata document URL, or "".
func checkClientIDURL(s string) string {
	if !strings.HasPrefix(s, "https://") {
		return "it must be an https URL"
	}
	if len(s) > maxClientIDURLLen {
		return fmt.Sprintf("it is longer than %d characters", maxClientIDURLLen)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return "it contains whitespace, control or non-ASCII characters"
		case c == '#':
			return "it must not contain a fragment"
		case c == '\\':
			return "it contains a backslash"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "it is not a valid URL"
	}
	if u.User != nil {
		return "it must not contain userinfo"
	}
	if u.Hostname() == "" {
		return "it must have a host"
	}
	if strings.HasSuffix(u.Host, ":") {
		return "it has an empty port"
	}
	if u.Path == "" || u.Path == "/" {
		return "it must have a path (e.g. https://app.example.com/oauth/client.json)"
	}
	for _, p := range []string{u.Path, u.EscapedPath()} {
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return "it must not contain . or .. path segments"
			}
		}
	}
	for _, seg := range strings.Split(strings.ToLower(u.EscapedPath()), "/") {
		if seg == "%2e" || seg == "%2e%2e" || seg == ".%2e" || seg == "%2e." {
			return "it must not contain . or .. path segments"
		}
	}
	return ""
}

// FetchClientMetadata fetches and validates the Client ID Metadata Document at clientID.
//
// client should be an SSRF-safe client (ssrf.NewClient; nil means ssrf.NewClient with its
// defaults). Whatever client is given, redirects are not followed. The request is a GET with
// Accept: application/json; only a 200 answer is accepted, with a body of at most
// CIMDMaxBytes holding a JSON object whose client_id equals clientID exactly. The document
// must list redirect_uris (each valid by ValidateRedirectURI), must not contain a
// client_secret, and may only use token_endpoint_auth_method "none" (absent means none);
// shared-secret methods are impossible for a public document, and private_key_jwt is not
// supported by trustgate yet. grant_types and response_types follow the registration rules.
// The response's Content-Type is not checked.
//
// Errors wrap ErrCIMDFetch or ErrCIMDInvalid and name the URL.
func FetchClientMetadata(ctx context.Context, client *http.Client, clientID string) (*ClientMetadata, error) {
	if reason := checkClientIDURL(clientID); reason != "" {
		return nil, fmt.Errorf("%w: client_id %q is not a client metadata document URL: %s", ErrCIMDInvalid, truncateForMessage(clientID, 200), reason)
	}
	if client == nil {
		client = ssrf.NewClient(ssrf.Options{MaxBodyBytes: CIMDMaxBytes})
	}
	noRedirects := *client
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCIMDInvalid, clientID, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := noRedirects.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return nil, fmt.Errorf("%w %s: %w", ErrCIMDFetch, clientID, err)
	}
	defer resp.Body.Close()
	fetchedAt := time.Now()

	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("the server answered %s, not 200 OK", resp.Status)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			msg += " (redirects are not followed)"
		}
		return nil, fmt.Errorf("%w %s: %s", ErrCIMDFetch, clientID, msg)
	}
	body, err := ssrf.ReadLimited(resp, CIMDMaxBytes)
	if err != nil {
		if errors.Is(err, ssrf.ErrBodyTooLarge) {
			return nil, fmt.Errorf("%w %s: the document is larger than %d bytes", ErrCIMDInvalid, clientID, CIMDMaxBytes)
		}
		return nil, fmt.Errorf("%w %s: reading the document: %w", ErrCIMDFetch, clientID, err)
	}

	md, reason := parseClientMetadataDocument(body, clientID)
	if reason != "" {
		return nil, fmt.Errorf("%w %s: %s", ErrCIMDInvalid, clientID, reason)
	}
	md.Raw = json.RawMessage(body)
	md.FetchedAt = fetchedAt
	md.ExpiresAt = cimdExpiresAt(resp.Header.Values("Cache-Control"), fetchedAt)
	return md, nil
}

// parseClientMetadataDocument validates a document's content; reason is "" when it is valid.
func parseClientMetadataDocument(body []byte, clientID string) (md *ClientMetadata, reason string) {
	f, rerr := decodeMetadataObject(body, "the document")
	if rerr != nil {
		return nil, rerr.Description
	}
	id, rerr := stringField(f, "client_id")
	switch {
	case rerr != nil:
		return nil, rerr.Description
	case id == "":
		return nil, "the document has no client_id"
	case id != clientID:
		return nil, fmt.Sprintf("the document's client_id %q is not its URL", truncateForMessage(id, 200))
	}
	for _, k := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := f[k]; ok {
			return nil, fmt.Sprintf("the document must not contain %s (a metadata document is public and cannot carry a secret)", k)
		}
	}

	md = &ClientMetadata{ClientID: clientID}
	if md.TokenEndpointAuthMethod, rerr = stringField(f, "token_endpoint_auth_method"); rerr != nil {
		return nil, rerr.Description
	}
	switch m := md.TokenEndpointAuthMethod; m {
	case "":
		md.TokenEndpointAuthMethod = AuthMethodNone
	case AuthMethodNone:
	case AuthMethodPrivateKeyJWT:
		return nil, "token_endpoint_auth_method private_key_jwt is not supported by trustgate yet; use none"
	case AuthMethodClientSecretBasic, AuthMethodClientSecretPost, AuthMethodClientSecretJWT:
		return nil, fmt.Sprintf("token_endpoint_auth_method %s is not allowed: a metadata document cannot carry a shared secret; use none", m)
	default:
		return nil, fmt.Sprintf("token_endpoint_auth_method %q is not supported; use none", truncateForMessage(m, 64))
	}

	if md.RedirectURIs, rerr = redirectURIsField(f, maxCIMDRedirectURIs); rerr != nil {
		return nil, rerr.Description
	}
	if md.GrantTypes, md.ResponseTypes, rerr = grantAndResponseTypes(f); rerr != nil {
		return nil, rerr.Description
	}
	if md.ClientName, rerr = textField(f, "client_name", MaxClientNameLen); rerr != nil {
		return nil, rerr.Description
	}
	if md.ClientURI, rerr = httpsURLField(f, "client_uri"); rerr != nil {
		return nil, rerr.Description
	}
	if md.LogoURI, rerr = httpsURLField(f, "logo_uri"); rerr != nil {
		return nil, rerr.Description
	}
	if md.Scope, rerr = scopeField(f); rerr != nil {
		return nil, rerr.Description
	}
	return md, ""
}

// cimdExpiresAt is when a document fetched at fetchedAt with these Cache-Control header values
// expires: no-store or no-cache → fetchedAt (do not reuse); max-age=N → fetchedAt+N, capped at
// MaxCIMDCacheTTL; otherwise fetchedAt+DefaultCIMDCacheTTL.
func cimdExpiresAt(cacheControl []string, fetchedAt time.Time) time.Time {
	ttl := DefaultCIMDCacheTTL
	for _, v := range cacheControl {
		for _, directive := range strings.Split(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return fetchedAt
			case "max-age":
				secs, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if err != nil {
					continue // an invalid max-age is ignored
				}
				if secs >= uint64(MaxCIMDCacheTTL/time.Second) {
					ttl = MaxCIMDCacheTTL
				} else {
					ttl = time.Duration(secs) * time.Second
				}
			}
		}
	}
	return fetchedAt.Add(ttl)
}
