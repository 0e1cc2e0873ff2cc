-- trustgate's control plane, version 21: the web dashboard's sign-in.
--
-- dashboard_setup: the one-time setup link with which the first operator chooses an email and
-- a password (at most one row, id 1). Only the hex SHA-256 of the link's secret is stored; the
-- row is deleted when the link is used.
CREATE TABLE dashboard_setup (
    id         INTEGER NOT NULL PRIMARY KEY,
    token_hash TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

-- dashboard_sessions: a signed-in admin's dashboard session, found by the hex SHA-256 of the
-- cookie's secret (the secret itself is never stored). Signing out deletes the row; an expired
-- row is never accepted and is deleted when a later session is created.
CREATE TABLE dashboard_sessions (
    id_hash    TEXT   NOT NULL PRIMARY KEY,
    host_key   TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (host_key, user_id);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
