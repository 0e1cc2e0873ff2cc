-- trustgate's control plane, version 2: what the admin API needs.
--
-- Only ADD COLUMN with constant NOT NULL defaults, and a new table, so that the file runs as is
-- on SQLite, PostgreSQL and CockroachDB. (CockroachDB cannot write a column in the transaction
-- that adds it, so nothing here back-fills; the store reads the defaults as "unset".)
-- JSON is kept as TEXT; server credentials, opaque bytes sealed by the caller, as base64 TEXT.
-- A timestamp of 0 means "never" (the zero time.Time).

-- A host's settings: one JSON object (store.HostSettings); '{}' is every default.
ALTER TABLE hosts ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

ALTER TABLE users ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN last_active_at BIGINT NOT NULL DEFAULT 0;

ALTER TABLE servers ADD COLUMN credential_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN credentials TEXT NOT NULL DEFAULT '';
-- 0 for servers created before version 2: the store then reports created_at.
ALTER TABLE servers ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

ALTER TABLE tools ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE tools ADD COLUMN annotations TEXT NOT NULL DEFAULT '';
ALTER TABLE tools ADD COLUMN level_overridden BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tools ADD COLUMN definition_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE tools ADD COLUMN approved_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE tools ADD COLUMN flagged BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tools ADD COLUMN flag_reason TEXT NOT NULL DEFAULT '';

-- The agent's registered redirect URIs: a JSON array of strings.
ALTER TABLE agents ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN agent_type TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE agents ADD COLUMN last_active_at BIGINT NOT NULL DEFAULT 0;

-- Admin API tokens. host_key '' is a global token (no host row, hence no foreign key). Only the
-- token's hash is kept.
CREATE TABLE api_tokens (
    id           TEXT NOT NULL PRIMARY KEY,
    host_key     TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL DEFAULT '',
    hash         TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX api_tokens_by_host ON api_tokens (host_key, created_at, id);
