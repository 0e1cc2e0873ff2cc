-- trustgate's control plane, version 30: the host of each pending relationship change, and the
-- changes the authorization backend refused for good, set aside.
--
-- relationship_outbox.host_key: the host of the change's resource (every id of trustgate's
-- schema starts with its host key), so that the relationship writer reads which hosts have
-- changes pending with one grouped query. '' for a change written by a replica of the previous
-- release during a rolling upgrade: its host is read from the relationship itself.
ALTER TABLE relationship_outbox ADD COLUMN host_key TEXT NOT NULL DEFAULT '';

-- relationship_quarantine: outbox changes the authorization backend refused permanently (a
-- relationship its schema does not accept, a failed precondition), taken out of the outbox so
-- that the changes behind them are applied. Their host fails closed until an operator retries
-- (re-queues what the store implies now) or discards them. id is the outbox entry's id.
CREATE TABLE relationship_quarantine (
    id             BIGINT NOT NULL PRIMARY KEY,
    op             TEXT NOT NULL CHECK (op IN ('touch', 'delete')),
    relationship   TEXT NOT NULL,
    host_key       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    quarantined_at BIGINT NOT NULL,
    reason         TEXT NOT NULL
);

CREATE INDEX relationship_quarantine_by_host ON relationship_quarantine (host_key);
