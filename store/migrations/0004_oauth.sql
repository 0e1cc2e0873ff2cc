-- trustgate's control plane, version 4: the OAuth 2.1 authorization server's state.
--
-- oauth_clients: clients registered with RFC 7591 (kind 'dcr') or known by their Client ID
-- Metadata Document (kind 'cimd', id = the document's https URL), per host. secret_hash is the
-- hex SHA-256 of a confidential client's secret ('' for public clients). metadata is the
-- client's registration metadata as JSON.
CREATE TABLE oauth_clients (
    host_key                   TEXT NOT NULL REFERENCES hosts (host_key),
    id                         TEXT NOT NULL,
    kind                       TEXT NOT NULL,
    secret_hash                TEXT NOT NULL DEFAULT '',
    name                       TEXT NOT NULL DEFAULT '',
    redirect_uris              TEXT NOT NULL DEFAULT '[]',
    grant_types                TEXT NOT NULL DEFAULT '[]',
    response_types             TEXT NOT NULL DEFAULT '[]',
    token_endpoint_auth_method TEXT NOT NULL DEFAULT 'none',
    metadata                   TEXT NOT NULL DEFAULT '{}',
    created_at                 BIGINT NOT NULL,
    fetched_at                 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (host_key, id)
);

-- oauth_requests: fosite's stored requests, one row per (kind, signature): kind is 'code',
-- 'pkce', 'access' or 'refresh'. request_id ties the rows of one grant together (a whole
-- refresh-token family shares it), so revoking by request_id revokes the family. data is the
-- serialized request with its session (JSON). active is FALSE for a used code or a rotated
-- refresh token (kept to detect reuse); rotated_at says when it was rotated (grace window).
-- subject is the human's user id and agent_id the agent the grant was consented to, so that
-- deleting a human or killing an agent revokes every token of theirs.
CREATE TABLE oauth_requests (
    kind        TEXT NOT NULL,
    signature   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    host_key    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    agent_id    TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    requested_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL DEFAULT 0,
    rotated_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_requests_request_id ON oauth_requests (request_id);
CREATE INDEX oauth_requests_subject ON oauth_requests (host_key, subject);
CREATE INDEX oauth_requests_agent ON oauth_requests (host_key, agent_id);
