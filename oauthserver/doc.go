// Package oauthserver holds the pieces of trustgate's OAuth 2.1 authorization server that fosite
// does not ship: RFC 8414 / RFC 9728 / OpenID discovery documents and the WWW-Authenticate
// challenge, RFC 7591 dynamic client registration, OAuth Client ID Metadata Documents (fetched
// through the SSRF-safe client in ssrf), redirect URI rules (RFC 8252) and PKCE checks.
// Server (server*.go) is the HTTP side of every host's authorization server: discovery,
// registration, the sign-in and consent flow, and fosite's token, revocation and introspection
// endpoints. The fosite storage lives in fositestore and the token signing keys in package accesstoken.
package oauthserver
