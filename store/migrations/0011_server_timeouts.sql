-- trustgate's control plane, version 11: per-server upstream timeouts of the MCP proxy.
--
-- Milliseconds; 0 means the proxy's default (connect 10 s, first byte 60 s, idle stream 5 min).
ALTER TABLE servers ADD COLUMN connect_timeout_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN first_byte_timeout_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN idle_timeout_ms BIGINT NOT NULL DEFAULT 0;
