-- trustgate's control plane, version 28: the client address of audit entries.
--
-- client_addr: the IP address a request came from (the connection's peer, or the client a
-- trusted reverse proxy names). Entries with one are hashed with the audit log's format
-- version 2, which covers it; older entries keep '' and version 1. A replica of the previous
-- release keeps writing version 1 entries into this table during a rolling upgrade.
ALTER TABLE audit_entries ADD COLUMN client_addr TEXT NOT NULL DEFAULT '';
