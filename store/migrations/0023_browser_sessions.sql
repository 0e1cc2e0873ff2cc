-- trustgate's control plane, version 23: browser sessions on the server.
--
-- browser_sessions: one row per signed-in browser of a human (the sign-in pages' session). The
-- cookie carries a random session id; only its hex SHA-256 is stored. Signing out deletes the
-- row, so the cookie alone no longer signs anyone in; a password change deletes the human's
-- other sessions. Expired rows are never accepted and are pruned; a human's or host's rows go
-- with them. Agents' tokens are not sessions of this table.
CREATE TABLE browser_sessions (
    id_hash    TEXT   NOT NULL PRIMARY KEY,
    host_key   TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    method     TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX browser_sessions_user ON browser_sessions (host_key, user_id);
