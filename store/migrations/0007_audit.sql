-- trustgate's control plane, version 7: the tamper-evident audit log.
--
-- audit_entries is append-only: the store has no statement that updates or deletes its rows,
-- and deleting a host keeps them (the audit log outlives its tenants), so there is no foreign
-- key to hosts. Each row is chained to the previous row of its host: hash is
-- SHA-256(prev_hash || canonical encoding of the row, version format_version), see package
-- audit. Timestamps are milliseconds since the epoch; hashes are hex.
CREATE TABLE audit_entries (
    host_key        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    user_id         TEXT NOT NULL DEFAULT '',
    user_email      TEXT NOT NULL DEFAULT '',
    agent_id        TEXT NOT NULL DEFAULT '',
    client_id       TEXT NOT NULL DEFAULT '',
    client_name     TEXT NOT NULL DEFAULT '',
    server_key      TEXT NOT NULL DEFAULT '',
    tool            TEXT NOT NULL DEFAULT '',
    method          TEXT NOT NULL DEFAULT '',
    decision        TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    required_level  TEXT NOT NULL DEFAULT '',
    agent_level     TEXT NOT NULL DEFAULT '',
    ceiling         TEXT NOT NULL DEFAULT '',
    upstream_status INTEGER NOT NULL DEFAULT 0,
    latency_ms      BIGINT NOT NULL DEFAULT 0,
    request_id      TEXT NOT NULL DEFAULT '',
    trace_id        TEXT NOT NULL DEFAULT '',
    arguments       TEXT NOT NULL DEFAULT '',
    actor           TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL DEFAULT '',
    object          TEXT NOT NULL DEFAULT '',
    old_value       TEXT NOT NULL DEFAULT '',
    new_value       TEXT NOT NULL DEFAULT '',
    format_version  INTEGER NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    PRIMARY KEY (host_key, seq)
);

CREATE INDEX audit_entries_at ON audit_entries (host_key, at);
CREATE INDEX audit_entries_agent ON audit_entries (host_key, agent_id, seq);
CREATE INDEX audit_entries_user ON audit_entries (host_key, user_id, seq);

-- The head of each host's chain: the last sequence number and hash written. Appends lock this
-- row (serialising writers of one host across processes), and verification checks that the
-- chain still ends here (rows cut from the end are detected too).
CREATE TABLE audit_heads (
    host_key  TEXT NOT NULL PRIMARY KEY,
    last_seq  BIGINT NOT NULL DEFAULT 0,
    last_hash TEXT NOT NULL DEFAULT ''
);
