-- trustgate's control plane, version 13: invitations, and the first use of OAuth clients.
--
-- invitations: the one-time link an admin gives a human they added, to choose a password. A
-- human has at most one (issuing a new one replaces it). The link carries a random selector and
-- a random verifier; only the verifier's hex SHA-256 is stored. A row is deleted when it is
-- used, replaced, or its human or host is deleted; an expired row is never accepted.
CREATE TABLE invitations (
    selector      TEXT   NOT NULL PRIMARY KEY,
    host_key      TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    verifier_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX invitations_user ON invitations (host_key, user_id);

-- oauth_clients.first_used_at: when an authorization code was first issued to the client (0:
-- never). Dynamically registered clients never used within a day are deleted; one registered
-- before version 13 is kept while it has an agent or a token.
ALTER TABLE oauth_clients ADD COLUMN first_used_at BIGINT NOT NULL DEFAULT 0;
