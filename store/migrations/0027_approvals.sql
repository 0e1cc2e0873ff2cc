-- trustgate's control plane, version 27: calls held for a person's approval.
--
-- held_calls: one row per tools/call a host's approval policy held. The replica that holds the
-- client's request waits on the row (its seen_at is that replica's heartbeat); whichever
-- replica an approver reaches decides it (status approved, denied or expired, once: only a
-- pending row changes). A pending row whose heartbeat stopped (its replica went away) is
-- expired, never approved, so a held call is forwarded only by the request that still waits
-- for it. The arguments are kept for the approvers to read while the call is pending and
-- cleared once it is decided.
CREATE TABLE held_calls (
    id             TEXT    NOT NULL PRIMARY KEY,
    host_key       TEXT    NOT NULL,
    agent_id       TEXT    NOT NULL,
    agent_name     TEXT    NOT NULL DEFAULT '',
    user_id        TEXT    NOT NULL,
    server_key     TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    arguments      TEXT    NOT NULL DEFAULT '',
    approvers      TEXT    NOT NULL DEFAULT '',
    standing_hours INTEGER NOT NULL DEFAULT 0,
    status         TEXT    NOT NULL,
    decided_by     TEXT    NOT NULL DEFAULT '',
    channel        TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    seen_at        BIGINT  NOT NULL,
    decided_at     BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX held_calls_host ON held_calls (host_key, status);

-- standing_approvals: "approve for this agent for N hours": while one stands, the agent's
-- calls of that tool are not held. Revoking deletes the row; expired rows are never used and
-- are pruned; they go with their host.
CREATE TABLE standing_approvals (
    host_key    TEXT   NOT NULL,
    agent_id    TEXT   NOT NULL,
    server_key  TEXT   NOT NULL,
    tool        TEXT   NOT NULL,
    approved_by TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (host_key, agent_id, server_key, tool)
);
