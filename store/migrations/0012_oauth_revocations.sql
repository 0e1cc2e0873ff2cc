-- trustgate's control plane, version 12: revoked OAuth access tokens and grants.
--
-- Access tokens are JWTs the MCP proxy verifies without the store; a revocation must still
-- refuse them at the next call. oauth_revocations lists what was revoked: kind 'grant' (id =
-- the grant's request_id, carried by its access tokens as the claim "sid"; every token of the
-- grant is refused) or kind 'token' (id = an access token's jti). A row is kept until every
-- token it can refuse has expired (expires_at). Each new row advances the control-plane
-- generation in the same transaction, so that every replica's cache sees it at once.
CREATE TABLE oauth_revocations (
    kind       TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    host_key   TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX oauth_revocations_expires ON oauth_revocations (expires_at);

-- token_id is an access token's jti (so that revoking its row revokes the JWT too); '' for
-- other kinds and for rows stored before version 12.
ALTER TABLE oauth_requests ADD COLUMN token_id TEXT NOT NULL DEFAULT '';
