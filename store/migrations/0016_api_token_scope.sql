-- trustgate's control plane, version 16: what an admin API token may do.
--
-- api_tokens.scope: '' administers (everything of its host, or everything for a global token);
-- 'check' may only ask for decisions (POST /api/v1/hosts/{host}/check and .../callable-tools),
-- for services that decide with trustgate and must change nothing. Existing tokens administer,
-- as they did.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
