-- trustgate's control plane, version 1.
--
-- One file serves SQLite, PostgreSQL and CockroachDB: {{serial_pk}} is replaced per engine.
-- Timestamps are unix milliseconds (UTC); levels are 'low', 'medium' or 'high'; no column is
-- NULLable. Foreign keys document the tree, but the store deletes children first itself: every
-- deleted row must leave its tuple changes in the outbox, which a cascade would not.

CREATE TABLE hosts (
    host_key   TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    host_key   TEXT NOT NULL REFERENCES hosts (host_key),
    id         TEXT NOT NULL,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_key, id),
    UNIQUE (host_key, email)
);

CREATE TABLE servers (
    host_key    TEXT NOT NULL REFERENCES hosts (host_key),
    server_key  TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    url         TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (host_key, server_key)
);

CREATE TABLE tools (
    host_key     TEXT NOT NULL,
    server_key   TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    input_schema TEXT NOT NULL DEFAULT '',
    level        TEXT NOT NULL CHECK (level IN ('low', 'medium', 'high')),
    enabled      BOOLEAN NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (host_key, server_key, name),
    FOREIGN KEY (host_key, server_key) REFERENCES servers (host_key, server_key)
);

CREATE TABLE grants (
    host_key   TEXT NOT NULL,
    server_key TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    ceiling    TEXT NOT NULL CHECK (ceiling IN ('low', 'medium', 'high')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host_key, server_key, user_id),
    FOREIGN KEY (host_key, server_key) REFERENCES servers (host_key, server_key),
    FOREIGN KEY (host_key, user_id) REFERENCES users (host_key, id)
);

CREATE INDEX grants_by_user ON grants (host_key, user_id);

CREATE TABLE agents (
    host_key   TEXT NOT NULL,
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_key, id),
    FOREIGN KEY (host_key, user_id) REFERENCES users (host_key, id)
);

CREATE INDEX agents_by_user ON agents (host_key, user_id);

CREATE TABLE consents (
    host_key   TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    server_key TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('low', 'medium', 'high')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host_key, agent_id, server_key),
    FOREIGN KEY (host_key, agent_id) REFERENCES agents (host_key, id),
    FOREIGN KEY (host_key, server_key) REFERENCES servers (host_key, server_key)
);

CREATE INDEX consents_by_server ON consents (host_key, server_key);

-- Pending relationship changes, drained in id order by the relationship writer.
CREATE TABLE relationship_outbox (
    id           {{serial_pk}},
    op           TEXT NOT NULL CHECK (op IN ('touch', 'delete')),
    relationship TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- The drain's cross-process lock: a drain updates this one row first.
CREATE TABLE outbox_lock (
    id INTEGER NOT NULL PRIMARY KEY,
    n  BIGINT NOT NULL DEFAULT 0
);

INSERT INTO outbox_lock (id, n) VALUES (1, 0);
