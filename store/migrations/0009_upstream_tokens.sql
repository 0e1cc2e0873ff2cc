-- trustgate's control plane, version 9: the gateway as an OAuth client of upstream MCP servers.
--
-- Secrets (tokens, client secrets, PKCE verifiers) are sealed by the caller with the master key
-- and kept as base64 TEXT; the store never sees them in clear. Timestamps are Unix milliseconds.

-- upstream_tokens: one human's tokens for one server, obtained during consent. sealed holds the
-- access and refresh tokens (bound to host, human and server by the seal's associated data).
CREATE TABLE upstream_tokens (
    host_key       TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    server_key     TEXT NOT NULL,
    sealed         TEXT NOT NULL,
    expires_at     BIGINT NOT NULL DEFAULT 0,
    scopes         TEXT NOT NULL DEFAULT '',
    token_endpoint TEXT NOT NULL DEFAULT '',
    client_id      TEXT NOT NULL DEFAULT '',
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (host_key, user_id, server_key)
);
CREATE INDEX upstream_tokens_server ON upstream_tokens (host_key, server_key);

-- upstream_clients: clients the gateway registered (RFC 7591) at an upstream authorization
-- server, per host and issuer. sealed_secret is '' for a public client.
CREATE TABLE upstream_clients (
    host_key      TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    sealed_secret TEXT NOT NULL DEFAULT '',
    redirect_uri  TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (host_key, issuer)
);

-- upstream_auth_states: an authorization at an upstream in progress, keyed by the hex SHA-256
-- of its state parameter. sealed holds the PKCE verifier and the endpoints; pending_ref is the
-- gateway's own pending consent it continues. In the store, so that any replica can finish it.
CREATE TABLE upstream_auth_states (
    state_hash  TEXT NOT NULL PRIMARY KEY,
    host_key    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    server_key  TEXT NOT NULL,
    pending_ref TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX upstream_auth_states_expiry ON upstream_auth_states (expires_at);
