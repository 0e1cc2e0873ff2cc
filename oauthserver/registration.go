package oauthserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// RFC 7591 dynamic client registration: parsing and validating a registration request, the
// registration response, and client credentials. Storing the client is the caller's.

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
	AuthMethodClientSecretJWT   = "client_secret_jwt"
)

// Grant and response types trustgate supports.
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
	ResponseTypeCode           = "code"
)

// Agent types: trustgate's registration extension saying how the client's agent works. "chat"
// acts while a human converses with it; "proactive" starts work on its own on the human's
// behalf; "ambient" runs continuously in the background.
const (
	AgentTypeChat      = "chat"
	AgentTypeProactive = "proactive"
	AgentTypeAmbient   = "ambient"
)

// RFC 7591 §3.2.2 error codes used here.
const (
	RegistrationErrorInvalidRedirectURI    = "invalid_redirect_uri"
	RegistrationErrorInvalidClientMetadata = "invalid_client_metadata"
)

// Registration limits and defaults.
const (
	DefaultRegistrationMaxBodyBytes = 16 << 10
	DefaultMaxRedirectURIs          = 10
	MaxClientNameLen                = 200 // characters
	MaxClientURILen                 = 2048
	maxContacts                     = 10
	maxContactLen                   = 320
	maxSoftwareFieldLen             = 200
	maxScopeLen                     = 1000
)

// RegistrationLimits bound a registration request. The zero value means the defaults.
type RegistrationLimits struct {
	// MaxBodyBytes bounds the request body (default 16 KiB). Unknown metadata fields are
	// accepted and ignored (RFC 7591 §2), so this is what bounds them.
	MaxBodyBytes int64
	// MaxRedirectURIs bounds redirect_uris (default 10).
	MaxRedirectURIs int
}

func (l RegistrationLimits) withDefaults() RegistrationLimits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultRegistrationMaxBodyBytes
	}
	if l.MaxRedirectURIs <= 0 {
		l.MaxRedirectURIs = DefaultMaxRedirectURIs
	}
	return l
}

// RegistrationError is an RFC 7591 §3.2.2 error response.
type RegistrationError struct {
	Code        string // invalid_redirect_uri or invalid_client_metadata
	Description string
}

func (e *RegistrationError) Error() string { return e.Code + ": " + e.Description }

func invalidMetadata(format string, args ...any) *RegistrationError {
	return &RegistrationError{Code: RegistrationErrorInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func invalidRedirect(format string, args ...any) *RegistrationError {
	return &RegistrationError{Code: RegistrationErrorInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// WriteRegistrationError writes err as an RFC 7591 error response: a *RegistrationError (also
// wrapped) as 400 {"error","error_description"}; anything else as 500 server_error, without
// its text. Responses are not cached.
func WriteRegistrationError(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	var re *RegistrationError
	if errors.As(err, &re) {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": re.Code, "error_description": re.Description})
		return
	}
	WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "client registration failed"})
}

// WriteRegistrationThrottled answers a registration refused by the per-address throttle: 429
// with Retry-After (whole seconds, at least 1) and an OAuth-style error body.
func WriteRegistrationThrottled(w http.ResponseWriter, retryAfter time.Duration) {
	secs := max(1, int64((retryAfter+time.Second-1)/time.Second))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	WriteJSON(w, http.StatusTooManyRequests, map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "too many client registrations from this address; retry after " + strconv.FormatInt(secs, 10) + " seconds",
	})
}

// WriteRegistrationResponse writes a successful registration: 201 Created with the client
// information (see RegistrationRequest.Response), not cached since it may hold a secret.
func WriteRegistrationResponse(w http.ResponseWriter, response map[string]any) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	WriteJSON(w, http.StatusCreated, response)
}

// RegistrationRequest is a validated RFC 7591 client registration request, defaults applied.
type RegistrationRequest struct {
	RedirectURIs            []string // 1..MaxRedirectURIs, each valid (ValidateRedirectURI), deduplicated
	ClientName              string
	TokenEndpointAuthMethod string   // none, client_secret_basic (default) or client_secret_post
	GrantTypes              []string // authorization_code (always) and optionally refresh_token
	ResponseTypes           []string // ["code"]
	Scope                   string   // space-separated, as requested ("" when absent)
	ClientURI               string
	LogoURI                 string
	PolicyURI               string
	TosURI                  string
	Contacts                []string
	SoftwareID              string
	SoftwareVersion         string
	AgentType               string // "", chat, proactive or ambient (trustgate extension)
}

// Public reports whether the client is public (token_endpoint_auth_method "none"): it gets no
// secret and must use PKCE.
func (r *RegistrationRequest) Public() bool { return r.TokenEndpointAuthMethod == AuthMethodNone }

// Scopes is Scope split on spaces.
func (r *RegistrationRequest) Scopes() []string { return strings.Fields(r.Scope) }

// ParseRegistrationRequest reads and validates an RFC 7591 registration request: a JSON object
// (Content-Type application/json) of at most limits.MaxBodyBytes. Unknown fields are ignored
// (RFC 7591 §2). It applies RFC 7591's defaults: token_endpoint_auth_method
// client_secret_basic (public clients, as MCP clients are, send "none"), grant_types
// [authorization_code], response_types [code]. Errors are *RegistrationError.
func ParseRegistrationRequest(r *http.Request, limits RegistrationLimits) (*RegistrationRequest, error) {
	limits = limits.withDefaults()
	if ct := r.Header.Get("Content-Type"); ct == "" {
		return nil, invalidMetadata("the request must be JSON (Content-Type: application/json)")
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, invalidMetadata("the request must be JSON (Content-Type: application/json), not %q", truncateForMessage(ct, 64))
	}
	if r.Body == nil {
		return nil, invalidMetadata("the request body is empty")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limits.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, invalidMetadata("the registration request is larger than %d bytes", limits.MaxBodyBytes)
		}
		return nil, invalidMetadata("the registration request could not be read")
	}
	fields, rerr := decodeMetadataObject(body, "the registration request")
	if rerr != nil {
		return nil, rerr
	}
	return parseRegistrationFields(fields, limits)
}

// decodeMetadataObject decodes a JSON object into its fields; JSON null fields are dropped
// (treated as absent).
func decodeMetadataObject(body []byte, what string) (map[string]json.RawMessage, *RegistrationError) {
	if !utf8.Valid(body) {
		return nil, invalidMetadata("%s is not valid UTF-8", what)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, invalidMetadata("%s is empty", what)
	}
	if trimmed[0] != '{' {
		return nil, invalidMetadata("%s must be a JSON object", what)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, invalidMetadata("%s is not valid JSON: %s", what, jsonErrReason(err))
	}
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k)
		}
	}
	return fields, nil
}

func jsonErrReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "malformed"
}

func parseRegistrationFields(f map[string]json.RawMessage, limits RegistrationLimits) (*RegistrationRequest, error) {
	var req RegistrationRequest
	var err *RegistrationError

	// redirect_uris: required for the authorization code grant.
	if req.RedirectURIs, err = redirectURIsField(f, limits.MaxRedirectURIs); err != nil {
		return nil, err
	}
	if req.ClientName, err = textField(f, "client_name", MaxClientNameLen); err != nil {
		return nil, err
	}

	if req.TokenEndpointAuthMethod, err = stringField(f, "token_endpoint_auth_method"); err != nil {
		return nil, err
	}
	switch req.TokenEndpointAuthMethod {
	case "":
		req.TokenEndpointAuthMethod = AuthMethodClientSecretBasic // RFC 7591 §2 default
	case AuthMethodNone, AuthMethodClientSecretBasic, AuthMethodClientSecretPost:
	default:
		return nil, invalidMetadata("token_endpoint_auth_method %q is not supported; use none (public client), client_secret_basic or client_secret_post", truncateForMessage(req.TokenEndpointAuthMethod, 64))
	}

	if req.GrantTypes, req.ResponseTypes, err = grantAndResponseTypes(f); err != nil {
		return nil, err
	}
	if req.Scope, err = scopeField(f); err != nil {
		return nil, err
	}
	for _, u := range []struct {
		name string
		dst  *string
	}{{"client_uri", &req.ClientURI}, {"logo_uri", &req.LogoURI}, {"policy_uri", &req.PolicyURI}, {"tos_uri", &req.TosURI}} {
		if *u.dst, err = httpsURLField(f, u.name); err != nil {
			return nil, err
		}
	}
	if req.Contacts, err = contactsField(f); err != nil {
		return nil, err
	}
	if req.SoftwareID, err = textField(f, "software_id", maxSoftwareFieldLen); err != nil {
		return nil, err
	}
	if req.SoftwareVersion, err = textField(f, "software_version", maxSoftwareFieldLen); err != nil {
		return nil, err
	}
	if req.AgentType, err = stringField(f, "agent_type"); err != nil {
		return nil, err
	}
	switch req.AgentType {
	case "", AgentTypeChat, AgentTypeProactive, AgentTypeAmbient:
	default:
		return nil, invalidMetadata("agent_type %q is not one of chat, proactive, ambient", truncateForMessage(req.AgentType, 64))
	}
	return &req, nil
}

// Response is the RFC 7591 §3.2.1 client information response: client_id,
// client_id_issued_at, and for a confidential client client_secret with
// client_secret_expires_at 0 (never expires), followed by the registered metadata with
// defaults applied. clientSecret is ignored for a public client.
func (r *RegistrationRequest) Response(clientID, clientSecret string, issuedAt time.Time) map[string]any {
	m := map[string]any{
		"client_id":                  clientID,
		"client_id_issued_at":        issuedAt.Unix(),
		"redirect_uris":              slices.Clone(r.RedirectURIs),
		"token_endpoint_auth_method": r.TokenEndpointAuthMethod,
		"grant_types":                slices.Clone(r.GrantTypes),
		"response_types":             slices.Clone(r.ResponseTypes),
	}
	if !r.Public() && clientSecret != "" {
		m["client_secret"] = clientSecret
		m["client_secret_expires_at"] = 0
	}
	optional := map[string]string{
		"client_name":      r.ClientName,
		"scope":            r.Scope,
		"client_uri":       r.ClientURI,
		"logo_uri":         r.LogoURI,
		"policy_uri":       r.PolicyURI,
		"tos_uri":          r.TosURI,
		"software_id":      r.SoftwareID,
		"software_version": r.SoftwareVersion,
		"agent_type":       r.AgentType,
	}
	for k, v := range optional {
		if v != "" {
			m[k] = v
		}
	}
	if len(r.Contacts) > 0 {
		m["contacts"] = slices.Clone(r.Contacts)
	}
	return m
}

// Client credentials.

// clientIDEncoding is lower-case base32 without padding, like the store's ids.
var clientIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewClientID returns a new client_id for a dynamically registered client: "tgc_" followed by
// 26 lower-case base32 characters (130 random bits). It is URL-safe and never an https URL, so
// it cannot be mistaken for a Client ID Metadata Document URL.
func NewClientID() string {
	var b [17]byte         // 136 bits: 28 characters, of which 26 are kept
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "tgc_" + clientIDEncoding.EncodeToString(b[:])[:26]
}

// NewClientSecret returns a new client secret: "tgs_" followed by 43 base64url characters
// (256 random bits). The prefix lets secret scanners recognize a leaked one.
func NewClientSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "tgs_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashClientSecret is what is stored instead of a client secret: its SHA-256, in lower-case
// hex. A fast hash is enough because secrets are 256 random bits (NewClientSecret), not
// passwords.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ClientSecretMatches reports whether presented is the secret whose HashClientSecret is hash,
// comparing hashes in constant time. An empty hash (public client) or presented secret never
// matches.
func ClientSecretMatches(hash, presented string) bool {
	if hash == "" || presented == "" {
		return false
	}
	want := HashClientSecret(presented)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(hash)), []byte(want)) == 1
}

// Field decoders shared by registration and Client ID Metadata Documents. They return
// *RegistrationError; the CIMD code rewraps the description.

func stringField(f map[string]json.RawMessage, name string) (string, *RegistrationError) {
	raw, ok := f[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidMetadata("%s must be a string", name)
	}
	return s, nil
}

func stringArrayField(f map[string]json.RawMessage, name string) ([]string, bool, *RegistrationError) {
	raw, ok := f[name]
	if !ok {
		return nil, false, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, true, invalidMetadata("%s must be an array of strings", name)
	}
	return ss, true, nil
}

// textField is a human-readable string: at most max characters, no control characters.
func textField(f map[string]json.RawMessage, name string, max int) (string, *RegistrationError) {
	s, err := stringField(f, name)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", invalidMetadata("%s is longer than %d characters", name, max)
	}
	if strings.ContainsFunc(s, isForbiddenTextRune) {
		return "", invalidMetadata("%s contains control characters", name)
	}
	return s, nil
}

// isForbiddenTextRune: control characters (C0, C1, DEL), the replacement character, and
// format characters that can disguise text on a consent page (bidi overrides, zero-width
// spaces), except the zero-width joiner that emoji sequences use.
func isForbiddenTextRune(r rune) bool {
	return unicode.IsControl(r) || r == utf8.RuneError || (unicode.Is(unicode.Cf, r) && r != '\u200d')
}

func redirectURIsField(f map[string]json.RawMessage, max int) ([]string, *RegistrationError) {
	uris, present, err := stringArrayField(f, "redirect_uris")
	if err != nil {
		return nil, &RegistrationError{Code: RegistrationErrorInvalidRedirectURI, Description: err.Description}
	}
	if !present || len(uris) == 0 {
		return nil, invalidRedirect("redirect_uris is required: at least one redirect URI")
	}
	if len(uris) > max {
		return nil, invalidRedirect("redirect_uris has %d entries; at most %d are allowed", len(uris), max)
	}
	out := make([]string, 0, len(uris))
	for i, u := range uris {
		if verr := ValidateRedirectURI(u); verr != nil {
			return nil, invalidRedirect("redirect_uris[%d] %q: %v", i, truncateForMessage(u, 200), verr)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// grantAndResponseTypes validates grant_types and response_types and applies their defaults.
func grantAndResponseTypes(f map[string]json.RawMessage) (grants, responses []string, _ *RegistrationError) {
	grantTypes, present, err := stringArrayField(f, "grant_types")
	if err != nil {
		return nil, nil, err
	}
	if !present || len(grantTypes) == 0 {
		grants = []string{GrantTypeAuthorizationCode} // RFC 7591 §2 default
	}
	for _, g := range grantTypes {
		switch g {
		case GrantTypeAuthorizationCode, GrantTypeRefreshToken:
			if !slices.Contains(grants, g) {
				grants = append(grants, g)
			}
		case "implicit", "password", "client_credentials":
			return nil, nil, invalidMetadata("grant_type %q is not allowed (OAuth 2.1); use authorization_code with PKCE, and refresh_token", g)
		default:
			return nil, nil, invalidMetadata("grant_type %q is not supported; use authorization_code and refresh_token", truncateForMessage(g, 100))
		}
	}
	if !slices.Contains(grants, GrantTypeAuthorizationCode) {
		return nil, nil, invalidMetadata("grant_types must include authorization_code")
	}

	responseTypes, present, err := stringArrayField(f, "response_types")
	if err != nil {
		return nil, nil, err
	}
	if !present || len(responseTypes) == 0 {
		responseTypes = []string{ResponseTypeCode} // RFC 7591 §2 default
	}
	for _, rt := range responseTypes {
		if rt != ResponseTypeCode {
			return nil, nil, invalidMetadata("response_type %q is not supported; only code is (OAuth 2.1)", truncateForMessage(rt, 100))
		}
	}
	return grants, []string{ResponseTypeCode}, nil
}

// scopeField is a space-separated list of RFC 6749 §3.3 scope tokens.
func scopeField(f map[string]json.RawMessage) (string, *RegistrationError) {
	scope, err := stringField(f, "scope")
	if err != nil {
		return "", err
	}
	if len(scope) > maxScopeLen {
		return "", invalidMetadata("scope is longer than %d characters", maxScopeLen)
	}
	for _, tok := range strings.Split(scope, " ") {
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", invalidMetadata("scope must be space-separated tokens of printable ASCII (no quotes or backslashes)")
			}
		}
	}
	return strings.Join(strings.Fields(scope), " "), nil
}

// httpsURLField is an optional absolute https URL (client_uri, logo_uri, policy_uri, tos_uri).
func httpsURLField(f map[string]json.RawMessage, name string) (string, *RegistrationError) {
	s, err := stringField(f, name)
	if err != nil || s == "" {
		return "", err
	}
	if reason := checkHTTPSURL(s); reason != "" {
		return "", invalidMetadata("%s %s", name, reason)
	}
	return s, nil
}

// checkHTTPSURL returns why s is not an acceptable https URL, or "".
func checkHTTPSURL(s string) string {
	if len(s) > MaxClientURILen {
		return fmt.Sprintf("is longer than %d characters", MaxClientURILen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "contains whitespace, control, non-ASCII characters or a backslash"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "is not a valid URL"
	}
	if u.Scheme != "https" || u.Opaque != "" || u.Hostname() == "" {
		return "must be an https URL (https://host/…)"
	}
	if u.User != nil {
		return "must not contain userinfo"
	}
	return ""
}

func contactsField(f map[string]json.RawMessage) ([]string, *RegistrationError) {
	contacts, _, err := stringArrayField(f, "contacts")
	if err != nil {
		return nil, err
	}
	if len(contacts) > maxContacts {
		return nil, invalidMetadata("contacts has %d entries; at most %d are allowed", len(contacts), maxContacts)
	}
	for i, c := range contacts {
		if c == "" || utf8.RuneCountInString(c) > maxContactLen || strings.ContainsFunc(c, isForbiddenTextRune) {
			return nil, invalidMetadata("contacts[%d] must be a non-empty string of at most %d characters without control characters", i, maxContactLen)
		}
	}
	return contacts, nil
}
