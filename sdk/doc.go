// Package sdk is the Go SDK of trustgate, for services that work with a trustgate gateway. It
// is a module of its own (github.com/trustgate/trustgate/sdk) that depends on the standard
// library and go-jose only, so importing it does not pull in the gateway.
//
// Client is the typed admin API (/api/v1): hosts, MCP servers and tools, humans and their
// ceilings, agents, API tokens and the audit log. Every call takes a context; idempotent
// calls are retried on 502, 503, 504 and connection errors (bounded, honouring Retry-After);
// lists are iterators (iter.Seq2) that follow the API's cursors; an answer that is not a
// success is an *Error carrying the RFC 9457 problem document. The `trustgate admin` command
// is built on it.
//
// Client.Check and Client.CallableTools let another service ask the gateway the question its
// proxy asks of every tools/call, from the same authorization backend. A token created with
// ScopeCheck may ask them and do nothing else.
//
// ResourceServer lets a service accept the access tokens trustgate issues to agents: its
// Middleware verifies them (ES256 JWTs, RFC 9068; keys from the issuer's metadata, cached) and
// gives the handler the human and the agent through TokenFromContext; a request without a
// valid token gets a 401 whose WWW-Authenticate names the resource's metadata.
package sdk
