-- trustgate's control plane, version 20: each server's result filter (DLP) mode.
--
-- servers.dlp_mode: what the proxy does with the server's tool results that hold secrets or
-- personal data: 'off', 'redact', 'block', or '' (the default) to follow the host's setting
-- (hosts.settings, "dlp"). Existing servers follow their host, whose mode is off until an
-- administrator sets it.
ALTER TABLE servers ADD COLUMN dlp_mode TEXT NOT NULL DEFAULT '';
