// Package upstreamauth is the gateway as an OAuth 2.1 client of upstream MCP servers that
// require their own authorization, as the MCP authorization specification describes.
//
// During consent, when an upstream answers 401, the gateway discovers the upstream's protected
// resource metadata (RFC 9728: the WWW-Authenticate resource_metadata URL, then the well-known
// path-inserted and root forms) and its authorization server's metadata (RFC 8414, with the
// OpenID Connect discovery fallback), picks a client — the client id and secret an admin stored
// at import (CredentialKindOAuthClient), else one it registered earlier at that authorization
// server, else a new one registered with RFC 7591 — and sends the human there with PKCE S256 and
// the RFC 8707 resource of the upstream. The callback exchanges the code; the tokens are sealed
// with the master key, bound to host, human and server, and kept in the store, as is the state
// of an authorization in progress (so any replica can finish it).
//
// The proxy asks AccessToken for the human behind each call: a token about to expire is
// refreshed first, once per token however many calls wait, and the new tokens are stored. A
// missing token or a refused refresh is ErrReconsent: the human must connect the client again.
//
// A server's own upstream credentials (a static header, or the OAuth client an admin stored)
// are sealed the same way, bound to the server (SealCredentials, OpenCredentials): the admin API
// writes them, the proxy and this client read them.
//
// Every fetch goes through an SSRF-safe client (package internal/ssrf), bounded in size and
// time. Tokens exist in clear only in memory and are never logged.
package upstreamauth
