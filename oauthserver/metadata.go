package oauthserver

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/accesstoken"
)

// Discovery documents: RFC 8414 authorization server metadata (and its OpenID Connect
// Discovery twin) and RFC 9728 protected resource metadata. The WWW-Authenticate challenge that
// points MCP clients at the latter is accesstoken.WWWAuthenticate.
//
// Each host (tenant) is its own authorization server: its issuer is the host's base URL
// (tenant.URLs.Base), and its MCP resources are <issuer>/mcp and <issuer>/mcp/{server}.

// Endpoint paths, relative to the issuer.
const (
	AuthorizeEndpointPath     = "/authorize"
	TokenEndpointPath         = "/token"
	RegistrationEndpointPath  = "/register"
	RevocationEndpointPath    = "/revoke"
	IntrospectionEndpointPath = "/introspect"
	JWKSPath                  = "/.well-known/jwks.json"
)

// Well-known URI suffixes (RFC 8615). For an issuer with a path, the path follows the suffix:
// https://gw/.well-known/oauth-authorization-server/h/acme (RFC 8414 §3.1); see
// accesstoken.WellKnownPath. The protected resource metadata's is
// accesstoken.ProtectedResourceMetadataWellKnown.
const (
	AuthorizationServerMetadataWellKnown = "/.well-known/oauth-authorization-server"
	OpenIDConfigurationWellKnown         = "/.well-known/openid-configuration"
)

// MCPScope is the one scope trustgate advertises. What an agent may do is not expressed in
// scopes but in ReBAC relationships (trust levels granted per MCP server, checked on every
// tools/call), so a single scope meaning "use this host's MCP servers" is all a client needs
// to ask for (the fosite wiring is expected to grant it to clients that ask for no scope).
const MCPScope = "mcp"

// metadataCacheControl is the Cache-Control of discovery documents: public, an hour.
const metadataCacheControl = "public, max-age=3600"

// AuthorizationServerMetadata is the RFC 8414 metadata of the authorization server whose issuer
// is issuer (a host's base URL, no trailing slash). The map is new on every call: callers may
// add fields (service_documentation, op_policy_uri, …).
//
// Authentication methods advertised are those fosite implements for each endpoint: the token
// endpoint takes public clients ("none", PKCE-bound) and client secrets in the Authorization
// header or the form; revocation the same; introspection only HTTP Basic client credentials
// (fosite also accepts a bearer access token there, which RFC 8414 has no method name for).
func AuthorizationServerMetadata(issuer string) map[string]any {
	base := strings.TrimSuffix(issuer, "/")
	return map[string]any{
		"issuer":                                        issuer,
		"authorization_endpoint":                        base + AuthorizeEndpointPath,
		"token_endpoint":                                base + TokenEndpointPath,
		"registration_endpoint":                         base + RegistrationEndpointPath,
		"revocation_endpoint":                           base + RevocationEndpointPath,
		"introspection_endpoint":                        base + IntrospectionEndpointPath,
		"jwks_uri":                                      base + JWKSPath,
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query"},
		"grant_types_supported":                         []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":              []string{PKCEMethodS256},
		"token_endpoint_auth_methods_supported":         []string{AuthMethodNone, AuthMethodClientSecretBasic, AuthMethodClientSecretPost},
		"revocation_endpoint_auth_methods_supported":    []string{AuthMethodNone, AuthMethodClientSecretBasic, AuthMethodClientSecretPost},
		"introspection_endpoint_auth_methods_supported": []string{AuthMethodClientSecretBasic},
		"scopes_supported":                              []string{MCPScope},
		// draft-ietf-oauth-client-id-metadata-document: https client_ids are fetched as documents.
		"client_id_metadata_document_supported": true,
		// RFC 9207: the authorization response carries iss (the fosite wiring must add it).
		"authorization_response_iss_parameter_supported": true,
	}
}

// OpenIDConfiguration is AuthorizationServerMetadata plus the fields OpenID Connect Discovery
// 1.0 requires, served at /.well-known/openid-configuration because some MCP clients look only
// there. Honesty note: trustgate does not issue ID tokens (the openid scope is not offered and
// fosite's OpenID Connect handlers are not wired); subject_types_supported and
// id_token_signing_alg_values_supported are present because Discovery makes them REQUIRED, and
// describe what ID tokens would be if that is wired later (public subjects, ES256 like the
// access tokens). Clients must not expect an id_token in token responses.
func OpenIDConfiguration(issuer string) map[string]any {
	m := AuthorizationServerMetadata(issuer)
	m["subject_types_supported"] = []string{"public"}
	m["id_token_signing_alg_values_supported"] = []string{"ES256"}
	return m
}

// ProtectedResourceMetadata is the RFC 9728 metadata of an MCP resource (e.g.
// https://gw/h/acme/mcp or …/mcp/linear) protected by the authorization server issuer. The map
// is new on every call: callers may add resource_name, resource_documentation, ….
func ProtectedResourceMetadata(resource, issuer string) map[string]any {
	return map[string]any{
		"resource":                 resource,
		"authorization_servers":    []string{issuer},
		"bearer_methods_supported": []string{"header"},
		"scopes_supported":         []string{MCPScope},
	}
}

// AuthorizationServerMetadataPath is where RFC 8414 metadata of an issuer whose URL has the
// path issuerPath is served: "" → "/.well-known/oauth-authorization-server", "/h/acme" →
// "/.well-known/oauth-authorization-server/h/acme".
func AuthorizationServerMetadataPath(issuerPath string) string {
	return accesstoken.WellKnownPath(AuthorizationServerMetadataWellKnown, issuerPath)
}

// OpenIDConfigurationPaths are the paths MCP clients try for OpenID Connect Discovery of an
// issuer whose URL has the path issuerPath (MCP authorization, "Authorization Server Metadata
// Discovery"): the path-inserted form and, for issuers with a path, the path-appended form of
// OpenID Connect Discovery 1.0. For "" it is just "/.well-known/openid-configuration".
func OpenIDConfigurationPaths(issuerPath string) []string {
	issuerPath = strings.TrimSuffix(issuerPath, "/")
	inserted := accesstoken.WellKnownPath(OpenIDConfigurationWellKnown, issuerPath)
	if issuerPath == "" {
		return []string{inserted}
	}
	if !strings.HasPrefix(issuerPath, "/") {
		issuerPath = "/" + issuerPath
	}
	return []string{inserted, issuerPath + OpenIDConfigurationWellKnown}
}

// WriteJSON writes v as JSON with status. It sets Content-Type: application/json and
// X-Content-Type-Options: nosniff; any cache header is the caller's. If v cannot be encoded it
// writes a 500 with an OAuth server_error instead.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// MetadataHandler serves a discovery document: doc returns the document for the request, or
// false when the request's host or resource has none (404). GET and HEAD get the document with
// Cache-Control: public, max-age=3600 and Access-Control-Allow-Origin: * (the documents are
// public, and browser-based MCP clients fetch them cross-origin); OPTIONS answers a CORS
// preflight; other methods get 405.
func MetadataHandler(doc func(r *http.Request) (map[string]any, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "*")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "method not allowed"})
			return
		}
		m, ok := doc(r)
		if !ok {
			WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "no metadata at this address"})
			return
		}
		h.Set("Cache-Control", metadataCacheControl)
		WriteJSON(w, http.StatusOK, m)
	})
}

// AuthorizationServerMetadataHandler serves RFC 8414 metadata; issuer returns the issuer of
// the request's host, or false when there is none.
func AuthorizationServerMetadataHandler(issuer func(r *http.Request) (string, bool)) http.Handler {
	return MetadataHandler(func(r *http.Request) (map[string]any, bool) {
		iss, ok := issuer(r)
		if !ok {
			return nil, false
		}
		return AuthorizationServerMetadata(iss), true
	})
}

// OpenIDConfigurationHandler serves OpenIDConfiguration; issuer as for
// AuthorizationServerMetadataHandler.
func OpenIDConfigurationHandler(issuer func(r *http.Request) (string, bool)) http.Handler {
	return MetadataHandler(func(r *http.Request) (map[string]any, bool) {
		iss, ok := issuer(r)
		if !ok {
			return nil, false
		}
		return OpenIDConfiguration(iss), true
	})
}

// ProtectedResourceMetadataHandler serves RFC 9728 metadata; resolve returns the resource the
// request asks about and its authorization server's issuer, or false when there is no such
// resource.
func ProtectedResourceMetadataHandler(resolve func(r *http.Request) (resource, issuer string, ok bool)) http.Handler {
	return MetadataHandler(func(r *http.Request) (map[string]any, bool) {
		resource, iss, ok := resolve(r)
		if !ok {
			return nil, false
		}
		return ProtectedResourceMetadata(resource, iss), true
	})
}
