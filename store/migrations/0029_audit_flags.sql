-- trustgate's control plane, version 29: the anomaly flags of audit entries.
--
-- flags: the anomaly flags of a tool call (new_tool, new_server, off_hours, rate_spike,
-- denial_streak), comma-separated, '' for none. Entries with flags are hashed with the audit
-- log's format version 3, which covers them; every other entry keeps version 2 or 1. A replica
-- of the previous release keeps writing entries without flags into this table during a rolling
-- upgrade.
ALTER TABLE audit_entries ADD COLUMN flags TEXT NOT NULL DEFAULT '';
